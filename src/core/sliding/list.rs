//! The server's room list (MSC4186, "Lists"): which of the user's rooms it holds, in which
//! order, and what each list's filters and ranges take from it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use super::request::{Filters, ListConfig, RoomConfig};

/// The event types that move a room up the list (MSC4186 `bump_stamp`; Synapse's
/// `DEFAULT_BUMP_EVENT_TYPES`).
pub const BUMP_TYPES: &[&str] =
    &["m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite", "m.poll.start", "m.beacon_info"];

/// Whether an event moves its room up the list: one of [`BUMP_TYPES`] as the room's ordering
/// reads them (`m.room.create` the state event, `m.beacon_info` a state event of any key, the
/// others as timeline events, not state).
pub fn is_bump(kind: &str, state_key: Option<&str>) -> bool {
    match kind {
        "m.room.create" => state_key == Some(""),
        "m.beacon_info" => state_key.is_some(),
        k => state_key.is_none() && BUMP_TYPES.contains(&k),
    }
}

/// One of the user's rooms, with what ordering and filtering need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomEntry {
    pub room_id: String,
    pub membership: String,
    /// The position of the user's membership event.
    pub membership_stream: u64,
    /// Who sent the user's membership event (a leave by someone else is a kick).
    pub membership_sender: String,
    /// The position of the latest bump event (joined rooms).
    pub last_bump: Option<u64>,
    /// The position of the room's latest event.
    pub last_event: u64,
    pub is_dm: bool,
    pub is_encrypted: bool,
    pub room_type: Option<String>,
    /// The room's tags (`m.tag`), when a list filters on them.
    pub tags: Vec<String>,
    /// The spaces named by a list's `spaces` filter that list the room as a child.
    pub parents: Vec<String>,
    /// Banned without ever having joined (an invite or knock answered with a ban).
    pub banned_never_joined: bool,
}

impl RoomEntry {
    /// MSC4186 `bump_stamp`: the latest bump event of a joined room; for other memberships
    /// the membership change.
    pub fn bump_stamp(&self) -> u64 {
        match (self.membership.as_str(), self.last_bump) {
            ("join", Some(b)) => b.max(1),
            _ => self.membership_stream,
        }
    }

    /// The last position the user may see in the room: everything for a joined room, up
    /// to the membership change otherwise (no events after a leave, kick or ban).
    pub fn visible_up_to(&self, now: u64) -> u64 {
        if self.membership == "join" {
            now
        } else {
            self.membership_stream.min(now)
        }
    }

    /// The user left by themselves (not a kick).
    pub fn self_left(&self, me: &str) -> bool {
        self.membership == "leave" && self.membership_sender == me
    }
}

/// Which memberships are in the server's list (MSC4186, "Lists"): joins, invites, knocks,
/// kicks and bans (not a ban of someone who never joined); a room the user left themselves
/// only while the connection still has it as not left (`sent_not_left`), so the client sees
/// the leave once.
pub fn in_server_list(r: &RoomEntry, me: &str, sent_not_left: bool) -> bool {
    match r.membership.as_str() {
        "join" | "invite" | "knock" => true,
        "ban" => !r.banned_never_joined,
        "leave" => !r.self_left(me) || sent_not_left,
        _ => false,
    }
}

/// Most recent first; ties by room ID so the order is stable.
pub fn order(rooms: &mut [RoomEntry]) {
    rooms.sort_by(|a, b| b.bump_stamp().cmp(&a.bump_stamp()).then_with(|| a.room_id.cmp(&b.room_id)));
}

/// Does the room pass a list's filters?
pub fn matches(f: &Filters, r: &RoomEntry) -> bool {
    f.is_dm.is_none_or(|d| d == r.is_dm)
        && f.is_encrypted.is_none_or(|e| e == r.is_encrypted)
        && f.is_invite.is_none_or(|i| i == (r.membership == "invite"))
        && f.room_types.as_ref().is_none_or(|ts| ts.contains(&r.room_type))
        && !f.not_room_types.contains(&r.room_type)
        && f.spaces.as_ref().is_none_or(|ss| ss.iter().any(|s| r.parents.contains(s)))
        && f.tags.as_ref().is_none_or(|ts| ts.iter().any(|t| r.tags.contains(t)))
        && !f.not_tags.iter().any(|t| r.tags.contains(t))
}

