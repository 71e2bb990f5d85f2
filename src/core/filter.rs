//! Event filters (spec: client-server-api, "Filtering"): the `RoomEventFilter` fields that
//! select events by type, sender, URL, and lazy-loading of members; and the whole [`Filter`]
//! that `/sync` takes, inline or stored with `POST /user/{userId}/filter`.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RoomEventFilter {
    pub limit: Option<u32>,
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    #[serde(default)]
    pub not_senders: Vec<String>,
    pub contains_url: Option<bool>,
    #[serde(default)]
    pub lazy_load_members: bool,
    #[serde(default)]
    pub include_redundant_members: bool,
    pub rooms: Option<Vec<String>>,
    #[serde(default)]
    pub not_rooms: Vec<String>,
    /// Per-thread unread counts in `/sync` (`unread_thread_notifications`).
    #[serde(default)]
    pub unread_thread_notifications: bool,
}

/// `*` matches any run of characters, as the spec allows in type filters.
pub fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(s) = s.strip_prefix(head) else {
                return false;
            };
            // `get` is None off a char boundary.
            (0..=s.len()).filter_map(|i| s.get(i..)).any(|tail| glob(rest, tail))
        }
    }
}

impl RoomEventFilter {
    /// Parses the `filter` query parameter: inline JSON. (Stored filter IDs arrive with sync.)
    pub fn from_param(p: Option<&str>) -> Result<RoomEventFilter, String> {
        match p {
            None => Ok(RoomEventFilter::default()),
            Some(s) if s.trim_start().starts_with('{') => serde_json::from_str(s).map_err(|e| format!("Invalid filter: {e}")),
            Some(_) => Ok(RoomEventFilter::default()),
        }
    }

    pub fn matches(&self, kind: &str, sender: &str, content: &serde_json::Value) -> bool {
        if self.not_types.iter().any(|t| glob(t, kind)) {
            return false;
        }
        if let Some(types) = &self.types {
            if !types.iter().any(|t| glob(t, kind)) {
                return false;
            }
        }
        if self.not_senders.iter().any(|s| s == sender) {
            return false;
        }
        if let Some(senders) = &self.senders {
            if !senders.iter().any(|s| s == sender) {
                return false;
            }
        }
        if let Some(want) = self.contains_url {
            if content.get("url").is_some_and(|u| u.is_string()) != want {
                return false;
            }
        }
        true
    }
}

/// The top-level filter (spec: `filter.yaml`, `Filter`). Unknown fields are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Filter {
    pub event_fields: Option<Vec<String>>,
    pub event_format: Option<String>,
    #[serde(default)]
    pub presence: RoomEventFilter,
    #[serde(default)]
    pub account_data: RoomEventFilter,
    #[serde(default)]
    pub room: RoomFilter,
}

/// `Filter.room`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RoomFilter {
    pub rooms: Option<Vec<String>>,
    #[serde(default)]
    pub not_rooms: Vec<String>,
    #[serde(default)]
    pub include_leave: bool,
    #[serde(default)]
    pub state: RoomEventFilter,
    #[serde(default)]
    pub timeline: RoomEventFilter,
    #[serde(default)]
    pub ephemeral: RoomEventFilter,
    #[serde(default)]
    pub account_data: RoomEventFilter,
}

impl RoomFilter {
    /// Whether a room is selected by `rooms`/`not_rooms`.
    pub fn room_allowed(&self, room_id: &str) -> bool {
        if self.not_rooms.iter().any(|r| r == room_id) {
            return false;
        }
        self.rooms.as_ref().is_none_or(|rs| rs.iter().any(|r| r == room_id))
    }
}

impl Filter {
    /// Parses and checks a filter body (`POST /user/{userId}/filter`, inline `/sync` filters).
    pub fn parse(v: &serde_json::Value) -> Result<Filter, String> {
        if !v.is_object() {
            return Err("Filter must be a JSON object".into());
        }
        let f: Filter = serde_json::from_value(v.clone()).map_err(|e| format!("Invalid filter: {e}"))?;
        if let Some(fmt) = &f.event_format {
            if fmt != "client" && fmt != "federation" {
                return Err("event_format must be client or federation".into());
            }
        }
        Ok(f)
    }

