//! PDUs from other servers (spec: server-server-api, "PDUs", "Checks performed on receipt of
//! a PDU"; rooms/vN "Event IDs"): the format checks and event ID of an incoming PDU, and
//! completing an event template (`make_join`, `make_leave`, `make_knock`) into a signed PDU.

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::room_version_rules::{EventIdFormatVersion, RoomVersionRules};
use ruma::signatures::{hash_and_sign_event, reference_hash};
use ruma::{EventId, OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use crate::core::room::pdu::{Pdu, MAX_PDU_BYTES};
use crate::core::signing::ServerSigningKey;
use crate::err;
use crate::error::{Error, Result};

/// Converts JSON from the wire into a canonical object (floats and out-of-range integers are
/// refused, as canonical JSON requires).
pub fn canonical_object(value: &Value) -> Result<CanonicalJsonObject> {
    match CanonicalJsonValue::try_from(value.clone()) {
        Ok(CanonicalJsonValue::Object(o)) => Ok(o),
        Ok(_) => Err(err!(BadJson, "A PDU must be a JSON object")),
        Err(e) => Err(err!(BadJson, "PDU is not canonical JSON: {e}")),
    }
}

/// The event ID of a PDU in a room of the given version: the reference hash from room v3 on,
/// the `event_id` field before.
pub fn event_id_of(rules: &RoomVersionRules, obj: &CanonicalJsonObject) -> Result<OwnedEventId> {
    match rules.event_id_format {
        EventIdFormatVersion::V1 => match obj.get("event_id") {
            Some(CanonicalJsonValue::String(s)) => EventId::parse(s).map_err(|_| err!(BadJson, "bad event_id")),
            _ => Err(err!(BadJson, "PDU has no event_id")),
        },
        _ => {
            let hash = reference_hash(obj, rules).map_err(|e| err!(BadJson, "Cannot hash PDU: {e}"))?;
            EventId::parse(format!("${hash}")).map_err(|_| err!(BadJson, "bad reference hash"))
        }
    }
}

/// Reads a PDU received from another server for `room_id` (`None`: any room, e.g. when the
/// room is known only from the PDU): drops `unsigned` (never signed, never trusted), checks
/// the size and the room, and computes the event ID. Signatures and hashes are checked by the
/// caller, which has the keys.
pub fn incoming(rules: &RoomVersionRules, value: &Value, room_id: Option<&RoomId>) -> Result<Pdu> {
    let mut obj = canonical_object(value)?;
    obj.remove("unsigned");
    let size = serde_json::to_vec(&obj)?.len();
    if size > MAX_PDU_BYTES {
        return Err(err!(TooLarge, "PDU is too large ({size} bytes)"));
    }
    let event_id = event_id_of(rules, &obj)?;
    let is_create = matches!(obj.get("type"), Some(CanonicalJsonValue::String(t)) if t == "m.room.create");
    // A room-v12 create event carries no room_id: the room ID is derived from its event ID.
    let derived;
    let hint = if rules.authorization.room_create_event_id_as_room_id && is_create && !obj.contains_key("room_id") {
        derived = RoomId::new_v2(event_id.as_str().trim_start_matches('$')).map_err(|_| err!(BadJson, "bad create event"))?;
        Some(&*derived)
    } else {
        room_id
    };
    let pdu = Pdu::from_json(event_id, obj, hint)?;
    if let Some(r) = room_id {
        if pdu.room_id != r {
            return Err(err!(BadJson, "PDU belongs to another room"));
        }
    }
    Ok(pdu)
}

/// The server that sent a PDU: its sender's server.
pub fn sender_server(pdu: &Pdu) -> &ServerName {
    pdu.sender.server_name()
}

/// Completes an event template from a resident server (`make_join` and friends) into a PDU
/// signed by us: sets `origin_server_ts` (and `origin` for the room versions that still
/// carry it), hashes, signs and computes the event ID.
pub fn finish_template(rules: &RoomVersionRules, template: &Value, origin_server_ts: u64, server_name: &str, key: &ServerSigningKey) -> Result<Pdu> {
    let mut obj = canonical_object(template)?;
    for k in ["event_id", "hashes", "signatures", "unsigned"] {
        obj.remove(k);
    }
    let ts = i64::try_from(origin_server_ts).map_err(Error::internal)?;
    obj.insert("origin_server_ts".into(), CanonicalJsonValue::Integer(ts.try_into().map_err(Error::internal)?));
    if obj.contains_key("origin") {
        obj.insert("origin".into(), CanonicalJsonValue::String(server_name.to_owned()));
    }
    hash_and_sign_event(server_name, key, &mut obj, &rules.redaction).map_err(|e| err!(BadJson, "Cannot sign event: {e}"))?;
    let room_id = match obj.get("room_id") {
        Some(CanonicalJsonValue::String(s)) => RoomId::parse(s).map_err(|_| err!(BadJson, "bad room_id in template"))?,
        _ => return Err(err!(BadJson, "template has no room_id")),
    };
    let event_id = event_id_of(rules, &obj)?;
    Pdu::from_json(event_id, obj, Some(&room_id))
}

/// The PDU as sent to other servers (the stored signed JSON).
pub fn to_wire(pdu: &Pdu) -> Value {
    serde_json::to_value(&pdu.json).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::room::pdu::{build_pdu, NewEvent};
    use ruma::room_version_rules::RoomVersionRules;
    use serde_json::json;

    fn key() -> ServerSigningKey {
        ServerSigningKey::generate()
    }

    #[test]
    fn incoming_round_trips_a_local_pdu_and_ignores_unsigned() {
        let rules = RoomVersionRules::V10;
        let room = RoomId::parse("!r:a.example").unwrap();
        let new = NewEvent {
            kind: "m.room.message".into(),
            sender: ruma::UserId::parse("@u:a.example").unwrap(),
            state_key: None,
            content: json!({"body": "hi"}),
            redacts: None,
        };
        let pdu = build_pdu(&rules, Some(&room), &new, &[], &[], 3, 1000, "a.example", &key()).unwrap();
        let mut wire = to_wire(&pdu);
        wire["unsigned"] = json!({"age": 5});
        let back = incoming(&rules, &wire, Some(&room)).unwrap();
        assert_eq!(back.event_id, pdu.event_id);
        assert!(!back.json.contains_key("unsigned"));
        // Another room: refused.
        let other = RoomId::parse("!o:a.example").unwrap();
        assert!(incoming(&rules, &wire, Some(&other)).is_err());
        // A changed field changes the event ID (the reference hash covers it).
        wire["depth"] = json!(4);
        assert_ne!(incoming(&rules, &wire, Some(&room)).unwrap().event_id, pdu.event_id);
    }

    #[test]
    fn floats_and_oversize_refused() {
        let rules = RoomVersionRules::V10;
        assert!(incoming(&rules, &json!({"type": "m.room.message", "content": {"x": 1.5}}), None).is_err());
        let big = "x".repeat(70_000);
        assert!(incoming(&rules, &json!({"type": "m.room.message", "content": {"body": big}}), None).is_err());
    }

    #[test]
    fn template_is_finished_signed_and_hashed() {
        let rules = RoomVersionRules::V10;
        let template = json!({
            "type": "m.room.member", "room_id": "!r:b.example", "sender": "@u:a.example", "state_key": "@u:a.example",
            "content": {"membership": "join"}, "prev_events": ["$p"], "auth_events": ["$a"], "depth": 7,
            "origin_server_ts": 1, "origin": "b.example"
        });
        let k = key();
        let pdu = finish_template(&rules, &template, 5000, "a.example", &k).unwrap();
        assert_eq!(u64::from(pdu.origin_server_ts.0), 5000);
        assert!(pdu.json.contains_key("hashes"));
        let sigs = match pdu.json.get("signatures") {
            Some(CanonicalJsonValue::Object(o)) => o.clone(),
            _ => panic!("no signatures"),
        };
        assert!(sigs.contains_key("a.example"));
        assert_eq!(pdu.event_id, event_id_of(&rules, &pdu.json).unwrap());
    }
}
