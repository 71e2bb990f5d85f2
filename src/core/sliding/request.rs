//! The request of the unstable endpoint as matrix-rust-sdk and matrix-js-sdk send it (lists
//! with `ranges`, `required_state` as `[type, state_key]` pairs), also accepting the newer
//! shapes of MSC4186 (`range`, `required_state: {include, exclude, lazy_members}`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::state::RequiredState;
use crate::err;
use crate::error::Result;

/// MSC4186, "Request body": more lists or subscriptions than this is `M_INVALID_PARAM`.
pub const MAX_LISTS: usize = 100;
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// The server caps `timeline_limit` (MSC4186: "The server may cap this number").
pub const MAX_TIMELINE_LIMIT: u32 = 100;

/// A room config (MSC4186, "Combining room configs"): how much timeline and which state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomConfig {
    pub timeline_limit: u32,
    pub required_state: RequiredState,
}

impl RoomConfig {
    /// The superset of two configs: the larger limit, the union of the state.
    pub fn merge(&mut self, o: &RoomConfig) {
        self.timeline_limit = self.timeline_limit.max(o.timeline_limit);
        self.required_state.merge(&o.required_state);
    }
}

/// `SlidingRoomFilter` (MSC4186). `None` means "either".
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Filters {
    pub is_dm: Option<bool>,
    pub is_encrypted: Option<bool>,
    #[serde(alias = "is_invited")]
    pub is_invite: Option<bool>,
    /// Create-event types to keep; `None` in the list is "no type".
    pub room_types: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub not_room_types: Vec<Option<String>>,
}

/// One list: its window over the filtered, ordered rooms and the config of the rooms in it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListConfig {
    /// Inclusive `[start, end]` windows; `None` is the whole list (MSC4186: `range` missing).
    pub ranges: Option<Vec<(u64, u64)>>,
    pub filters: Filters,
    pub room: RoomConfig,
}

/// A parsed request.
#[derive(Clone, Debug, Default)]
pub struct SlidingRequest {
    pub conn_id: String,
    pub txn_id: Option<String>,
    pub pos: Option<String>,
    pub timeout: Option<u64>,
    pub set_presence: Option<String>,
    pub lists: BTreeMap<String, ListConfig>,
    pub subscriptions: BTreeMap<String, RoomConfig>,
    /// The `extensions` object as sent (the extensions parse it themselves).
    pub extensions: Value,
}

#[derive(Deserialize)]
struct WireRoomConfig {
    #[serde(default)]
    timeline_limit: Option<Value>,
    #[serde(default)]
    required_state: Value,
}

#[derive(Deserialize)]
struct WireList {
    #[serde(default)]
    ranges: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    range: Option<Vec<Value>>,
    #[serde(default)]
    filters: Option<Filters>,
    #[serde(flatten)]
    room: WireRoomConfig,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    conn_id: Option<String>,
    #[serde(default)]
    txn_id: Option<String>,
    #[serde(default)]
    pos: Option<String>,
    #[serde(default)]
    timeout: Option<Value>,
    #[serde(default)]
    set_presence: Option<String>,
    #[serde(default)]
    lists: BTreeMap<String, WireList>,
    #[serde(default)]
    room_subscriptions: BTreeMap<String, WireRoomConfig>,
    #[serde(default)]
    extensions: Value,
}