    /// Lazy-loading of members is asked for on the state filter (and honoured on the
    /// timeline filter too, as some clients put it there).
    pub fn lazy_load_members(&self) -> bool {
        self.room.state.lazy_load_members || self.room.timeline.lazy_load_members
    }

    pub fn include_redundant_members(&self) -> bool {
        self.room.state.include_redundant_members || self.room.timeline.include_redundant_members
    }

    /// The timeline limit: the filter's, capped; 10 by default (as Synapse).
    pub fn timeline_limit(&self) -> u32 {
        self.room.timeline.limit.unwrap_or(10).clamp(1, 200)
    }
}

/// Keeps only the listed dotted-path fields of a client event (`event_fields`). A field
/// name's `.` can be escaped as `\.`.
pub fn apply_event_fields(ev: &serde_json::Value, fields: &[String]) -> serde_json::Value {
    use serde_json::{Map, Value};
    fn split(path: &str) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut chars = path.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'.') => {
                    out.last_mut().expect("non-empty").push('.');
                    chars.next();
                }
                '.' => out.push(String::new()),
                c => out.last_mut().expect("non-empty").push(c),
            }
        }
        out
    }
    let mut out = Value::Object(Map::new());
    for f in fields {
        let path = split(f);
        let mut src = ev;
        let mut found = true;
        for k in &path {
            match src.get(k) {
                Some(v) => src = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut dst = &mut out;
        for (i, k) in path.iter().enumerate() {
            if i + 1 == path.len() {
                dst[k.as_str()] = src.clone();
            } else {
                if !dst.get(k).is_some_and(Value::is_object) {
                    dst[k.as_str()] = Value::Object(Map::new());
                }
                dst = &mut dst[k.as_str()];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globbing() {
        assert!(glob("m.*", "m.room.message"));
        assert!(glob("*", "x"));
        assert!(glob("m.room.*.x", "m.room.a.b.x"));
        assert!(!glob("m.room", "m.room.message"));
    }

    #[test]
    fn matching() {
        let f: RoomEventFilter = serde_json::from_value(json!({
            "types": ["m.room.*"], "not_types": ["m.room.member"], "not_senders": ["@spam:x"], "contains_url": true
        }))
        .unwrap();
        assert!(f.matches("m.room.message", "@a:x", &json!({"url": "mxc://a/b"})));
        assert!(!f.matches("m.room.message", "@a:x", &json!({})));
        assert!(!f.matches("m.room.member", "@a:x", &json!({"url": "mxc://a/b"})));
        assert!(!f.matches("m.reaction", "@a:x", &json!({"url": "mxc://a/b"})));
        assert!(!f.matches("m.room.message", "@spam:x", &json!({"url": "mxc://a/b"})));
        assert!(RoomEventFilter::from_param(Some("{bad")).is_err());
    }

    #[test]
    fn sync_filter() {
        let f = Filter::parse(&json!({
            "room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": true}, "include_leave": true, "not_rooms": ["!a:x"]},
            "event_fields": ["type", "content.body"]
        }))
        .unwrap();
        assert_eq!(f.timeline_limit(), 3);
        assert!(f.lazy_load_members());
        assert!(f.room.include_leave);
        assert!(!f.room.room_allowed("!a:x"));
        assert!(f.room.room_allowed("!b:x"));
        assert!(Filter::parse(&json!({"event_format": "nope"})).is_err());
        assert!(Filter::parse(&json!([])).is_err());
        assert_eq!(Filter::default().timeline_limit(), 10);
    }

    #[test]
    fn event_fields() {
        let ev = json!({"type": "m.room.message", "content": {"body": "hi", "msgtype": "m.text", "a.b": 1}, "sender": "@a:x"});
        let out = apply_event_fields(&ev, &["type".into(), "content.body".into(), "content.a\\.b".into(), "nope.x".into()]);
        assert_eq!(out, json!({"type": "m.room.message", "content": {"body": "hi", "a.b": 1}}));
    }
}
