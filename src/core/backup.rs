//! Server-side key backups (spec: client-server-api, "Server-side key backups",
//! `modules/end_to_end_encryption.md`; `data/api/client-server/key_backup.yaml`): which of two
//! keys for the same session the server keeps, version strings, and the request and response
//! shapes. The keys themselves are encrypted by the client and opaque here.

use serde_json::{json, Map, Value};

use crate::err;
use crate::error::Result;

/// The largest integer a JSON number carries exactly (and what D1 stores without loss).
const MAX_SAFE_INT: u64 = (1 << 53) - 1;

/// Room and session IDs longer than this are refused (the spec's limit for room IDs).
pub const MAX_ID_LEN: usize = 255;

/// The metadata the server compares when a key for a session is uploaded again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyMeta {
    pub is_verified: bool,
    pub first_message_index: u64,
    pub forwarded_count: u64,
}

/// Whether an uploaded key replaces the stored key for the same session. The spec's rule:
/// a verified key beats an unverified one; then the lower `first_message_index` wins; then
/// the lower `forwarded_count`. When all three are equal the stored key stays (nothing
/// changes, so the backup's `etag` does not move).
///
/// `store::backup` applies this rule inside D1 (`ON CONFLICT … DO UPDATE … WHERE`); this
/// function is the reference, and `tests/integration/e2ee/test_key_backup.py` checks the two agree.
pub fn should_replace(existing: &KeyMeta, new: &KeyMeta) -> bool {
    if existing.is_verified != new.is_verified {
        return new.is_verified;
    }
    if existing.first_message_index != new.first_message_index {
        return new.first_message_index < existing.first_message_index;
    }
    new.forwarded_count < existing.forwarded_count
}

/// A backup version as this server issues them: `1`, `2`, ... per user. Anything else
/// (not decimal digits, a leading zero, out of range) names no backup: `M_NOT_FOUND`, as
/// Synapse answers for versions it could not have issued.
pub fn parse_version(s: &str) -> Result<i64> {
    let valid = !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    match s.parse::<i64>() {
        Ok(v) if valid => Ok(v),
        _ => Err(err!(NotFound, "Unknown backup version")),
    }
}

/// A room ID as a backup key names it: the key data is opaque, so only the shape the spec
/// gives (`^!`) and the length limit are checked.
pub fn valid_room_id(s: &str) -> bool {
    s.len() > 1 && s.len() <= MAX_ID_LEN && s.starts_with('!')
}

pub fn valid_session_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN
}

/// One session key from a `PUT /room_keys/keys…` body.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionKey {
    pub room_id: String,
    pub session_id: String,
    pub meta: KeyMeta,
    /// The client's encrypted `session_data` object.
    pub session_data: Value,
}

fn uint(v: &Value, field: &str) -> Result<u64> {
    match v.get(field) {
        None => Err(err!(BadJson, "Missing {field}")),
        Some(n) => n.as_u64().filter(|n| *n <= MAX_SAFE_INT).ok_or_else(|| err!(BadJson, "{field} must be a non-negative integer")),
    }
}

/// Parses `KeyBackupData` (`first_message_index`, `forwarded_count`, `is_verified`,
/// `session_data`, all required): `M_BAD_JSON` naming the field otherwise.
pub fn parse_key_data(room_id: &str, session_id: &str, v: &Value) -> Result<SessionKey> {
    if !v.is_object() {
        return Err(err!(BadJson, "The key for session {session_id} must be an object"));
    }
    let first_message_index = uint(v, "first_message_index")?;
    let forwarded_count = uint(v, "forwarded_count")?;
    let is_verified = match v.get("is_verified") {
        None => return Err(err!(BadJson, "Missing is_verified")),
        Some(b) => b.as_bool().ok_or_else(|| err!(BadJson, "is_verified must be a boolean"))?,
    };
    let session_data = match v.get("session_data") {
        None => return Err(err!(BadJson, "Missing session_data")),
        Some(d) if d.is_object() => d.clone(),
        Some(_) => return Err(err!(BadJson, "session_data must be an object")),
    };
    Ok(SessionKey {
        room_id: room_id.to_owned(),
        session_id: session_id.to_owned(),
        meta: KeyMeta { is_verified, first_message_index, forwarded_count },
        session_data,
    })
}

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>> {
    match v.get(field) {
        None => Err(err!(BadJson, "Missing {field}")),
        Some(o) => o.as_object().ok_or_else(|| err!(BadJson, "{field} must be an object")),
    }
}

