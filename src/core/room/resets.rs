//! State resets: changes to a room's current state that state resolution makes when an event
//! from another server joins two branches, beyond what the event itself sets. Readers of state
//! by stream position (`/sync`) cannot see them in the timeline, so they are recorded at the
//! event's stream position (migration 0012) and read back next to the timeline.

use std::collections::HashMap;

use ruma::OwnedEventId;

use super::state::StateMap;

/// `(event type, state key)`.
pub type StateKey = (String, String);

/// The resets the arrival of an event makes: every key where the new current state differs
/// from what the timeline shows, i.e. from the old current state with the event's own
/// `(type, state_key) → event` applied (`own`, for a state event). A key that left the state
/// maps to `None`; a key the event set but resolution gave to another event (the event lost
/// to a concurrent one) is a reset too.
pub fn state_resets(before: &StateMap, after: &StateMap, own: Option<(&StateKey, &OwnedEventId)>) -> Vec<(StateKey, Option<OwnedEventId>)> {
    let mut shown = before.clone();
    if let Some((k, e)) = own {
        shown.insert(k.clone(), e.clone());
    }
    let mut out: Vec<(StateKey, Option<OwnedEventId>)> =
        after.iter().filter(|(k, e)| shown.get(*k) != Some(*e)).map(|(k, e)| (k.clone(), Some(e.clone()))).collect();
    out.extend(shown.keys().filter(|k| !after.contains_key(*k)).map(|k| (k.clone(), None)));
    out
}

/// One candidate for a key of a sync's `state` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<T> {
    pub key: StateKey,
    /// Stream position it takes effect at (a reset's position, or the event's).
    pub at: u64,
    pub item: T,
}

/// The `state` section of a room in a sync that gives the state at the start of the timeline
/// (not `use_state_after`): per key, the state before the timeline (`before`: the latest state
/// event or reset up to the timeline's start), replaced by the latest reset made during the
/// timeline (`during`) unless the timeline itself carries a state event for that key after
/// the reset (which the client applies last anyway). A reset during the timeline cannot be
/// placed at its exact position (the client applies `state` before the timeline); putting it
/// in `state` makes the client's state right at the end of the timeline whenever no timeline
/// event of that key follows it — a reset at the very position of a timeline event of the
/// same key (that event lost resolution) is out of reach of this format: `use_state_after`
/// is exact.
pub fn start_state<T>(before: Vec<Candidate<T>>, during: Vec<Candidate<T>>, timeline_last: &HashMap<StateKey, u64>) -> Vec<T> {
    let mut by_key: HashMap<StateKey, Candidate<T>> = HashMap::new();
    for c in before {
        match by_key.get(&c.key) {
            Some(old) if old.at >= c.at => {}
            _ => {
                by_key.insert(c.key.clone(), c);
            }
        }
    }
    let mut latest_reset: HashMap<StateKey, Candidate<T>> = HashMap::new();
    for c in during {
        match latest_reset.get(&c.key) {
            Some(old) if old.at >= c.at => {}
            _ => {
                latest_reset.insert(c.key.clone(), c);
            }
        }
    }
    for (k, c) in latest_reset {
        if timeline_last.get(&k).is_some_and(|t| *t > c.at) {
            continue;
        }
        by_key.insert(k, c);
    }
    let mut out: Vec<Candidate<T>> = by_key.into_values().collect();
    out.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
    out.into_iter().map(|c| c.item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::EventId;

    fn id(s: &str) -> OwnedEventId {
        EventId::parse(format!("${s}")).unwrap()
    }
    fn key(t: &str) -> StateKey {
        (t.to_owned(), String::new())
    }

    #[test]
    fn linear_event_makes_no_reset() {
        let before: StateMap = [(key("m.room.name"), id("n1"))].into();
        let mut after = before.clone();
        after.insert(key("m.room.topic"), id("t1"));
        assert!(state_resets(&before, &after, Some((&key("m.room.topic"), &id("t1")))).is_empty());
        // A message changes nothing.
        assert!(state_resets(&before, &before, None).is_empty());
    }

    #[test]
    fn resolution_changes_other_keys_and_own_key() {
        let before: StateMap = [(key("m.room.topic"), id("ta")), (key("m.room.name"), id("n1"))].into();
        // The new topic event tb lost to ta: the timeline shows tb, the state keeps ta.
        let after = before.clone();
        assert_eq!(state_resets(&before, &after, Some((&key("m.room.topic"), &id("tb")))), vec![(key("m.room.topic"), Some(id("ta")))]);
        // A message joining the branches brings the other branch's name and drops a key.
        let after: StateMap = [(key("m.room.topic"), id("ta")), (key("m.room.name"), id("n0"))].into();
        let mut before2 = before.clone();
        before2.insert(key("m.room.avatar"), id("a1"));
        let mut r = state_resets(&before2, &after, None);
        r.sort();
        assert_eq!(r, vec![(key("m.room.avatar"), None), (key("m.room.name"), Some(id("n0")))]);
    }

    fn c(k: &str, at: u64, item: &'static str) -> Candidate<&'static str> {
        Candidate { key: key(k), at, item }
    }

    #[test]
    fn start_state_prefers_later_resets_not_superseded_by_the_timeline() {
        let before = vec![c("m.room.topic", 3, "topic@3"), c("m.room.name", 2, "name@2"), c("m.room.topic", 5, "reset-topic@5")];
        let during =
            vec![c("m.room.name", 10, "reset-name@10"), c("m.room.avatar", 11, "reset-avatar@11"), c("m.room.avatar", 12, "reset-avatar@12")];
        // The timeline sets the name again after the reset: the reset is left out, and the
        // name at the start of the timeline stays.
        let timeline_last: HashMap<StateKey, u64> = [(key("m.room.name"), 14)].into();
        assert_eq!(start_state(before.clone(), during.clone(), &timeline_last), vec!["name@2", "reset-topic@5", "reset-avatar@12"]);
        // Without it the reset replaces the name; a timeline event at the reset's own
        // position does not hide the reset.
        let timeline_last: HashMap<StateKey, u64> = [(key("m.room.name"), 10)].into();
        assert_eq!(start_state(before, during, &timeline_last), vec!["reset-topic@5", "reset-name@10", "reset-avatar@12"]);
    }
}
