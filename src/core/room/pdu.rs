//! PDUs (spec: server-server-api, "PDUs"; rooms/vN "Event format"): building and signing a
//! local event, its reference-hash event ID, and the in-memory form used by the auth rules.

use std::collections::BTreeMap;

use ruma::canonical_json::{redact, CanonicalJsonObject, CanonicalJsonValue};
use ruma::events::TimelineEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::serde::Raw;
use ruma::signatures::{hash_and_sign_event, reference_hash};
use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId};
use serde_json::value::RawValue as RawJsonValue;
use serde_json::Value;

use crate::core::signing::ServerSigningKey;
use crate::err;
use crate::error::{Error, Result};

/// The spec's size limit for a PDU (65536 bytes of canonical JSON).
pub const MAX_PDU_BYTES: usize = 65_536;

/// An event in a room, as stored: its ID, the full signed JSON, and the fields the auth
/// rules and state resolution read.
#[derive(Clone, Debug)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawJsonValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    pub rejected: bool,
    /// The PDU as signed (no `unsigned`).
    pub json: CanonicalJsonObject,
}

fn field<'a>(obj: &'a CanonicalJsonObject, key: &str) -> Result<&'a CanonicalJsonValue> {
    obj.get(key).ok_or_else(|| err!(BadJson, "PDU is missing `{key}`"))
}

fn str_field<'a>(obj: &'a CanonicalJsonObject, key: &str) -> Result<&'a str> {
    match field(obj, key)? {
        CanonicalJsonValue::String(s) => Ok(s),
        _ => Err(err!(BadJson, "PDU field `{key}` must be a string")),
    }
}

fn id_list(obj: &CanonicalJsonObject, key: &str) -> Result<Vec<OwnedEventId>> {
    match field(obj, key)? {
        CanonicalJsonValue::Array(a) => a
            .iter()
            .map(|v| match v {
                CanonicalJsonValue::String(s) => EventId::parse(s).map_err(|_| err!(BadJson, "bad event ID in `{key}`")),
                _ => Err(err!(BadJson, "`{key}` must hold event IDs")),
            })
            .collect(),
        _ => Err(err!(BadJson, "`{key}` must be an array")),
    }
}

impl Pdu {
    /// Reads a PDU from its JSON. `room_id` is given for room-v12 create events, whose room
    /// ID is derived from their event ID rather than carried.
    pub fn from_json(event_id: OwnedEventId, json: CanonicalJsonObject, room_id: Option<&RoomId>) -> Result<Pdu> {
        let room_id = match (json.get("room_id"), room_id) {
            (Some(CanonicalJsonValue::String(s)), _) => RoomId::parse(s).map_err(|_| err!(BadJson, "bad room_id"))?,
            (_, Some(r)) => r.to_owned(),
            _ => return Err(err!(BadJson, "PDU has no room_id")),
        };
        let sender = UserId::parse(str_field(&json, "sender")?).map_err(|_| err!(BadJson, "bad sender"))?;
        let ts = match field(&json, "origin_server_ts")? {
            CanonicalJsonValue::Integer(i) => u64::try_from(i64::from(*i)).unwrap_or(0),
            _ => return Err(err!(BadJson, "bad origin_server_ts")),
        };
        let depth = match json.get("depth") {
            Some(CanonicalJsonValue::Integer(i)) => u64::try_from(i64::from(*i)).unwrap_or(0),
            _ => 0,
        };
        let content = match field(&json, "content")? {
            v @ CanonicalJsonValue::Object(_) => RawJsonValue::from_string(serde_json::to_string(v)?)?,
            _ => return Err(err!(BadJson, "content must be an object")),
        };
        let state_key = match json.get("state_key") {
            Some(CanonicalJsonValue::String(s)) => Some(s.clone()),
            None => None,
            _ => return Err(err!(BadJson, "state_key must be a string")),
        };
        // `redacts` moved into content in room v11.
        let redacts = match json.get("redacts") {
            Some(CanonicalJsonValue::String(s)) => EventId::parse(s).ok(),
            _ => match json.get("content") {
                Some(CanonicalJsonValue::Object(c)) => match c.get("redacts") {
                    Some(CanonicalJsonValue::String(s)) => EventId::parse(s).ok(),
                    _ => None,
                },
                _ => None,
            },
        };
        Ok(Pdu {
            event_id,
            room_id,
            sender,
            origin_server_ts: MilliSecondsSinceUnixEpoch(UInt::new_saturating(ts)),
            kind: TimelineEventType::from(str_field(&json, "type")?),
            content,
            state_key,
            prev_events: id_list(&json, "prev_events")?,
            auth_events: id_list(&json, "auth_events")?,
            redacts,
            depth,
            rejected: false,
            json,
        })
    }

    /// The event as stripped state: type, state key, sender and content.
    pub fn stripped(&self) -> Value {
        serde_json::json!({ "type": self.kind.to_string(), "state_key": self.state_key, "sender": self.sender, "content": self.content_value() })
    }

