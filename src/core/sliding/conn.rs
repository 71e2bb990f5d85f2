//! A connection's memory (MSC4186, "Connections"): per `pos`, the stream positions the
//! response covered and, per room sent, what the client now has. And the rule deciding what
//! a room needs in the next response given that memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::list::RoomEntry;
use super::request::RoomConfig;
use super::state::RequiredState;
use crate::core::sync_token::SyncToken;

/// What the client has of one room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentRoom {
    /// The user's membership when the room was last sent (a change sends it afresh).
    #[serde(rename = "m")]
    pub membership: String,
    /// Index into [`ConnState::configs`]: the `required_state` it was last sent with.
    #[serde(rename = "c")]
    pub config: usize,
    /// The room stream position up to which its timeline and state were sent.
    #[serde(rename = "t")]
    pub timeline_to: u64,
    /// How many of the latest events the client holds contiguously (timeline expansion).
    #[serde(rename = "l")]
    pub limit: u32,
}

/// The state of a connection after a response (stored under that response's `pos`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnState {
    /// The positions the response covered ([`SyncToken`] wire form).
    #[serde(rename = "t")]
    pub token: String,
    /// Each list's count as last sent.
    #[serde(rename = "l", default)]
    pub lists: BTreeMap<String, u64>,
    /// The distinct `required_state` configs rooms were sent with (rooms share a few).
    #[serde(rename = "c", default)]
    pub configs: Vec<RequiredState>,
    #[serde(rename = "r", default)]
    pub rooms: BTreeMap<String, SentRoom>,
}

impl ConnState {
    pub fn since(&self) -> Option<SyncToken> {
        SyncToken::decode(&self.token)
    }

    pub fn config_of(&self, sent: &SentRoom) -> Option<&RequiredState> {
        self.configs.get(sent.config)
    }

    /// The index of `rs` in `configs`, adding it if new.
    pub fn intern(&mut self, rs: &RequiredState) -> usize {
        if let Some(i) = self.configs.iter().position(|c| c.parts == rs.parts) {
            return i;
        }
        self.configs.push(rs.clone());
        self.configs.len() - 1
    }

    /// Drops configs no room uses any more.
    pub fn compact(&mut self) {
        let mut used: Vec<usize> = self.rooms.values().map(|r| r.config).collect();
        used.sort_unstable();
        used.dedup();
        let configs: Vec<RequiredState> = used.iter().filter_map(|&i| self.configs.get(i).cloned()).collect();
        for r in self.rooms.values_mut() {
            r.config = used.binary_search(&r.config).unwrap_or(0);
        }
        self.configs = configs;
    }

    /// Parses a stored state (configs normalised).
    pub fn parse(s: &str) -> Option<ConnState> {
        let mut c: ConnState = serde_json::from_str(s).ok()?;
        c.configs = c.configs.into_iter().map(RequiredState::normalised).collect();
        Some(c)
    }
}

/// What one room of the response needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomPlan {
    /// New to the connection (or the user's membership changed): everything afresh.
    pub initial: bool,
    /// The timeline read: events in `(after, up_to]`, the last `limit` of them.
    pub timeline: Option<(u64, u64)>,
    pub limit: u32,
    /// The timeline reaches back before what was sent (the limit grew).
    pub expanded: bool,
    /// Timeline events after this position are live (`num_live`).
    pub live_after: u64,
    /// The state read: the full state at `up_to` (initial, or the config widened), else the
    /// changes in `(state_after, up_to]`.
    pub full_state: bool,
    pub state_after: u64,
    pub up_to: u64,
    /// Stripped state only (invites and knocks).
    pub stripped: bool,
}

/// Decides what a room in the lists or subscriptions needs, if anything: `sent` is what the
/// connection had of it (with its config), `now` this response's room position, `prev` the
/// room position the previous response covered.
pub fn plan_room(r: &RoomEntry, cfg: &RoomConfig, sent: Option<(&SentRoom, &RequiredState)>, now: u64, prev: Option<u64>) -> Option<RoomPlan> {
    let up_to = r.visible_up_to(now);
    let stripped = matches!(r.membership.as_str(), "invite" | "knock");
    // A room is sent afresh when new to the connection or when the user's membership
    // changed, except from a join to a leave, kick or ban: then the timeline continues up
    // to that membership event (the client sees it), and stops there.
    let continues = |s: &SentRoom| {
        s.membership == r.membership
            || (matches!(s.membership.as_str(), "join" | "leave" | "ban") && matches!(r.membership.as_str(), "leave" | "ban"))
    };
    let fresh = sent.is_none_or(|(s, _)| !continues(s));
    if fresh {
        return Some(RoomPlan {
            initial: true,
            timeline: (!stripped && cfg.timeline_limit > 0).then_some((0, up_to)),
            limit: cfg.timeline_limit,
            expanded: false,
            live_after: prev.unwrap_or(up_to),
            full_state: !stripped,
            state_after: 0,
            up_to,
            stripped,
        });
    }
    let (s, sent_cfg) = sent?;
    if stripped {
        return None;
    }
    let news = r.last_event.min(up_to) > s.timeline_to;
    let expanded = cfg.timeline_limit > s.limit;
    let widened = !sent_cfg.covers(&cfg.required_state);
    if !news && !expanded && !widened {
        return None;
    }
    let timeline = if expanded { Some((0, up_to)) } else { news.then_some((s.timeline_to, up_to)) };
    Some(RoomPlan {
        initial: false,
        timeline,
        limit: cfg.timeline_limit,
        expanded,
        live_after: s.timeline_to,
        full_state: widened,
        state_after: s.timeline_to,
        up_to,
        stripped: false,
    })
}

