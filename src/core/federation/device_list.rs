//! What to do with an `m.device_list_update` (spec: server-server-api, "Device Management"):
//! apply it to the cached list, skip it, or fetch the whole list again.

/// The outcome for one update, given our cache of the user's list.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateAction {
    /// Already reflected in the cache (a repeated transaction, or a newer resync).
    Skip,
    /// Follows what we have: apply the device change.
    Apply,
    /// A gap (a `prev_id` we never saw) or a cache already awaiting its resync: fetch the whole list.
    Resync,
    /// No cache: nothing to update, but our users must hear of the change (their next
    /// `/keys/query` fetches the list).
    Notify,
}

/// `cached`: the last `stream_id` we hold for the user and whether that cache is stale.
/// Every `prev_id` must be one we have seen: stream IDs only grow, so anything up to our
/// last one is (Synapse's rule compares with the last one and the updates of the same
/// batch, applied in order here).
pub fn update_action(cached: Option<(i64, bool)>, stream_id: i64, prev_ids: &[i64]) -> UpdateAction {
    match cached {
        None => UpdateAction::Notify,
        Some((_, true)) => UpdateAction::Resync,
        Some((last, false)) if stream_id <= last => UpdateAction::Skip,
        Some((last, false)) if prev_ids.iter().all(|p| *p <= last) => UpdateAction::Apply,
        Some(_) => UpdateAction::Resync,
    }
}

#[cfg(test)]
mod tests {
    use super::{update_action, UpdateAction::*};

    #[test]
    fn updates_follow_the_stream_or_resync() {
        assert_eq!(update_action(None, 5, &[4]), Notify);
        assert_eq!(update_action(Some((4, false)), 5, &[4]), Apply);
        assert_eq!(update_action(Some((4, false)), 5, &[]), Apply);
        // Two updates in one transaction: the second names the first.
        assert_eq!(update_action(Some((5, false)), 6, &[5]), Apply);
        // A gap: an update we never saw.
        assert_eq!(update_action(Some((4, false)), 9, &[8]), Resync);
        // Seen already.
        assert_eq!(update_action(Some((9, false)), 9, &[8]), Skip);
        assert_eq!(update_action(Some((9, false)), 3, &[2]), Skip);
        // Awaiting a resync: nothing applies to the stale cache.
        assert_eq!(update_action(Some((4, true)), 5, &[4]), Resync);
    }
}