    /// For an `m.room.create` event: whether `user` is a room creator (its sender, or one of
    /// `additional_creators` from room v12).
    pub fn names_creator(&self, user: &str) -> bool {
        self.sender.as_str() == user
            || self.content_value().get("additional_creators").and_then(Value::as_array).is_some_and(|a| a.iter().any(|u| u == user))
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }

    /// The event as clients see it (spec: client-server-api, "Room Event Format"): the
    /// PDU's client fields plus `event_id`, `room_id` and `unsigned`.
    pub fn to_client(&self, unsigned: Option<Value>) -> Value {
        let mut ev = serde_json::Map::new();
        for key in ["content", "origin_server_ts", "sender", "state_key", "type", "redacts"] {
            if let Some(v) = self.json.get(key) {
                ev.insert(key.into(), serde_json::to_value(v).unwrap_or(Value::Null));
            }
        }
        // Room v11 moved `redacts` into content; clients still read it at the top level.
        if let (Some(r), false) = (&self.redacts, ev.contains_key("redacts")) {
            ev.insert("redacts".into(), Value::String(r.to_string()));
        }
        ev.insert("event_id".into(), Value::String(self.event_id.to_string()));
        ev.insert("room_id".into(), Value::String(self.room_id.to_string()));
        if let Some(u) = unsigned {
            if u.as_object().is_some_and(|o| !o.is_empty()) {
                ev.insert("unsigned".into(), u);
            }
        }
        Value::Object(ev)
    }

    /// This event redacted by the room version's algorithm.
    pub fn redacted(&self, rules: &RoomVersionRules) -> Result<Pdu> {
        let json = redact(self.json.clone(), &rules.redaction, None).map_err(Error::internal)?;
        let mut p = Pdu::from_json(self.event_id.clone(), json, Some(&self.room_id))?;
        p.rejected = self.rejected;
        Ok(p)
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        // Room v12 create events carry no room ID; the auth rules know.
        if self.json.contains_key("room_id") {
            Some(&self.room_id)
        } else {
            None
        }
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawJsonValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        self.rejected
    }
}

/// What a local user asks to send.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub kind: String,
    pub state_key: Option<String>,
    pub content: Value,
    pub sender: OwnedUserId,
    /// For redactions: the event redacted (in content from v11, top-level before).
    pub redacts: Option<OwnedEventId>,
}

/// Builds, hashes and signs a local PDU and computes its event ID (reference hash).
/// `room_id` is `None` only for a room-v12 create event, whose room ID is then derived.
#[allow(clippy::too_many_arguments)]
pub fn build_pdu(
    rules: &RoomVersionRules,
    room_id: Option<&RoomId>,
    new: &NewEvent,
    prev_events: &[OwnedEventId],
    auth_events: &[OwnedEventId],
    depth: u64,
    origin_server_ts: u64,
    server_name: &str,
    key: &ServerSigningKey,
) -> Result<Pdu> {
    let mut content = new.content.clone();
    if !content.is_object() {
        return Err(err!(BadJson, "content must be a JSON object"));
    }
    let mut obj = serde_json::Map::new();
    if let Some(r) = &new.redacts {
        if rules.redaction.content_field_redacts {
            if let Some(content) = content.as_object_mut() {
                content.insert("redacts".into(), Value::String(r.to_string()));
            }
        } else {
            obj.insert("redacts".into(), Value::String(r.to_string()));
        }
    }
    obj.insert("auth_events".into(), serde_json::to_value(auth_events)?);
    obj.insert("content".into(), content);
    obj.insert("depth".into(), Value::from(depth));
    obj.insert("origin_server_ts".into(), Value::from(origin_server_ts));
    obj.insert("prev_events".into(), serde_json::to_value(prev_events)?);
    if let Some(r) = room_id {
        obj.insert("room_id".into(), Value::String(r.to_string()));
    }
    obj.insert("sender".into(), Value::String(new.sender.to_string()));
    if let Some(k) = &new.state_key {
        obj.insert("state_key".into(), Value::String(k.clone()));
    }
    obj.insert("type".into(), Value::String(new.kind.clone()));

    // Canonical JSON refuses floats and out-of-range integers: a client error.
    let mut json: CanonicalJsonObject = match CanonicalJsonValue::try_from(Value::Object(obj)) {
        Ok(CanonicalJsonValue::Object(o)) => o,
        _ => return Err(err!(BadJson, "Event content is not canonical JSON (floats or huge integers?)")),
    };
    let unsigned_size = serde_json::to_vec(&json)?.len();
    if unsigned_size > MAX_PDU_BYTES {
        return Err(err!(TooLarge, "Event is too large ({unsigned_size} bytes; at most {MAX_PDU_BYTES})"));
    }
    hash_and_sign_event(server_name, key, &mut json, &rules.redaction).map_err(|e| err!(BadJson, "Cannot sign event: {e}"))?;
    let size = serde_json::to_vec(&json)?.len();
    if size > MAX_PDU_BYTES {
        return Err(err!(TooLarge, "Event is too large ({size} bytes; at most {MAX_PDU_BYTES})"));
    }
    let hash = reference_hash(&json, rules).map_err(|e| err!(TooLarge, "Cannot hash event: {e}"))?;
    let event_id = EventId::parse(format!("${hash}")).map_err(Error::internal)?;
    let room_id = match room_id {
        Some(r) => r.to_owned(),
        None => RoomId::new_v2(&hash).map_err(Error::internal)?,
    };
    Pdu::from_json(event_id, json, Some(&room_id))
}

