//! Membership handshakes with other servers, the native part (spec: server-server-api,
//! "Joining Rooms", "Knocking upon a room", "Inviting to a room", "Leaving Rooms (Rejecting
//! Invites)"): the refusals of `make_*` that carry their own error code, the template a
//! resident server answers, checking and countersigning an inbound invite, and the leave that
//! rejects a remote invite (built from a `make_leave` template, or out of band when the
//! inviting server cannot be reached).

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{content_hash, reference_hash, sign_event};
use ruma::{EventId, OwnedEventId, RoomId, ServerName, UserId};
use serde_json::{json, Value};

use crate::core::room::pdu::{build_pdu, NewEvent, Pdu};
use crate::core::signing::ServerSigningKey;
use crate::err;
use crate::error::{Error, Result};

/// Refusals of `make_join`/`make_knock` whose error codes the common error table does not
/// carry (they are only ever answered to another server).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400 `M_INCOMPATIBLE_ROOM_VERSION` with the room's version.
    IncompatibleRoomVersion(String),
    /// 400 `M_UNABLE_TO_AUTHORISE_JOIN`: none of a restricted room's conditions can be checked here.
    UnableToAuthoriseJoin,
    /// 400 `M_UNABLE_TO_GRANT_JOIN`: the user qualifies, but no local user may authorise the join.
    UnableToGrantJoin,
}

impl Refusal {
    /// HTTP status and body.
    pub fn response(&self) -> (u16, Value) {
        match self {
            Refusal::IncompatibleRoomVersion(v) => (
                400,
                json!({ "errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": format!("Your server does not support room version {v}"), "room_version": v }),
            ),
            Refusal::UnableToAuthoriseJoin => {
                (400, json!({ "errcode": "M_UNABLE_TO_AUTHORISE_JOIN", "error": "This server cannot check the room's join conditions" }))
            }
            Refusal::UnableToGrantJoin => {
                (400, json!({ "errcode": "M_UNABLE_TO_GRANT_JOIN", "error": "No user of this server can authorise the join; try another server" }))
            }
        }
    }
}

/// Whether the room version is among the `ver` values the other server sent; none means
/// `["1"]` (spec: `make_join`, `ver`).
pub fn version_offered(room_version: &str, ver: &[&str]) -> bool {
    if ver.is_empty() {
        return room_version == "1";
    }
    ver.contains(&room_version)
}

/// The template of `make_*`: the event built on the room's head, without the hashes and
/// signatures the other server replaces, with `origin` naming the resident server.
pub fn template_from(pdu: &Pdu, resident: &str) -> Value {
    let mut obj = pdu.json.clone();
    obj.remove("hashes");
    obj.remove("signatures");
    obj.remove("unsigned");
    obj.insert("origin".into(), CanonicalJsonValue::String(resident.to_owned()));
    serde_json::to_value(&obj).unwrap_or(Value::Null)
}

fn str_of<'a>(obj: &'a CanonicalJsonObject, key: &str) -> Option<&'a str> {
    match obj.get(key) {
        Some(CanonicalJsonValue::String(s)) => Some(s),
        _ => None,
    }
}

fn invalid(msg: &str) -> Error {
    err!(InvalidParam, "{msg}")
}

/// The JSON of a PDU from a request body (`M_BAD_JSON` if it is not canonical JSON).
pub fn canonical_object(v: &Value) -> Result<CanonicalJsonObject> {
    match CanonicalJsonValue::try_from(v.clone()) {
        Ok(CanonicalJsonValue::Object(o)) => Ok(o),
        _ => Err(err!(BadJson, "The event is not a canonical JSON object")),
    }
}

