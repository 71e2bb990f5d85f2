//! Other servers' signing keys (spec: server-server-api, "Retrieving server keys"): checking a
//! key document (`/_matrix/key/v2/server`, or one relayed by a notary), the rules for which key
//! may verify what, and a notary's countersignature ("Querying Keys Through Another Server").

use std::collections::BTreeMap;

use ruma::serde::Base64;
use ruma::signatures::{verify_json, PublicKeyMap, PublicKeySet};
use ruma::{CanonicalJsonObject, CanonicalJsonValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::signing::ServerSigningKey;

/// How long other servers may cache our key document (`valid_until_ts` of ours).
pub const OWN_KEY_VALIDITY_MS: u64 = 24 * 60 * 60 * 1000;

/// One key of a server, as cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKey {
    pub key_id: String,
    /// Unpadded base64 public key.
    pub key: String,
    /// Of the document that listed it as a current key.
    pub valid_until_ts: u64,
    /// Set for `old_verify_keys`: the key signed nothing at or after this time.
    pub expired_ts: Option<u64>,
}

/// A checked key document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDocument {
    pub server_name: String,
    pub valid_until_ts: u64,
    pub keys: Vec<ServerKey>,
    /// The document as received (its signatures included), for notary answers.
    pub raw: CanonicalJsonObject,
}

/// Parses a key document for `server` and checks its self-signature: it must be signed by at
/// least one of its own `verify_keys` (every such signature present must verify).
pub fn check_key_document(doc: &Value, server: &str) -> Result<KeyDocument, String> {
    let raw = match CanonicalJsonValue::try_from(doc.clone()) {
        Ok(CanonicalJsonValue::Object(o)) => o,
        _ => return Err("key document is not a canonical JSON object".into()),
    };
    if doc.get("server_name").and_then(Value::as_str) != Some(server) {
        return Err("key document is for another server".into());
    }
    let valid_until_ts = doc.get("valid_until_ts").and_then(Value::as_u64).ok_or("key document has no valid_until_ts")?;
    let mut keys = Vec::new();
    let mut set = PublicKeySet::new();
    for (key_id, v) in doc.get("verify_keys").and_then(Value::as_object).ok_or("key document has no verify_keys")? {
        let key = v.get("key").and_then(Value::as_str).ok_or("verify key without key")?;
        let parsed = Base64::parse(key).map_err(|_| "verify key is not base64")?;
        set.insert(key_id.clone(), parsed);
        keys.push(ServerKey { key_id: key_id.clone(), key: key.to_owned(), valid_until_ts, expired_ts: None });
    }
    if keys.is_empty() {
        return Err("key document has no verify keys".into());
    }
    if let Some(old) = doc.get("old_verify_keys").and_then(Value::as_object) {
        for (key_id, v) in old {
            let (Some(key), Some(expired_ts)) = (v.get("key").and_then(Value::as_str), v.get("expired_ts").and_then(Value::as_u64)) else {
                continue;
            };
            if Base64::<ruma::serde::base64::Standard>::parse(key).is_err() || set.contains_key(key_id) {
                continue;
            }
            keys.push(ServerKey { key_id: key_id.clone(), key: key.to_owned(), valid_until_ts: expired_ts, expired_ts: Some(expired_ts) });
        }
    }
    // Only the server's own signatures are checked here (a notary's are checked apart).
    let mut map = PublicKeyMap::new();
    map.insert(server.to_owned(), set);
    verify_signed_by(&map, &raw, server).map_err(|e| format!("key document self-signature: {e}"))?;
    Ok(KeyDocument { server_name: server.to_owned(), valid_until_ts, keys, raw })
}

/// Checks a notary's signature on a relayed key document with the notary's keys.
pub fn check_notary_signature(doc: &CanonicalJsonObject, notary: &str, notary_keys: &[ServerKey]) -> Result<(), String> {
    let map = key_map(notary, notary_keys.iter().filter(|k| k.expired_ts.is_none()));
    verify_signed_by(&map, doc, notary).map_err(|e| format!("notary signature: {e}"))
}

