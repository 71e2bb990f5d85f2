//! `required_state` (MSC4186, `RequiredStateRequest`): which state a room config returns.
//!
//! The wire forms: `[[type, state_key], ...]` as clients send it today (`*` a wildcard,
//! `$ME` the user, `["m.room.member", "$LAZY"]` lazy members), and the newer
//! `{include: [{type?, state_key?}], exclude: [...], lazy_members}`. Configs combined from
//! several lists and subscriptions are kept as their parts (MSC4186, "Combining
//! `required_state`", approach a): a state event is returned if any part returns it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::err;
use crate::error::Result;

pub const MEMBER: &str = "m.room.member";

/// One `(type, state_key)` pattern; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elem {
    #[serde(rename = "t", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(rename = "k", skip_serializing_if = "Option::is_none", default)]
    pub key: Option<String>,
}

impl Elem {
    fn matches(&self, kind: &str, key: &str) -> bool {
        self.kind.as_deref().is_none_or(|k| k == kind) && self.key.as_deref().is_none_or(|k| k == key)
    }

    /// Matches every member event.
    fn all_members(&self) -> bool {
        self.kind.as_deref().is_none_or(|k| k == MEMBER) && self.key.is_none()
    }
}

/// One config's `required_state`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    #[serde(rename = "i", default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<Elem>,
    #[serde(rename = "x", default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Elem>,
    #[serde(rename = "l", default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy: bool,
    /// The newer form's `lazy_members`: wildcards then do not cover member events, only
    /// members named explicitly do (MSC4186, "Lazy loaded memberships").
    #[serde(rename = "s", default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy_only: bool,
}

impl Part {
    fn matches(&self, kind: &str, key: &str) -> bool {
        let included = |e: &Elem| e.matches(kind, key) && !(self.lazy_only && kind == MEMBER && (e.kind.is_none() || e.key.is_none()));
        self.include.iter().any(included) && !self.exclude.iter().any(|e| e.matches(kind, key))
    }

    /// Returns every member event.
    fn all_members(&self) -> bool {
        !self.lazy_only && self.include.iter().any(Elem::all_members) && !self.exclude.iter().any(|e| e.kind.as_deref().is_none_or(|k| k == MEMBER))
    }
}

/// A combined `required_state`: the union of its parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredState {
    #[serde(rename = "p", default)]
    pub parts: Vec<Part>,
    /// Lazy members (any part asks for them and none returns every member).
    #[serde(skip)]
    pub lazy: bool,
    /// The request used the newer object form, whose responses carry state stubs for
    /// deleted state (MSC4186, `StateStub`). The pair form is the wire Synapse and today's
    /// clients speak, which has no stubs (matrix-rust-sdk reads each entry as a state event).
    #[serde(skip)]
    pub stubs: bool,
}

fn pattern(v: Option<&str>, me: &str) -> Option<String> {
    match v {
        None | Some("*") => None,
        Some("$ME") => Some(me.to_owned()),
        Some(s) => Some(s.to_owned()),
    }
}

fn elems(v: Option<&Value>, me: &str) -> Result<Vec<Elem>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(vec![]) };
    let items = v.as_array().ok_or_else(|| err!(InvalidParam, "required_state include/exclude must be arrays"))?;
    Ok(items
        .iter()
        .map(|e| Elem {
            kind: e.get("type").and_then(Value::as_str).map(str::to_owned),
            key: pattern(e.get("state_key").and_then(Value::as_str), me),
        })
        .collect())
}

impl RequiredState {
    /// Parses either wire form; `me` replaces `$ME`.
    pub fn parse(v: &Value, me: &str) -> Result<RequiredState> {
        let part = match v {
            Value::Null => return Ok(RequiredState::default()),
            Value::Array(pairs) => {
                let mut part = Part::default();
                for p in pairs {
                    let (Some(kind), Some(key)) = (p.get(0).and_then(Value::as_str), p.get(1).and_then(Value::as_str)) else {
                        return Err(err!(InvalidParam, "required_state entries are [type, state_key] pairs"));
                    };
                    if kind == MEMBER && key == "$LAZY" {
                        part.lazy = true;
                        continue;
                    }
                    part.include.push(Elem { kind: pattern(Some(kind), me), key: pattern(Some(key), me) });
                }
                part
            }
            Value::Object(o) => {
                let lazy = o.get("lazy_members").and_then(Value::as_bool).unwrap_or(false);
                Part { include: elems(o.get("include"), me)?, exclude: elems(o.get("exclude"), me)?, lazy, lazy_only: lazy }
            }
            _ => return Err(err!(InvalidParam, "required_state must be a list or an object")),
        };
        let mut rs = RequiredState { parts: vec![], lazy: false, stubs: v.is_object() };
        rs.add(part);
        Ok(rs)
    }

    fn add(&mut self, part: Part) {
        if (part.include.is_empty() && !part.lazy) || self.parts.contains(&part) {
            return;
        }
        self.parts.push(part);
        self.lazy = self.parts.iter().any(|p| p.lazy) && !self.parts.iter().any(Part::all_members);
    }

