//! History visibility (spec: client-server-api, "History visibility"): whether a user may
//! see an event, from the room's `m.room.history_visibility` and the user's membership at
//! the event, and their membership now.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryVisibility {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl HistoryVisibility {
    /// From the content's `history_visibility`; anything unknown (or no event) is `shared`,
    /// the spec's default.
    pub fn parse(value: Option<&str>) -> HistoryVisibility {
        match value {
            Some("world_readable") => HistoryVisibility::WorldReadable,
            Some("invited") => HistoryVisibility::Invited,
            Some("joined") => HistoryVisibility::Joined,
            _ => HistoryVisibility::Shared,
        }
    }

    fn openness(self) -> u8 {
        match self {
            HistoryVisibility::WorldReadable => 3,
            HistoryVisibility::Shared => 2,
            HistoryVisibility::Invited => 1,
            HistoryVisibility::Joined => 0,
        }
    }

    /// The more open of two settings (a history-visibility change is judged by the more
    /// open of the settings before and after it, so both sides of the boundary see it).
    pub fn most_open(self, other: HistoryVisibility) -> HistoryVisibility {
        if other.openness() > self.openness() {
            other
        } else {
            self
        }
    }
}

/// The spec's algorithm (client-server-api, "History visibility", "Server behaviour"):
/// 1. `world_readable`: everyone.
/// 2. The user was joined at the event: yes.
/// 3. `shared` and the user joined the room at any point after the event was sent: yes.
/// 4. `invited` and the user was invited at the event: yes.
/// 5. Otherwise no.
pub fn may_see(visibility: HistoryVisibility, membership_at_event: Option<&str>, joined_after: bool) -> bool {
    match visibility {
        HistoryVisibility::WorldReadable => true,
        _ if membership_at_event == Some("join") => true,
        HistoryVisibility::Shared => joined_after,
        HistoryVisibility::Invited => membership_at_event == Some("invite"),
        HistoryVisibility::Joined => false,
    }
}

#[cfg(test)]
mod tests {
    use super::HistoryVisibility::*;
    use super::*;

    #[test]
    fn matrix() {
        // (visibility, membership at the event, joined at some point after it, expected)
        let cases = [
            (WorldReadable, None, false, true),
            (Shared, None, true, true),
            (Shared, None, false, false),
            (Shared, Some("join"), false, true),
            (Shared, Some("leave"), true, true),
            (Shared, Some("leave"), false, false),
            (Shared, Some("invite"), false, false),
            (Invited, Some("invite"), true, true),
            (Invited, Some("invite"), false, true),
            (Invited, None, true, false),
            (Joined, Some("invite"), true, false),
            (Joined, Some("join"), false, true),
            (Joined, None, true, false),
            (Joined, Some("ban"), false, false),
        ];
        for (v, at, after, want) in cases {
            assert_eq!(may_see(v, at, after), want, "{v:?} at={at:?} joined_after={after}");
        }
    }

    #[test]
    fn parse_and_boundaries() {
        assert_eq!(HistoryVisibility::parse(None), Shared);
        assert_eq!(HistoryVisibility::parse(Some("nonsense")), Shared);
        assert_eq!(Joined.most_open(WorldReadable), WorldReadable);
        assert_eq!(Shared.most_open(Invited), Shared);
    }
}