/// Serialises a PDU's JSON for storage.
pub fn to_json_string(pdu: &Pdu) -> String {
    serde_json::to_string(&pdu.json).expect("canonical JSON serialises")
}

/// Parses stored JSON back into a canonical object.
pub fn parse_stored(json: &str) -> Result<CanonicalJsonObject> {
    let raw: Raw<CanonicalJsonObject> = Raw::from_json(RawJsonValue::from_string(json.to_owned())?);
    raw.deserialize().map_err(Error::internal)
}

/// A map from event ID to PDU.
pub type EventMap = BTreeMap<OwnedEventId, Pdu>;

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::RoomVersionId;
    use serde_json::json;

    fn key() -> ServerSigningKey {
        ServerSigningKey::generate()
    }

    #[test]
    fn v12_create_event_derives_room_id() {
        let rules = RoomVersionId::V12.rules().unwrap();
        let alice = UserId::parse("@alice:example.org").unwrap();
        let new = NewEvent {
            kind: "m.room.create".into(),
            state_key: Some(String::new()),
            content: json!({ "room_version": "12" }),
            sender: alice,
            redacts: None,
        };
        let pdu = build_pdu(&rules, None, &new, &[], &[], 1, 1000, "example.org", &key()).unwrap();
        assert_eq!(pdu.room_id.as_str(), format!("!{}", pdu.event_id.as_str().get(1..).unwrap()));
        assert!(!pdu.json.contains_key("room_id"));
        assert!(pdu.json.contains_key("hashes") && pdu.json.contains_key("signatures"));
    }

    #[test]
    fn event_id_is_reference_hash_and_stable() {
        let rules = RoomVersionId::V10.rules().unwrap();
        let room = RoomId::parse("!r:example.org").unwrap();
        let alice = UserId::parse("@alice:example.org").unwrap();
        let new = NewEvent { kind: "m.room.message".into(), state_key: None, content: json!({"body":"hi"}), sender: alice, redacts: None };
        let k = key();
        let a = build_pdu(&rules, Some(&room), &new, &[], &[], 3, 1000, "example.org", &k).unwrap();
        let b = build_pdu(&rules, Some(&room), &new, &[], &[], 3, 1000, "example.org", &k).unwrap();
        assert_eq!(a.event_id, b.event_id, "ed25519 is deterministic, so is the reference hash");
        let again = reference_hash(&a.json, &rules).unwrap();
        assert_eq!(a.event_id.as_str(), format!("${again}"));
        let c = build_pdu(&rules, Some(&room), &new, &[], &[], 4, 1000, "example.org", &k).unwrap();
        assert_ne!(a.event_id, c.event_id);
    }

    #[test]
    fn floats_and_oversize_are_client_errors() {
        let rules = RoomVersionId::V10.rules().unwrap();
        let room = RoomId::parse("!r:example.org").unwrap();
        let alice = UserId::parse("@alice:example.org").unwrap();
        let mut new = NewEvent { kind: "m.room.message".into(), state_key: None, content: json!({"x": 1.5}), sender: alice, redacts: None };
        let e = build_pdu(&rules, Some(&room), &new, &[], &[], 3, 1000, "example.org", &key()).unwrap_err();
        assert_eq!(e.kind().errcode(), "M_BAD_JSON");
        new.content = json!({ "body": "x".repeat(70_000) });
        let e = build_pdu(&rules, Some(&room), &new, &[], &[], 3, 1000, "example.org", &key()).unwrap_err();
        assert_eq!(e.kind().errcode(), "M_TOO_LARGE");
    }

    #[test]
    fn redaction_keeps_only_allowed_keys() {
        let rules = RoomVersionId::V11.rules().unwrap();
        let room = RoomId::parse("!r:example.org").unwrap();
        let alice = UserId::parse("@alice:example.org").unwrap();
        let new = NewEvent { kind: "m.room.message".into(), state_key: None, content: json!({"body":"secret"}), sender: alice, redacts: None };
        let pdu = build_pdu(&rules, Some(&room), &new, &[], &[], 3, 1000, "example.org", &key()).unwrap();
        let r = pdu.redacted(&rules).unwrap();
        assert_eq!(r.content_value(), json!({}));
        assert_eq!(r.event_id, pdu.event_id);
    }
}
