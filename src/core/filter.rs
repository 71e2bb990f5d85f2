//! Event filters (spec: client-server-api, "Filtering"): the `RoomEventFilter` fields that
//! select events by type, sender, URL, and lazy-loading of members.

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
}

/// `*` matches any run of characters, as the spec allows in type filters.
pub fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            if !s.starts_with(head) {
                return false;
            }
            let s = &s[head.len()..];
            (0..=s.len()).filter(|i| s.is_char_boundary(*i)).any(|i| glob(rest, &s[i..]))
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
}