/// Checks the signatures `entity` put on `obj` with the keys in `map` (at least one must be
/// of a known key, and every one of a known key must verify); other entities' signatures
/// are not looked at. ruma's `verify_json` checks every entity that signed, and none when
/// the wanted one did not sign at all, hence this narrowing.
pub fn verify_signed_by(map: &PublicKeyMap, obj: &CanonicalJsonObject, entity: &str) -> Result<(), String> {
    let mut only = obj.clone();
    match only.get_mut("signatures") {
        Some(CanonicalJsonValue::Object(sigs)) => {
            sigs.retain(|k, _| k == entity);
            if sigs.is_empty() {
                return Err(format!("not signed by {entity}"));
            }
        }
        _ => return Err("no signatures".into()),
    }
    verify_json(map, &only).map_err(|e| e.to_string())
}

/// What a key is used for decides which keys count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A request's `X-Matrix` signature or other signed JSON now: only current keys
    /// (`verify_keys`) whose document is still valid.
    Now(u64),
    /// An event sent at `origin_server_ts`; `enforce_validity` is the room version's
    /// `enforce_key_validity` (rooms v5+: the key's `valid_until_ts` must cover the event).
    Event { ts: u64, enforce_validity: bool },
}

/// Whether `key` may verify a signature made for `purpose` (spec: "Validating hashes and
/// signatures on received events": keys known to have expired before the event are ignored;
/// room versions 5+ also require `valid_until_ts` to cover it).
pub fn usable(key: &ServerKey, purpose: Purpose) -> bool {
    match (purpose, key.expired_ts) {
        (Purpose::Now(_), Some(_)) => false,
        (Purpose::Now(now), None) => key.valid_until_ts >= now,
        (Purpose::Event { ts, .. }, Some(expired)) => ts < expired,
        (Purpose::Event { ts, enforce_validity }, None) => !enforce_validity || ts <= key.valid_until_ts,
    }
}

/// Whether the cached keys can serve `key_ids` for `purpose` without fetching again. An
/// empty `key_ids` asks for any usable key.
pub fn satisfied(keys: &[ServerKey], key_ids: &[String], purpose: Purpose) -> bool {
    let has = |id: &str| keys.iter().any(|k| k.key_id == id && usable(k, purpose));
    if key_ids.is_empty() {
        keys.iter().any(|k| usable(k, purpose))
    } else {
        key_ids.iter().any(|id| has(id))
    }
}

/// The `PublicKeyMap` (for ruma's verification) of one server's given keys.
pub fn key_map<'a>(server: &str, keys: impl IntoIterator<Item = &'a ServerKey>) -> PublicKeyMap {
    let mut set = PublicKeySet::new();
    for k in keys {
        if let Ok(b) = Base64::parse(&k.key) {
            set.insert(k.key_id.clone(), b);
        }
    }
    let mut map = PublicKeyMap::new();
    map.insert(server.to_owned(), set);
    map
}

/// Adds our signature to a key document we relay as a notary (the origin's stays).
pub fn notary_sign(doc: &CanonicalJsonObject, our_name: &str, key: &ServerSigningKey) -> Result<Value, String> {
    let mut doc = doc.clone();
    key.sign_object(our_name, &mut doc)?;
    serde_json::to_value(doc).map_err(|e| e.to_string())
}