/// The tags of an `m.tag` content (`{"tags": {name: {...}}}`).
pub fn tags_of(content: &Value) -> Vec<String> {
    content.get("tags").and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// The room IDs of a filtered, ordered list that fall in the ranges (inclusive, 0-based; a
/// range starting past the end takes nothing), in list order without duplicates.
pub fn window<'a>(list: &[&'a RoomEntry], ranges: Option<&[(u64, u64)]>) -> Vec<&'a str> {
    let Some(ranges) = ranges else { return list.iter().map(|r| r.room_id.as_str()).collect() };
    let mut picked = BTreeSet::new();
    for &(start, end) in ranges {
        if start > end {
            continue;
        }
        let end = end.min(list.len().saturating_sub(1) as u64);
        for i in start..=end {
            if i as usize >= list.len() {
                break;
            }
            picked.insert(i as usize);
        }
    }
    picked.into_iter().filter_map(|i| list.get(i).map(|r| r.room_id.as_str())).collect()
}

/// What a request's lists and subscriptions select from the ordered server list.
#[derive(Debug, Default, PartialEq)]
pub struct Selection {
    /// Each selected room's combined config (MSC4186, "Combining room configs").
    pub configs: BTreeMap<String, RoomConfig>,
    /// Each list's count (the filtered list, ignoring ranges).
    pub counts: BTreeMap<String, u64>,
    /// Each list's window: its room IDs in this response.
    pub windows: BTreeMap<String, Vec<String>>,
    /// The subscribed rooms the user has a membership in.
    pub subscribed: Vec<String>,
}

/// Applies the lists (filters, then ranges) to `listed` (ordered), then the subscriptions
/// (rooms for which `known` holds: any membership, listed or not).
pub fn select(
    listed: &[RoomEntry],
    lists: &BTreeMap<String, ListConfig>,
    subscriptions: &BTreeMap<String, RoomConfig>,
    known: impl Fn(&str) -> bool,
) -> Selection {
    let mut out = Selection::default();
    for (name, l) in lists {
        let filtered: Vec<&RoomEntry> = listed.iter().filter(|e| matches(&l.filters, e)).collect();
        let win: Vec<String> = window(&filtered, l.ranges.as_deref()).into_iter().map(str::to_owned).collect();
        for room_id in &win {
            out.configs.entry(room_id.clone()).or_default().merge(&l.room);
        }
        out.counts.insert(name.clone(), filtered.len() as u64);
        out.windows.insert(name.clone(), win);
    }
    for (room_id, c) in subscriptions {
        if known(room_id) {
            out.configs.entry(room_id.clone()).or_default().merge(c);
            out.subscribed.push(room_id.clone());
        }
    }
    out
}