/// What the connection remembers after sending a room: `limited` (the timeline had a gap)
/// leaves the client only the sent events contiguous.
pub fn after_send(prev: Option<&SentRoom>, membership: &str, config: usize, up_to: u64, limit: u32, limited: bool) -> SentRoom {
    let kept = match prev {
        Some(p) if !limited && p.membership == membership => p.limit.max(limit),
        _ => limit,
    };
    SentRoom { membership: membership.to_owned(), config, timeline_to: up_to, limit: kept }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(membership: &str, last_event: u64) -> RoomEntry {
        RoomEntry { room_id: "!r".into(), membership: membership.into(), membership_stream: 3, last_event, ..Default::default() }
    }

    fn cfg(limit: u32, rs: serde_json::Value) -> RoomConfig {
        RoomConfig { timeline_limit: limit, required_state: RequiredState::parse(&rs, "@me:x").unwrap() }
    }

    #[test]
    fn new_rooms_come_whole_and_known_rooms_only_with_news() {
        let c = cfg(1, json!([["m.room.name", ""]]));
        let p = plan_room(&entry("join", 10), &c, None, 10, None).unwrap();
        assert!(p.initial && p.full_state);
        assert_eq!((p.timeline, p.live_after), (Some((0, 10)), 10));

        let sent = SentRoom { membership: "join".into(), config: 0, timeline_to: 10, limit: 1 };
        let rs = c.required_state.clone();
        assert_eq!(plan_room(&entry("join", 10), &c, Some((&sent, &rs)), 12, Some(10)), None);
        let p = plan_room(&entry("join", 12), &c, Some((&sent, &rs)), 12, Some(10)).unwrap();
        assert!(!p.initial && !p.full_state && !p.expanded);
        assert_eq!((p.timeline, p.state_after, p.live_after), (Some((10, 12)), 10, 10));

        // A bigger timeline_limit expands the timeline; a different required_state reads the
        // full state to find what it adds.
        let p = plan_room(&entry("join", 10), &cfg(5, json!([["m.room.name", ""]])), Some((&sent, &rs)), 12, Some(10)).unwrap();
        assert!(p.expanded && p.timeline == Some((0, 12)));
        let p = plan_room(&entry("join", 10), &cfg(1, json!([["*", "*"]])), Some((&sent, &rs)), 12, Some(10)).unwrap();
        assert!(p.full_state && p.timeline.is_none());
        // A narrower config sends nothing by itself.
        let wide = cfg(1, json!([["*", "*"]])).required_state;
        let mut both = wide.clone();
        both.merge(&rs);
        assert_eq!(plan_room(&entry("join", 10), &c, Some((&sent, &both)), 12, Some(10)), None);
    }

    #[test]
    fn memberships() {
        let c = cfg(5, json!([]));
        // Kicked: nothing after the kick (at 3).
        let p = plan_room(&entry("leave", 20), &c, None, 20, Some(2)).unwrap();
        assert_eq!((p.timeline, p.up_to), (Some((0, 3)), 3));
        let sent = SentRoom { membership: "leave".into(), config: 0, timeline_to: 3, limit: 5 };
        assert_eq!(plan_room(&entry("leave", 20), &c, Some((&sent, &c.required_state)), 20, Some(3)), None);
        // Joined, then kicked: the events since, up to the kick, not afresh.
        let joined = SentRoom { membership: "join".into(), timeline_to: 1, ..sent.clone() };
        let p = plan_room(&entry("leave", 20), &c, Some((&joined, &c.required_state)), 20, Some(1)).unwrap();
        assert!(!p.initial);
        assert_eq!((p.timeline, p.up_to), (Some((1, 3)), 3));
        // Invites: stripped state once; joining sends the room afresh.
        let p = plan_room(&entry("invite", 20), &c, None, 20, None).unwrap();
        assert!(p.stripped && p.timeline.is_none() && !p.full_state);
        let inv = SentRoom { membership: "invite".into(), ..sent };
        assert_eq!(plan_room(&entry("invite", 25), &c, Some((&inv, &c.required_state)), 25, Some(20)), None);
        assert!(plan_room(&entry("join", 25), &c, Some((&inv, &c.required_state)), 25, Some(20)).unwrap().initial);
    }

    #[test]
    fn state_round_trip_and_memory() {
        let mut s = ConnState { token: SyncToken { rooms: 4, ..Default::default() }.encode(), ..Default::default() };
        let a = cfg(1, json!([["m.room.name", ""]])).required_state;
        let b = cfg(1, json!([["*", "*"]])).required_state;
        let ia = s.intern(&a);
        let ib = s.intern(&b);
        assert_eq!((ia, ib, s.intern(&a)), (0, 1, 0));
        s.rooms.insert("!r".into(), after_send(None, "join", ib, 4, 1, false));
        s.compact();
        assert_eq!(s.configs.len(), 1);
        assert_eq!(s.rooms["!r"].config, 0);
        let back = ConnState::parse(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.since().map(|t| t.rooms), Some(4));
        // The contiguous history the client holds.
        let prev = after_send(None, "join", 0, 4, 20, false);
        assert_eq!(after_send(Some(&prev), "join", 0, 6, 1, false).limit, 20);
        assert_eq!(after_send(Some(&prev), "join", 0, 6, 1, true).limit, 1);
    }
}