/// The body of `PUT /room_keys/keys/{roomId}` (`RoomKeyBackup`: `{"sessions": {…}}`).
pub fn parse_room_body(room_id: &str, body: &Value) -> Result<Vec<SessionKey>> {
    if !valid_room_id(room_id) {
        return Err(err!(BadJson, "Invalid room ID {room_id:?}"));
    }
    let mut out = Vec::new();
    for (session_id, key) in object(body, "sessions")? {
        if !valid_session_id(session_id) {
            return Err(err!(BadJson, "Invalid session ID"));
        }
        out.push(parse_key_data(room_id, session_id, key)?);
    }
    Ok(out)
}

/// The body of `PUT /room_keys/keys` (`{"rooms": {roomId: RoomKeyBackup}}`).
pub fn parse_keys_body(body: &Value) -> Result<Vec<SessionKey>> {
    let mut out = Vec::new();
    for (room_id, room) in object(body, "rooms")? {
        if !room.is_object() {
            return Err(err!(BadJson, "The keys for room {room_id} must be an object"));
        }
        out.extend(parse_room_body(room_id, room)?);
    }
    Ok(out)
}

/// Backup algorithms a version may use: the spec's (key_backup.yaml: `algorithm` is an enum
/// of `m.megolm_backup.v1.curve25519-aes-sha2`), and MSC3270's symmetric backup, stable and
/// unstable names, which some clients create. Anything else is no backup a client could
/// read: 400 `M_INVALID_PARAM`.
pub const BACKUP_ALGORITHMS: &[&str] =
    &["m.megolm_backup.v1.curve25519-aes-sha2", "m.megolm_backup.v1.aes-hmac-sha2", "org.matrix.msc3270.v1.aes-hmac-sha2"];

/// The body of `POST /room_keys/version` and `PUT /room_keys/version/{version}`: the
/// required `algorithm` (a string, one of [`BACKUP_ALGORITHMS`]) and `auth_data` (an
/// object). A malformed body is `M_BAD_JSON`; an unknown algorithm `M_INVALID_PARAM`.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionBody {
    pub algorithm: String,
    pub auth_data: Value,
}

pub fn parse_version_body(body: &Value) -> Result<VersionBody> {
    let algorithm = match body.get("algorithm") {
        None => return Err(err!(BadJson, "Missing algorithm")),
        Some(a) => a.as_str().filter(|a| !a.is_empty()).ok_or_else(|| err!(BadJson, "algorithm must be a non-empty string"))?,
    };
    let auth_data = object(body, "auth_data")?.clone();
    if !BACKUP_ALGORITHMS.contains(&algorithm) {
        return Err(err!(InvalidParam, "Unsupported backup algorithm {algorithm:?}"));
    }
    Ok(VersionBody { algorithm: algorithm.to_owned(), auth_data: Value::Object(auth_data) })
}

/// `KeyBackupData` as the client reads it back.
pub fn key_json(meta: &KeyMeta, session_data: Value) -> Value {
    json!({
        "first_message_index": meta.first_message_index,
        "forwarded_count": meta.forwarded_count,
        "is_verified": meta.is_verified,
        "session_data": session_data,
    })
}

