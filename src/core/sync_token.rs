//! The `/sync` `since`/`next_batch` token: one position per stream (spec: client-server-api,
//! "Syncing"). Positions of different streams are never compared with each other; each is
//! compared only with the same stream's position in a later token.
//!
//! Wire form: `s<rooms>_<to_device>_<account_data>_<receipts>_<typing>_<presence>_<device_lists>`.
//! The leading `s<rooms>` is also a valid `/messages` token (`message::parse_token` reads the
//! digits after `s`), so a client that passes `next_batch` as `from` pages from the right place.

/// The streams a sync token carries, in wire order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncToken {
    /// Room events (the global `events.stream` position).
    pub rooms: u64,
    pub to_device: u64,
    pub account_data: u64,
    pub receipts: u64,
    pub typing: u64,
    pub presence: u64,
    pub device_lists: u64,
}

impl SyncToken {
    pub fn encode(&self) -> String {
        format!("s{}_{}_{}_{}_{}_{}_{}", self.rooms, self.to_device, self.account_data, self.receipts, self.typing, self.presence, self.device_lists)
    }

    /// Parses a token. A bare `s<N>` (a `/messages` or `prev_batch` token) is accepted as a
    /// room position with every other stream at 0.
    pub fn decode(t: &str) -> Option<SyncToken> {
        let rest = t.strip_prefix('s')?;
        let parts: Vec<u64> = rest.split('_').map(|p| p.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
        if parts.is_empty() || parts.len() > 7 {
            return None;
        }
        let g = |i: usize| parts.get(i).copied().unwrap_or(0);
        Some(SyncToken { rooms: g(0), to_device: g(1), account_data: g(2), receipts: g(3), typing: g(4), presence: g(5), device_lists: g(6) })
    }

    /// Component-wise: does `self` have anything past `since`? (Each stream against itself.)
    pub fn advanced_past(&self, since: &SyncToken) -> bool {
        self.rooms > since.rooms
            || self.to_device > since.to_device
            || self.account_data > since.account_data
            || self.receipts > since.receipts
            || self.typing > since.typing
            || self.presence > since.presence
            || self.device_lists > since.device_lists
    }

    /// Component-wise maximum: a token never moves a stream backwards (a client can hand
    /// back a token from a server whose other stream tables are still empty).
    pub fn max(&self, o: &SyncToken) -> SyncToken {
        SyncToken {
            rooms: self.rooms.max(o.rooms),
            to_device: self.to_device.max(o.to_device),
            account_data: self.account_data.max(o.account_data),
            receipts: self.receipts.max(o.receipts),
            typing: self.typing.max(o.typing),
            presence: self.presence.max(o.presence),
            device_lists: self.device_lists.max(o.device_lists),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = SyncToken { rooms: 5, to_device: 1, account_data: 2, receipts: 3, typing: 4, presence: 6, device_lists: 7 };
        assert_eq!(t.encode(), "s5_1_2_3_4_6_7");
        assert_eq!(SyncToken::decode(&t.encode()), Some(t));
    }

    #[test]
    fn bare_room_token_and_garbage() {
        assert_eq!(SyncToken::decode("s42"), Some(SyncToken { rooms: 42, ..Default::default() }));
        assert_eq!(SyncToken::decode("x1"), None);
        assert_eq!(SyncToken::decode("s1_a"), None);
        assert_eq!(SyncToken::decode("s1_2_3_4_5_6_7_8"), None);
    }

    #[test]
    fn streams_are_compared_separately() {
        let since = SyncToken { rooms: 100, typing: 1, ..Default::default() };
        // A typing position of 2 is "new" even though 2 < 100: streams are not compared across.
        assert!(SyncToken { rooms: 100, typing: 2, ..Default::default() }.advanced_past(&since));
        assert!(!SyncToken { rooms: 100, typing: 1, ..Default::default() }.advanced_past(&since));
        assert!(!SyncToken { rooms: 99, typing: 1, ..Default::default() }.advanced_past(&since));
    }
}