    /// The union with another config.
    pub fn merge(&mut self, o: &RequiredState) {
        for p in &o.parts {
            self.add(p.clone());
        }
        self.stubs |= o.stubs;
    }

    /// Recomputes the derived flags after deserialising.
    pub fn normalised(mut self) -> RequiredState {
        let parts = std::mem::take(&mut self.parts);
        for p in parts {
            self.add(p);
        }
        self
    }

    /// Does this config return the state event at `(kind, key)`?
    pub fn matches(&self, kind: &str, key: &str) -> bool {
        self.parts.iter().any(|p| p.matches(kind, key))
    }

    /// Could a room sent with this config have given the client the state at `(kind, key)`?
    /// What it matches, and any member event when it loads members lazily. (A stub for a key
    /// the client lacks tells it nothing new; one it needs and misses leaves it stale.)
    pub fn may_have_sent(&self, kind: &str, key: &str) -> bool {
        self.matches(kind, key) || (kind == MEMBER && self.parts.iter().any(|p| p.lazy))
    }

    /// Everything `o` returns, this returns too (each of `o`'s parts is one of ours), so
    /// moving from this config to `o` sends no state the client lacks.
    pub fn covers(&self, o: &RequiredState) -> bool {
        o.parts.iter().all(|p| self.parts.contains(p))
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(v: Value) -> RequiredState {
        RequiredState::parse(&v, "@me:x").unwrap()
    }

    #[test]
    fn what_a_config_may_have_sent() {
        let r = rs(json!([["m.room.topic", ""], ["m.room.member", "$LAZY"]]));
        assert!(r.may_have_sent("m.room.topic", ""));
        assert!(r.may_have_sent(MEMBER, "@someone:x"));
        assert!(!r.may_have_sent("m.room.name", ""));
        let r = rs(json!({ "include": [{ "type": "m.room.name", "state_key": "" }] }));
        assert!(r.may_have_sent("m.room.name", "") && !r.may_have_sent(MEMBER, "@someone:x"));
    }

    #[test]
    fn pairs_with_wildcards_me_and_lazy() {
        let r = rs(json!([["m.room.name", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"], ["m.space.child", "*"]]));
        assert!(r.matches("m.room.name", ""));
        assert!(!r.matches("m.room.name", "x"));
        assert!(r.matches(MEMBER, "@me:x"));
        assert!(!r.matches(MEMBER, "@other:x"));
        assert!(r.matches("m.space.child", "!any:x"));
        assert!(!r.matches("m.room.topic", ""));
        assert!(r.lazy && !r.stubs);
        let all = rs(json!([["*", "*"]]));
        assert!(all.matches("anything", "at all"));
        let any_type = rs(json!([["*", ""]]));
        assert!(any_type.matches("m.room.topic", "") && !any_type.matches(MEMBER, "@me:x"));
    }

    #[test]
    fn object_form_with_exclude() {
        let r = rs(json!({ "include": [{}], "exclude": [{ "type": "m.room.create", "state_key": "" }], "lazy_members": true }));
        assert!(r.matches("m.room.topic", "") && !r.matches("m.room.create", ""));
        assert!(r.stubs);
        // Lazy: the wildcard does not cover members, a member named explicitly is returned.
        assert!(r.lazy && !r.matches(MEMBER, "@a:x"));
        let r = rs(json!({ "include": [{}, { "type": "m.room.member", "state_key": "$ME" }], "lazy_members": true }));
        assert!(r.lazy && r.matches(MEMBER, "@me:x") && !r.matches(MEMBER, "@a:x"));
        // Every member returned: not lazy.
        assert!(!rs(json!({ "include": [{}] })).lazy);
        let r = rs(json!({ "include": [{ "type": "m.room.name" }], "lazy_members": true }));
        assert!(r.lazy && r.matches("m.room.name", "") && !r.matches(MEMBER, "@a:x"));
        assert!(rs(json!(null)).is_empty() && rs(json!([])).is_empty());
        assert!(RequiredState::parse(&json!([["only-type"]]), "@me:x").is_err());
    }

    #[test]
    fn combining_is_a_union() {
        let mut a = rs(json!([["m.room.name", ""], ["m.room.member", "$LAZY"]]));
        let b = rs(json!({ "include": [{ "type": "m.room.topic" }], "exclude": [{ "type": "m.room.name" }] }));
        a.merge(&b);
        assert!(a.matches("m.room.name", "") && a.matches("m.room.topic", ""));
        assert!(a.lazy && a.stubs);
        assert!(a.covers(&b) && !b.covers(&a));
        // Merging the same config again changes nothing.
        let before = a.clone();
        a.merge(&b);
        assert_eq!(a, before);
        // A config returning every member switches lazy loading off.
        a.merge(&rs(json!([["m.room.member", "*"]])));
        assert!(!a.lazy && a.matches(MEMBER, "@a:x"));
        // Round trip through the connection store.
        let back: RequiredState = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back.normalised().parts, a.parts);
    }
}