/// The rooms of `m.direct` account data (content: user ID → room IDs).
pub fn dm_rooms(content: &Value) -> HashSet<String> {
    content
        .as_object()
        .map(|o| o.values().filter_map(Value::as_array).flatten().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn room(id: &str, membership: &str, bump: u64) -> RoomEntry {
        RoomEntry { room_id: id.into(), membership: membership.into(), membership_stream: bump, last_bump: Some(bump), ..Default::default() }
    }

    #[test]
    fn bump_types() {
        assert!(is_bump("m.room.message", None));
        assert!(is_bump("m.room.encrypted", None));
        assert!(is_bump("m.room.create", Some("")));
        assert!(is_bump("m.beacon_info", Some("@a:x")));
        assert!(!is_bump("m.room.message", Some("")));
        assert!(!is_bump("m.room.create", None));
        assert!(!is_bump("m.beacon_info", None));
        assert!(!is_bump("m.room.member", Some("@a:x")));
        assert!(!is_bump("m.reaction", None));
    }

    #[test]
    fn ordering_by_recency() {
        let mut rs = vec![room("!a", "join", 5), room("!b", "join", 9), room("!c", "invite", 7), room("!d", "join", 9)];
        rs[2].last_bump = None;
        order(&mut rs);
        let ids: Vec<&str> = rs.iter().map(|r| r.room_id.as_str()).collect();
        assert_eq!(ids, ["!b", "!d", "!c", "!a"]);
        // A left room sorts by its leave, not by later activity.
        let mut left = room("!l", "leave", 3);
        left.last_bump = Some(50);
        assert_eq!(left.bump_stamp(), 3);
        assert_eq!(left.visible_up_to(40), 3);
        // A joined room without any bump event (history not here) uses its join.
        let mut j = room("!j", "join", 4);
        j.last_bump = None;
        assert_eq!(j.bump_stamp(), 4);
    }

    #[test]
    fn lists_and_subscriptions_combine_configs() {
        use crate::core::sliding::request::SlidingRequest;
        let mut rs: Vec<RoomEntry> = (0..4).map(|i| room(&format!("!{i}"), "join", 10 - i)).collect();
        rs[3].is_dm = true;
        let req = SlidingRequest::parse(
            json!({
                "lists": {
                    "top": { "ranges": [[0, 1]], "timeline_limit": 1, "required_state": [["m.room.name", ""]] },
                    "dms": { "ranges": [[0, 9]], "timeline_limit": 5, "required_state": [["m.room.topic", ""]], "filters": { "is_dm": true } },
                },
                "room_subscriptions": {
                    "!0": { "timeline_limit": 20, "required_state": [["m.room.topic", ""]] },
                    "!gone": { "timeline_limit": 20, "required_state": [] },
                },
            }),
            "@me:x",
        )
        .unwrap();
        let s = select(&rs, &req.lists, &req.subscriptions, |r| r != "!gone");
        assert_eq!(s.counts, BTreeMap::from([("dms".to_owned(), 1), ("top".to_owned(), 4)]));
        assert_eq!(s.windows["top"], ["!0", "!1"]);
        assert_eq!(s.windows["dms"], ["!3"]);
        assert_eq!(s.subscribed, ["!0"]);
        assert_eq!(s.configs.keys().collect::<Vec<_>>(), ["!0", "!1", "!3"]);
        // In the list and subscribed: the larger limit, the union of the state.
        let c = &s.configs["!0"];
        assert_eq!(c.timeline_limit, 20);
        assert!(c.required_state.matches("m.room.name", "") && c.required_state.matches("m.room.topic", ""));
        assert_eq!(s.configs["!1"].timeline_limit, 1);
    }

    #[test]
    fn windows() {
        let rs: Vec<RoomEntry> = (0..5).map(|i| room(&format!("!{i}"), "join", 10 - i)).collect();
        let list: Vec<&RoomEntry> = rs.iter().collect();
        assert_eq!(window(&list, Some(&[(0, 1)])), ["!0", "!1"]);
        assert_eq!(window(&list, Some(&[(3, 99)])), ["!3", "!4"]);
        assert_eq!(window(&list, Some(&[(0, 0), (2, 2), (0, 0)])), ["!0", "!2"]);
        assert!(window(&list, Some(&[])).is_empty());
        assert!(window(&list, Some(&[(7, 9)])).is_empty());
        assert!(window(&list, Some(&[(3, 1)])).is_empty());
        assert!(window(&[], Some(&[(0, 0)])).is_empty());
        assert_eq!(window(&list, None).len(), 5);
    }

    #[test]
    fn filters_and_membership() {
        let mut r = room("!a", "join", 1);
        r.is_dm = true;
        r.room_type = Some("m.space".into());
        let f = |v: Value| serde_json::from_value::<Filters>(v).unwrap();
        assert!(matches(&f(json!({})), &r));
        assert!(matches(&f(json!({ "is_dm": true, "is_encrypted": false, "is_invite": false })), &r));
        assert!(!matches(&f(json!({ "is_dm": false })), &r));
        assert!(!matches(&f(json!({ "not_room_types": ["m.space"] })), &r));
        assert!(matches(&f(json!({ "room_types": ["m.space", null] })), &r));
        assert!(!matches(&f(json!({ "room_types": [null] })), &r));
        assert!(!matches(&f(json!({ "room_types": ["m.space"], "not_room_types": ["m.space"] })), &r));
        r.room_type = None;
        assert!(matches(&f(json!({ "room_types": [null] })), &r));
        r.tags = tags_of(&json!({ "tags": { "m.favourite": { "order": 0.5 }, "u.work": {} } }));
        assert!(matches(&f(json!({ "tags": ["m.favourite"] })), &r));
        assert!(!matches(&f(json!({ "tags": ["m.lowpriority"] })), &r));
        assert!(!matches(&f(json!({ "tags": ["m.favourite"], "not_tags": ["u.work"] })), &r));
        r.parents = vec!["!space".into()];
        assert!(matches(&f(json!({ "spaces": ["!other", "!space"] })), &r));
        assert!(!matches(&f(json!({ "spaces": ["!other"] })), &r));
        assert!(!matches(&f(json!({ "not_room_types": [null] })), &r));
        assert!(!matches(&f(json!({ "is_invited": true })), &r));

        let mut left = room("!l", "leave", 1);
        left.membership_sender = "@me:x".into();
        assert!(!in_server_list(&left, "@me:x", false));
        assert!(in_server_list(&left, "@me:x", true));
        left.membership_sender = "@mod:x".into();
        assert!(in_server_list(&left, "@me:x", false));
        assert!(in_server_list(&room("!b", "ban", 1), "@me:x", false));
        let never = RoomEntry { banned_never_joined: true, ..room("!n", "ban", 1) };
        assert!(!in_server_list(&never, "@me:x", true));
        assert_eq!(dm_rooms(&json!({ "@a:x": ["!1", "!2"], "@b:x": ["!3"], "@c:x": "bad" })).len(), 3);
    }
}