/// The key IDs (`algorithm:version`) of the signatures `server` put on `obj`.
pub fn signing_key_ids(obj: &CanonicalJsonObject, server: &str) -> Vec<String> {
    match obj.get("signatures") {
        Some(CanonicalJsonValue::Object(s)) => match s.get(server) {
            Some(CanonicalJsonValue::Object(by_key)) => by_key.keys().cloned().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A `POST /_matrix/key/v2/query` body's criteria: server → (key IDs, minimum_valid_until_ts).
pub fn parse_query_criteria(body: &Value, now: u64) -> Result<BTreeMap<String, u64>, String> {
    let servers = body.get("server_keys").and_then(Value::as_object).ok_or("server_keys must be an object")?;
    let mut out = BTreeMap::new();
    for (server, ids) in servers {
        let ids = ids.as_object().ok_or("server_keys values must be objects")?;
        let min = ids.values().filter_map(|c| c.get("minimum_valid_until_ts").and_then(Value::as_u64)).max().unwrap_or(now);
        out.insert(server.clone(), min);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(id: &str, valid: u64, expired: Option<u64>) -> ServerKey {
        ServerKey { key_id: id.into(), key: "AAAA".into(), valid_until_ts: valid, expired_ts: expired }
    }

    fn signed_doc(k: &ServerSigningKey, server: &str, valid: u64, old: Value) -> Value {
        let doc = json!({
            "server_name": server,
            "valid_until_ts": valid,
            "verify_keys": {k.key_id(): {"key": k.public_key_base64()}},
            "old_verify_keys": old,
        });
        let CanonicalJsonValue::Object(mut o) = CanonicalJsonValue::try_from(doc).unwrap() else { panic!() };
        k.sign_object(server, &mut o).unwrap();
        serde_json::to_value(o).unwrap()
    }

    #[test]
    fn key_documents_are_checked() {
        let k = ServerSigningKey::generate();
        let old = ServerSigningKey::generate();
        let doc = signed_doc(&k, "a.org", 5000, json!({"ed25519:old": {"key": old.public_key_base64(), "expired_ts": 1000}}));
        let d = check_key_document(&doc, "a.org").unwrap();
        assert_eq!(d.valid_until_ts, 5000);
        assert_eq!(d.keys.len(), 2);
        assert!(d.keys.contains(&ServerKey { key_id: k.key_id(), key: k.public_key_base64(), valid_until_ts: 5000, expired_ts: None }));
        assert!(d.keys.iter().any(|x| x.key_id == "ed25519:old" && x.expired_ts == Some(1000)));
        // The wrong server, a tampered document, a document signed by another key, unsigned.
        assert!(check_key_document(&doc, "b.org").is_err());
        let mut t = doc.clone();
        t["valid_until_ts"] = json!(9999);
        assert!(check_key_document(&t, "a.org").is_err());
        let other = ServerSigningKey::generate();
        let mut forged = signed_doc(&other, "a.org", 5000, json!({}));
        forged["verify_keys"] = json!({k.key_id(): {"key": k.public_key_base64()}});
        assert!(check_key_document(&forged, "a.org").is_err());
        let mut unsigned = doc.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        assert!(check_key_document(&unsigned, "a.org").is_err());
        let mut by_others = doc.clone();
        by_others["signatures"] = json!({"b.org": doc["signatures"]["a.org"].clone()});
        assert!(check_key_document(&by_others, "a.org").is_err());
        assert!(check_key_document(&json!({"server_name": "a.org"}), "a.org").is_err());
        assert!(check_key_document(&json!([1]), "a.org").is_err());
    }

    #[test]
    fn notary_signatures() {
        let origin = ServerSigningKey::generate();
        let notary = ServerSigningKey::generate();
        let doc = signed_doc(&origin, "a.org", 5000, json!({}));
        let d = check_key_document(&doc, "a.org").unwrap();
        let relayed = notary_sign(&d.raw, "n.org", &notary).unwrap();
        // Still the origin's valid document, now also signed by the notary.
        let again = check_key_document(&relayed, "a.org").unwrap();
        let nk = ServerKey { key_id: notary.key_id(), key: notary.public_key_base64(), valid_until_ts: u64::MAX, expired_ts: None };
        check_notary_signature(&again.raw, "n.org", std::slice::from_ref(&nk)).unwrap();
        let wrong = ServerKey { key: origin.public_key_base64(), ..nk };
        assert!(check_notary_signature(&again.raw, "n.org", &[wrong]).is_err());
        assert!(check_notary_signature(&d.raw, "n.org", &[]).is_err());
    }

    #[test]
    fn which_keys_verify_what() {
        let current = key("ed25519:a", 1000, None);
        let old = key("ed25519:o", 500, Some(500));
        // Requests: only current keys, while their document is valid.
        assert!(usable(&current, Purpose::Now(1000)));
        assert!(!usable(&current, Purpose::Now(1001)));
        assert!(!usable(&old, Purpose::Now(0)));
        // Events: old keys for events before they expired.
        assert!(usable(&old, Purpose::Event { ts: 499, enforce_validity: true }));
        assert!(!usable(&old, Purpose::Event { ts: 500, enforce_validity: false }));
        // valid_until_ts binds events only where the room version enforces it.
        assert!(usable(&current, Purpose::Event { ts: 1000, enforce_validity: true }));
        assert!(!usable(&current, Purpose::Event { ts: 1001, enforce_validity: true }));
        assert!(usable(&current, Purpose::Event { ts: 99999, enforce_validity: false }));
        let keys = [current, old];
        assert!(satisfied(&keys, &["ed25519:a".into()], Purpose::Now(10)));
        assert!(!satisfied(&keys, &["ed25519:zz".into()], Purpose::Now(10)));
        assert!(satisfied(&keys, &[], Purpose::Now(10)));
        assert!(!satisfied(&keys, &[], Purpose::Now(2000)));
        assert!(satisfied(&keys, &["ed25519:zz".into(), "ed25519:o".into()], Purpose::Event { ts: 1, enforce_validity: true }));
    }

    #[test]
    fn event_signatures_use_the_key_valid_at_the_event() {
        use ruma::signatures::{hash_and_sign_event, verify_event};
        use ruma::RoomVersionId;
        let signer = ServerSigningKey::generate();
        let rules = RoomVersionId::V10.rules().unwrap();
        let CanonicalJsonValue::Object(mut pdu) = CanonicalJsonValue::try_from(json!({
            "auth_events": [], "prev_events": [], "content": {"body": "hi"}, "depth": 3,
            "origin_server_ts": 1000, "room_id": "!r:a.org", "sender": "@u:a.org", "type": "m.room.message",
        }))
        .unwrap() else {
            panic!()
        };
        hash_and_sign_event("a.org", &signer, &mut pdu, &rules.redaction).unwrap();
        let as_current = |valid: u64| ServerKey { key_id: signer.key_id(), key: signer.public_key_base64(), valid_until_ts: valid, expired_ts: None };
        let as_old = |expired: u64| ServerKey { expired_ts: Some(expired), ..as_current(expired) };
        let check = |k: ServerKey, enforce: bool| {
            let purpose = Purpose::Event { ts: 1000, enforce_validity: enforce };
            let map = key_map("a.org", std::iter::once(&k).filter(|k| usable(k, purpose)));
            verify_event(&map, &pdu, &rules).is_ok()
        };
        assert!(check(as_current(1000), true));
        // The document stopped vouching for the key before the event: v5+ refuses, v1-4 not.
        assert!(!check(as_current(999), true));
        assert!(check(as_current(999), false));
        // An old key signs events from before it expired, not after.
        assert!(check(as_old(1001), true));
        assert!(!check(as_old(1000), true));
        // A tampered event fails with the right key.
        let mut tampered = pdu.clone();
        tampered.insert("depth".into(), CanonicalJsonValue::Integer(4u32.into()));
        let map = key_map("a.org", [&as_current(2000)]);
        assert!(verify_event(&map, &tampered, &rules).is_err());
    }

    #[test]
    fn query_criteria() {
        let body = json!({"server_keys": {"a.org": {"ed25519:1": {"minimum_valid_until_ts": 50}}, "b.org": {}}});
        let c = parse_query_criteria(&body, 7).unwrap();
        assert_eq!(c.get("a.org"), Some(&50));
        assert_eq!(c.get("b.org"), Some(&7));
        assert!(parse_query_criteria(&json!({}), 0).is_err());
        assert!(parse_query_criteria(&json!({"server_keys": {"a": 1}}), 0).is_err());
        let obj: CanonicalJsonObject = serde_json::from_value(json!({"signatures": {"a.org": {"ed25519:x": "s"}}})).unwrap();
        assert_eq!(signing_key_ids(&obj, "a.org"), vec!["ed25519:x"]);
        assert!(signing_key_ids(&obj, "b.org").is_empty());
    }
}