/// Stored keys grouped as `GET /room_keys/keys` answers: `{"rooms": {room: {"sessions":
/// {session: KeyBackupData}}}}`; no keys give `{"rooms": {}}`.
pub fn group_keys(keys: impl IntoIterator<Item = (String, String, Value)>) -> Value {
    let mut rooms: Map<String, Value> = Map::new();
    for (room_id, session_id, key) in keys {
        let room = rooms.entry(room_id).or_insert_with(|| json!({ "sessions": {} }));
        // Always `{"sessions": {}}` as inserted just above.
        if let Some(sessions) = room.get_mut("sessions").and_then(Value::as_object_mut) {
            sessions.insert(session_id, key);
        }
    }
    json!({ "rooms": rooms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(is_verified: bool, first_message_index: u64, forwarded_count: u64) -> KeyMeta {
        KeyMeta { is_verified, first_message_index, forwarded_count }
    }

    #[test]
    fn verified_beats_unverified_whatever_the_rest() {
        assert!(should_replace(&m(false, 0, 0), &m(true, 9, 9)));
        assert!(!should_replace(&m(true, 9, 9), &m(false, 0, 0)));
    }

    #[test]
    fn then_lower_first_message_index_wins() {
        assert!(should_replace(&m(true, 5, 0), &m(true, 4, 9)));
        assert!(!should_replace(&m(true, 4, 0), &m(true, 5, 0)));
        assert!(should_replace(&m(false, 5, 0), &m(false, 4, 9)));
        assert!(!should_replace(&m(false, 4, 9), &m(false, 5, 0)));
    }

    #[test]
    fn then_lower_forwarded_count_wins() {
        assert!(should_replace(&m(false, 3, 2), &m(false, 3, 1)));
        assert!(!should_replace(&m(false, 3, 1), &m(false, 3, 2)));
        assert!(should_replace(&m(true, 3, 2), &m(true, 3, 1)));
    }

    #[test]
    fn equal_keys_keep_the_stored_one() {
        for k in [m(false, 0, 0), m(true, 7, 3)] {
            assert!(!should_replace(&k, &k));
        }
    }

    /// The rule is the lexicographic order on (verified, lower index, lower count): check it
    /// over a grid, and that it is a strict order (never both ways).
    #[test]
    fn rule_is_a_strict_lexicographic_order() {
        let grid: Vec<KeyMeta> = [false, true].iter().flat_map(|&v| (0..3).flat_map(move |i| (0..3).map(move |c| m(v, i, c)))).collect();
        let rank = |k: &KeyMeta| (k.is_verified, std::cmp::Reverse(k.first_message_index), std::cmp::Reverse(k.forwarded_count));
        for a in &grid {
            for b in &grid {
                assert_eq!(should_replace(a, b), rank(b) > rank(a), "{a:?} -> {b:?}");
                assert!(!(should_replace(a, b) && should_replace(b, a)));
            }
        }
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1").unwrap(), 1);
        assert_eq!(parse_version("42").unwrap(), 42);
        for bad in ["", "0", "01", "-1", "+1", "1.0", "abc", " 1", "1 ", "99999999999999999999", "１"] {
            assert_eq!(parse_version(bad).unwrap_err().kind().errcode(), "M_NOT_FOUND", "{bad:?}");
        }
    }

    fn key(fmi: Value) -> Value {
        json!({ "first_message_index": fmi, "forwarded_count": 0, "is_verified": false, "session_data": { "ciphertext": "x" } })
    }

    #[test]
    fn key_data_fields() {
        let k = parse_key_data("!r:x", "s", &key(json!(3))).unwrap();
        assert_eq!(k.meta, m(false, 3, 0));
        assert_eq!(k.session_data, json!({ "ciphertext": "x" }));
        for bad in [json!(-1), json!(1.5), json!("1"), json!(null), json!(1u64 << 60)] {
            let e = parse_key_data("!r:x", "s", &key(bad.clone())).unwrap_err();
            assert_eq!(e.kind().errcode(), "M_BAD_JSON", "{bad}");
        }
        for field in ["first_message_index", "forwarded_count", "is_verified", "session_data"] {
            let mut v = key(json!(0));
            v.as_object_mut().unwrap().remove(field);
            assert_eq!(parse_key_data("!r:x", "s", &v).unwrap_err().kind().errcode(), "M_BAD_JSON", "{field}");
        }
        let mut v = key(json!(0));
        v["is_verified"] = json!("yes");
        assert!(parse_key_data("!r:x", "s", &v).is_err());
        v["is_verified"] = json!(true);
        v["session_data"] = json!("opaque");
        assert!(parse_key_data("!r:x", "s", &v).is_err());
        assert!(parse_key_data("!r:x", "s", &json!([1])).is_err());
    }

    #[test]
    fn bodies() {
        let body = json!({ "rooms": {
            "!a:x": { "sessions": { "s1": key(json!(1)), "s2": key(json!(2)) } },
            "!b:x": { "sessions": {} },
        }});
        let keys = parse_keys_body(&body).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k.room_id == "!a:x"));
        assert_eq!(parse_keys_body(&json!({ "rooms": {} })).unwrap(), vec![]);
        for bad in [
            json!({}),
            json!({ "rooms": [] }),
            json!({ "rooms": { "!a:x": [] } }),
            json!({ "rooms": { "!a:x": {} } }),
            json!({ "rooms": { "a:x": { "sessions": {} } } }),
            json!({ "rooms": { "!a:x": { "sessions": { "s": 1 } } } }),
            json!({ "rooms": { "!a:x": { "sessions": { "": key(json!(0)) } } } }),
        ] {
            assert_eq!(parse_keys_body(&bad).unwrap_err().kind().errcode(), "M_BAD_JSON", "{bad}");
        }
        assert_eq!(parse_room_body("!a:x", &json!({ "sessions": { "s": key(json!(0)) } })).unwrap().len(), 1);
        assert!(parse_room_body("!a:x", &json!({ "sessions": null })).is_err());
        let long = "s".repeat(MAX_ID_LEN + 1);
        assert!(parse_room_body("!a:x", &json!({ "sessions": { long: key(json!(0)) } })).is_err());
    }

    #[test]
    fn version_bodies() {
        let v = parse_version_body(&json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "k" } })).unwrap();
        assert_eq!(v.algorithm, "m.megolm_backup.v1.curve25519-aes-sha2");
        assert_eq!(v.auth_data, json!({ "public_key": "k" }));
        for bad in [
            json!({}),
            json!({ "algorithm": "a" }),
            json!({ "auth_data": {} }),
            json!({ "algorithm": 1, "auth_data": {} }),
            json!({ "algorithm": "", "auth_data": {} }),
            json!({ "algorithm": "a", "auth_data": "x" }),
        ] {
            assert_eq!(parse_version_body(&bad).unwrap_err().kind().errcode(), "M_BAD_JSON", "{bad}");
        }
        for alg in BACKUP_ALGORITHMS {
            assert!(parse_version_body(&json!({ "algorithm": alg, "auth_data": {} })).is_ok(), "{alg}");
        }
        for alg in
            ["a", "m.megolm_backup.v1", "m.megolm_backup.v2.curve25519-aes-sha2", "M.MEGOLM_BACKUP.V1.CURVE25519-AES-SHA2", "m.megolm.v1.aes-sha2"]
        {
            let e = parse_version_body(&json!({ "algorithm": alg, "auth_data": { "public_key": "k" } })).unwrap_err();
            assert_eq!(e.kind().errcode(), "M_INVALID_PARAM", "{alg}");
        }
    }

    #[test]
    fn grouping() {
        assert_eq!(group_keys(vec![]), json!({ "rooms": {} }));
        let k = key_json(&m(true, 1, 2), json!({ "c": 1 }));
        assert_eq!(k, json!({ "first_message_index": 1, "forwarded_count": 2, "is_verified": true, "session_data": { "c": 1 } }));
        let g = group_keys(vec![
            ("!a:x".into(), "s1".into(), k.clone()),
            ("!a:x".into(), "s2".into(), k.clone()),
            ("!b:x".into(), "s1".into(), k.clone()),
        ]);
        assert_eq!(g["rooms"]["!a:x"]["sessions"].as_object().unwrap().len(), 2);
        assert_eq!(g["rooms"]["!b:x"]["sessions"]["s1"], k);
    }
}