/// A non-negative integer, as JSON clients write it (some send numbers as floats).
fn uint(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

fn range(pair: &[Value]) -> Result<(u64, u64)> {
    match pair {
        [a, b] => match (uint(a), uint(b)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(err!(InvalidParam, "A range is two non-negative integers")),
        },
        _ => Err(err!(InvalidParam, "A range is two non-negative integers")),
    }
}

fn room_config(w: &WireRoomConfig, me: &str) -> Result<RoomConfig> {
    let timeline_limit = match &w.timeline_limit {
        None | Some(Value::Null) => 0,
        Some(v) => uint(v).ok_or_else(|| err!(InvalidParam, "timeline_limit must be a non-negative integer"))?,
    };
    Ok(RoomConfig {
        timeline_limit: timeline_limit.min(MAX_TIMELINE_LIMIT as u64) as u32,
        required_state: RequiredState::parse(&w.required_state, me)?,
    })
}

impl SlidingRequest {
    /// Parses the body; `me` replaces `$ME` in `required_state`.
    pub fn parse(body: Value, me: &str) -> Result<SlidingRequest> {
        let w: Wire = serde_json::from_value(body).map_err(|e| err!(BadJson, "{e}"))?;
        if w.lists.len() > MAX_LISTS {
            return Err(err!(InvalidParam, "At most {MAX_LISTS} lists"));
        }
        if w.room_subscriptions.len() > MAX_SUBSCRIPTIONS {
            return Err(err!(InvalidParam, "At most {MAX_SUBSCRIPTIONS} room subscriptions"));
        }
        let mut lists = BTreeMap::new();
        for (name, l) in &w.lists {
            let ranges = match (&l.ranges, &l.range) {
                (Some(rs), _) => Some(rs.iter().map(|r| range(r)).collect::<Result<Vec<_>>>()?),
                (None, Some(r)) => Some(vec![range(r)?]),
                (None, None) => None,
            };
            let list = ListConfig { ranges, filters: l.filters.clone().unwrap_or_default(), room: room_config(&l.room, me)? };
            lists.insert(name.clone(), list);
        }
        let mut subscriptions = BTreeMap::new();
        for (room_id, s) in &w.room_subscriptions {
            subscriptions.insert(room_id.clone(), room_config(s, me)?);
        }
        let timeout = match &w.timeout {
            None | Some(Value::Null) => None,
            Some(v) => Some(uint(v).ok_or_else(|| err!(InvalidParam, "timeout must be a non-negative integer"))?),
        };
        Ok(SlidingRequest {
            conn_id: w.conn_id.unwrap_or_default(),
            txn_id: w.txn_id,
            pos: w.pos,
            timeout,
            set_presence: w.set_presence,
            lists,
            subscriptions,
            extensions: w.extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_matrix_rust_sdk_sends() {
        let body = json!({
            "conn_id": "room-list",
            "txn_id": "t1",
            "lists": { "all_rooms": {
                "ranges": [[0, 19]],
                "required_state": [["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"]],
                "timeline_limit": 1,
                "filters": { "not_room_types": ["m.space"] },
            }},
            "room_subscriptions": { "!a:x": { "required_state": [["*", "*"]], "timeline_limit": 500 } },
            "extensions": { "to_device": { "enabled": true } },
        });
        let r = SlidingRequest::parse(body, "@me:x").unwrap();
        assert_eq!(r.conn_id, "room-list");
        assert_eq!(r.txn_id.as_deref(), Some("t1"));
        let l = &r.lists["all_rooms"];
        assert_eq!(l.ranges, Some(vec![(0, 19)]));
        assert_eq!(l.room.timeline_limit, 1);
        assert_eq!(l.filters.not_room_types, vec![Some("m.space".to_owned())]);
        assert!(l.room.required_state.lazy);
        assert_eq!(r.subscriptions["!a:x"].timeline_limit, MAX_TIMELINE_LIMIT);
        assert_eq!(r.extensions["to_device"]["enabled"], true);
    }

    #[test]
    fn newer_range_and_limits() {
        let r = SlidingRequest::parse(json!({ "lists": { "a": { "range": [2, 5], "timeline_limit": 3, "required_state": {} } } }), "@me:x").unwrap();
        assert_eq!(r.lists["a"].ranges, Some(vec![(2, 5)]));
        let r = SlidingRequest::parse(json!({ "lists": { "a": { "ranges": [], "timeline_limit": 3 } } }), "@me:x").unwrap();
        assert_eq!(r.lists["a"].ranges, Some(vec![]));
        let many: serde_json::Map<String, Value> = (0..101).map(|i| (format!("l{i}"), json!({ "ranges": [[0, 1]] }))).collect();
        let e = SlidingRequest::parse(json!({ "lists": many }), "@me:x").unwrap_err();
        assert_eq!(e.kind().errcode(), "M_INVALID_PARAM");
        let e = SlidingRequest::parse(json!({ "lists": { "a": { "ranges": [[0]] } } }), "@me:x").unwrap_err();
        assert_eq!(e.kind().errcode(), "M_INVALID_PARAM");
    }
}