/// Checks an inbound invite (spec: `PUT /_matrix/federation/v2/invite`, the validation
/// servers MUST apply): its event ID is its reference hash, it is in `room_id`, it is an
/// `m.room.member` invite sent by a user of `origin` to a user of `ours`, and its content
/// hash matches (signatures are checked by the caller against the origin's keys). `unsigned`
/// is dropped. Returns the parsed event.
pub fn check_invite(
    rules: &RoomVersionRules,
    room_id: &RoomId,
    event_id: &str,
    mut json: CanonicalJsonObject,
    origin: &ServerName,
    ours: &ServerName,
) -> Result<Pdu> {
    json.remove("unsigned");
    let hash = reference_hash(&json, rules).map_err(|_| invalid("The invite cannot be hashed"))?;
    let id = EventId::parse(format!("${hash}")).map_err(Error::internal)?;
    if id.as_str() != event_id {
        return Err(invalid("The event ID does not match the event"));
    }
    if str_of(&json, "room_id") != Some(room_id.as_str()) {
        return Err(invalid("The invite is for another room"));
    }
    if str_of(&json, "type") != Some("m.room.member") {
        return Err(invalid("Not an m.room.member event"));
    }
    let membership = match json.get("content") {
        Some(CanonicalJsonValue::Object(c)) => match c.get("membership") {
            Some(CanonicalJsonValue::String(m)) => m.as_str(),
            _ => "",
        },
        _ => "",
    };
    if membership != "invite" {
        return Err(invalid("The membership is not invite"));
    }
    let sender = str_of(&json, "sender").and_then(|s| UserId::parse(s).ok()).ok_or_else(|| invalid("Bad sender"))?;
    if sender.server_name() != origin {
        return Err(invalid("The sender is not a user of the origin server"));
    }
    let target = str_of(&json, "state_key").and_then(|s| UserId::parse(s).ok()).ok_or_else(|| invalid("Bad state_key"))?;
    if target.server_name() != ours {
        return Err(invalid("The invitee is not a user of this server"));
    }
    let claimed = match json.get("hashes") {
        Some(CanonicalJsonValue::Object(h)) => match h.get("sha256") {
            Some(CanonicalJsonValue::String(s)) => s.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    };
    let computed = content_hash(&json).map_err(|_| invalid("The invite cannot be hashed"))?;
    if computed.encode() != claimed {
        return Err(invalid("The content hash does not match"));
    }
    Pdu::from_json(id, json, Some(room_id)).map_err(|_| invalid("Malformed invite event"))
}

/// Adds this server's signature to an event signed by another (over its redacted form, as
/// the spec's signing algorithm says); other signatures and fields stay untouched.
pub fn countersign(rules: &RoomVersionRules, json: &mut CanonicalJsonObject, server_name: &str, key: &ServerSigningKey) -> Result<()> {
    sign_event(server_name, key, json, &rules.redaction).map_err(|e| Error::internal(format!("signing an invite: {e}")))
}

/// The `invite_room_state` of an invite as stripped state events (type, state key, sender,
/// content). Entries that are not objects with a type and a string state key are dropped.
/// Room versions from 12 on must carry the create event (spec v1.16); earlier ones are
/// accepted without it (the spec's migration advice).
pub fn stripped_invite_state(rules_require_create: bool, state: &[Value]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for ev in state {
        let (Some(kind), Some(key)) = (ev.get("type").and_then(Value::as_str), ev.get("state_key").and_then(Value::as_str)) else {
            continue;
        };
        out.push(json!({
            "type": kind,
            "state_key": key,
            "sender": ev.get("sender").cloned().unwrap_or(Value::Null),
            "content": ev.get("content").cloned().filter(Value::is_object).unwrap_or_else(|| json!({})),
        }));
    }
    if rules_require_create && !out.iter().any(|e| e["type"] == "m.room.create") {
        return Err(invalid("invite_room_state must contain the room's m.room.create event"));
    }
    Ok(out)
}

fn ids(v: Option<&Value>) -> Result<Vec<OwnedEventId>> {
    v.and_then(Value::as_array)
        .ok_or_else(|| err!(BadJson, "template without event lists"))?
        .iter()
        .map(|e| e.as_str().and_then(|s| EventId::parse(s).ok()).ok_or_else(|| err!(BadJson, "bad event ID in the template")))
        .collect()
}

/// The leave built from another server's `make_leave` template: the template must be this
/// user's leave in this room (spec: `make_leave`, what the sending server MUST verify), and
/// the event is hashed and signed by this server with the template's graph position.
pub fn leave_from_template(
    rules: &RoomVersionRules,
    room_id: &RoomId,
    user: &UserId,
    template: &Value,
    now: u64,
    server_name: &str,
    key: &ServerSigningKey,
) -> Result<Pdu> {
    let ok = template.get("room_id").and_then(Value::as_str) == Some(room_id.as_str())
        && template.get("sender").and_then(Value::as_str) == Some(user.as_str())
        && template.get("state_key").and_then(Value::as_str) == Some(user.as_str())
        && template.get("type").and_then(Value::as_str) == Some("m.room.member")
        && template.pointer("/content/membership").and_then(Value::as_str) == Some("leave");
    if !ok {
        return Err(err!(BadJson, "The make_leave template is not this user's leave"));
    }
    let prev = ids(template.get("prev_events"))?;
    let auth = ids(template.get("auth_events"))?;
    let depth = template.get("depth").and_then(Value::as_u64).ok_or_else(|| err!(BadJson, "template without depth"))?;
    let content = template.get("content").cloned().unwrap_or_else(|| json!({ "membership": "leave" }));
    let new = NewEvent { kind: "m.room.member".into(), state_key: Some(user.to_string()), content, sender: user.to_owned(), redacts: None };
    build_pdu(rules, Some(room_id), &new, &prev, &auth, depth, now, server_name, key)
}

/// A leave that only this server knows, rejecting an invite whose server could not be
/// reached: after the invite in the graph, authorised by it (Synapse builds the same
/// "out-of-band" leave), so that the user's membership moves on locally.
pub fn out_of_band_leave(rules: &RoomVersionRules, invite: &Pdu, now: u64, server_name: &str, key: &ServerSigningKey) -> Result<Pdu> {
    let user = UserId::parse(invite.state_key.as_deref().unwrap_or_default()).map_err(Error::internal)?;
    let new = NewEvent {
        kind: "m.room.member".into(),
        state_key: Some(user.to_string()),
        content: json!({ "membership": "leave" }),
        sender: user,
        redacts: None,
    };
    let ids = [invite.event_id.clone()];
    build_pdu(rules, Some(&invite.room_id), &new, &ids, &ids, invite.depth + 1, now, server_name, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::signatures::{PublicKeyMap, PublicKeySet};
    use ruma::RoomVersionId;
    use serde_json::json;

    fn invite(rules: &RoomVersionRules, key: &ServerSigningKey, to: &str) -> Pdu {
        let room = RoomId::parse("!r:remote.example").unwrap();
        let new = NewEvent {
            kind: "m.room.member".into(),
            state_key: Some(to.into()),
            content: json!({ "membership": "invite" }),
            sender: UserId::parse("@alice:remote.example").unwrap(),
            redacts: None,
        };
        let prev = [EventId::parse("$prev").unwrap()];
        build_pdu(rules, Some(&room), &new, &prev, &prev, 5, 1000, "remote.example", key).unwrap()
    }

    fn server(s: &str) -> &ServerName {
        <&ServerName>::try_from(s).unwrap()
    }

    #[test]
    fn versions_offered() {
        assert!(version_offered("10", &["9", "10"]));
        assert!(!version_offered("10", &["9"]));
        assert!(!version_offered("10", &[]));
        assert!(version_offered("1", &[]));
    }

    #[test]
    fn refusals_carry_their_codes() {
        let (s, b) = Refusal::IncompatibleRoomVersion("11".into()).response();
        assert_eq!((s, b["errcode"].as_str(), b["room_version"].as_str()), (400, Some("M_INCOMPATIBLE_ROOM_VERSION"), Some("11")));
        assert_eq!(Refusal::UnableToGrantJoin.response().1["errcode"], "M_UNABLE_TO_GRANT_JOIN");
        assert_eq!(Refusal::UnableToAuthoriseJoin.response().1["errcode"], "M_UNABLE_TO_AUTHORISE_JOIN");
    }

    #[test]
    fn invite_is_checked_and_countersigned() {
        let rules = RoomVersionId::V10.rules().unwrap();
        let theirs = ServerSigningKey::generate();
        let ours = ServerSigningKey::generate();
        let pdu = invite(&rules, &theirs, "@bob:here.example");
        let room = pdu.room_id.clone();
        let mut with_unsigned = pdu.json.clone();
        with_unsigned.insert("unsigned".into(), CanonicalJsonValue::Object(Default::default()));
        let checked = check_invite(&rules, &room, pdu.event_id.as_str(), with_unsigned, server("remote.example"), server("here.example")).unwrap();
        assert_eq!(checked.event_id, pdu.event_id);
        assert!(!checked.json.contains_key("unsigned"));

        let mut json = checked.json.clone();
        countersign(&rules, &mut json, "here.example", &ours).unwrap();
        // Both signatures verify, and the event ID did not change.
        let mut keys = PublicKeyMap::new();
        for (name, k) in [("remote.example", &theirs), ("here.example", &ours)] {
            let mut set = PublicKeySet::new();
            set.insert(k.key_id(), ruma::serde::Base64::parse(k.public_key_base64()).unwrap());
            keys.insert(name.into(), set);
        }
        assert!(ruma::signatures::verify_event(&keys, &json, &rules).is_ok());
        assert_eq!(reference_hash(&json, &rules).unwrap(), pdu.event_id.as_str().strip_prefix('$').unwrap());

        // Wrong event ID, wrong room, wrong origin, invitee elsewhere, tampered content.
        let ours_name = server("here.example");
        let origin = server("remote.example");
        assert!(check_invite(&rules, &room, "$other", pdu.json.clone(), origin, ours_name).is_err());
        let other_room = RoomId::parse("!x:remote.example").unwrap();
        assert!(check_invite(&rules, &other_room, pdu.event_id.as_str(), pdu.json.clone(), origin, ours_name).is_err());
        assert!(check_invite(&rules, &room, pdu.event_id.as_str(), pdu.json.clone(), server("evil.example"), ours_name).is_err());
        assert!(check_invite(&rules, &room, pdu.event_id.as_str(), pdu.json.clone(), origin, server("third.example")).is_err());
        let mut tampered = pdu.json.clone();
        tampered.insert("origin_server_ts".into(), CanonicalJsonValue::Integer(7u32.into()));
        let err = check_invite(&rules, &room, pdu.event_id.as_str(), tampered, origin, ours_name).unwrap_err();
        assert_eq!(err.kind().errcode(), "M_INVALID_PARAM");
    }

    #[test]
    fn a_join_is_not_an_invite() {
        let rules = RoomVersionId::V10.rules().unwrap();
        let key = ServerSigningKey::generate();
        let room = RoomId::parse("!r:remote.example").unwrap();
        let new = NewEvent {
            kind: "m.room.member".into(),
            state_key: Some("@bob:here.example".into()),
            content: json!({ "membership": "join" }),
            sender: UserId::parse("@alice:remote.example").unwrap(),
            redacts: None,
        };
        let pdu = build_pdu(&rules, Some(&room), &new, &[], &[], 1, 1, "remote.example", &key).unwrap();
        assert!(check_invite(&rules, &room, pdu.event_id.as_str(), pdu.json, server("remote.example"), server("here.example")).is_err());
    }

    #[test]
    fn stripped_state_needs_create_from_v12() {
        let state = vec![json!({"type": "m.room.name", "state_key": "", "sender": "@a:r", "content": {"name": "N"}}), json!("junk")];
        let s = stripped_invite_state(false, &state).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["content"]["name"], "N");
        assert!(stripped_invite_state(true, &state).is_err());
    }

    #[test]
    fn leaves_from_template_and_out_of_band() {
        let rules = RoomVersionId::V10.rules().unwrap();
        let key = ServerSigningKey::generate();
        let inv = invite(&rules, &key, "@bob:here.example");
        let bob = UserId::parse("@bob:here.example").unwrap();
        let template = json!({
            "room_id": inv.room_id, "sender": bob, "state_key": bob, "type": "m.room.member",
            "content": {"membership": "leave"}, "prev_events": [inv.event_id], "auth_events": [inv.event_id], "depth": 6,
            "origin": "remote.example", "origin_server_ts": 5,
        });
        let leave = leave_from_template(&rules, &inv.room_id, &bob, &template, 2000, "here.example", &key).unwrap();
        assert_eq!(leave.depth, 6);
        assert_eq!(leave.prev_events, vec![inv.event_id.clone()]);
        let mut wrong = template.clone();
        wrong["content"]["membership"] = json!("join");
        assert!(leave_from_template(&rules, &inv.room_id, &bob, &wrong, 2000, "here.example", &key).is_err());
        let oob = out_of_band_leave(&rules, &inv, 3000, "here.example", &key).unwrap();
        assert_eq!((oob.sender.as_str(), oob.state_key.as_deref(), oob.depth), ("@bob:here.example", Some("@bob:here.example"), inv.depth + 1));
        assert_eq!(oob.auth_events, vec![inv.event_id.clone()]);
    }

    #[test]
    fn template_has_no_signatures() {
        let rules = RoomVersionId::V10.rules().unwrap();
        let key = ServerSigningKey::generate();
        let inv = invite(&rules, &key, "@bob:here.example");
        let t = template_from(&inv, "here.example");
        assert!(t.get("signatures").is_none() && t.get("hashes").is_none());
        assert_eq!(t["origin"], "here.example");
        assert_eq!(t["depth"], 5);
    }
}
