//! End-to-end encryption rules the server enforces (spec: client-server-api,
//! "End-to-End Encryption" → "Key management API", "Cross-signing", and MSC3814 for
//! dehydrated devices). The server never sees plaintext; it checks that what it stores and
//! hands out is well formed and signed by whom it claims, so a client can't be fed keys that
//! its owner never signed.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ruma::signatures::{to_canonical_json_string_for_signing, verify_canonical_json_bytes};
use ruma::{CanonicalJsonObject, CanonicalJsonValue, SigningKeyAlgorithm};
use serde_json::Value;

/// Decodes unpadded (or padded) base64, as Matrix keys and signatures are written.
fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// Verifies `signatures[signer_user][key_id]` on `object` with the ed25519 `public_key`
/// (spec: appendices, "Signing JSON": canonical JSON without `signatures` and `unsigned`).
pub fn verify_signature(object: &Value, signer_user: &str, key_id: &str, public_key: &str) -> Result<(), String> {
    let sig = object
        .get("signatures")
        .and_then(|s| s.get(signer_user))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("No signature by {signer_user} {key_id}"))?;
    let sig = b64(sig).ok_or("Signature is not base64")?;
    let key = b64(public_key).ok_or("Public key is not base64")?;
    let canonical: CanonicalJsonObject = match CanonicalJsonValue::try_from(object.clone()) {
        Ok(CanonicalJsonValue::Object(o)) => o,
        _ => return Err("Not a canonical JSON object".into()),
    };
    let text = to_canonical_json_string_for_signing(&canonical).map_err(|e| e.to_string())?;
    verify_canonical_json_bytes(&SigningKeyAlgorithm::Ed25519, &key, &sig, text.as_bytes()).map_err(|_| "Invalid signature".to_string())
}

/// The signed part of a key object: everything but `signatures` and `unsigned`. Two uploads
/// are "the same key" when these are equal.
pub fn signed_part(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("signatures");
        m.remove("unsigned");
    }
    o
}

/// Checks an uploaded `device_keys` object (spec: `POST /keys/upload`): it names this user
/// and device, carries the device's ed25519 key, and is signed by that key.
pub fn check_device_keys(keys: &Value, user_id: &str, device_id: &str) -> Result<(), String> {
    if keys.get("user_id").and_then(Value::as_str) != Some(user_id) {
        return Err("device_keys.user_id does not match the user".into());
    }
    if keys.get("device_id").and_then(Value::as_str) != Some(device_id) {
        return Err("device_keys.device_id does not match the device".into());
    }
    if !keys.get("algorithms").is_some_and(Value::is_array) {
        return Err("device_keys.algorithms must be an array".into());
    }
    let key_id = format!("ed25519:{device_id}");
    let ed = keys.get("keys").and_then(|k| k.get(&key_id)).and_then(Value::as_str).ok_or("device_keys has no ed25519 key for the device")?;
    verify_signature(keys, user_id, &key_id, ed).map_err(|e| format!("device_keys self-signature: {e}"))
}

/// The one public key of a cross-signing key object, as `(key_id, public_key)`, after checking
/// that it belongs to `user_id` and has `usage` (spec: "Cross-signing").
pub fn cross_signing_public_key(key: &Value, user_id: &str, usage: &str) -> Result<(String, String), String> {
    if key["user_id"].as_str() != Some(user_id) {
        return Err(format!("{usage} key: user_id does not match the user"));
    }
    if !key["usage"].as_array().is_some_and(|u| u.iter().any(|x| x.as_str() == Some(usage))) {
        return Err(format!("{usage} key: usage must contain \"{usage}\""));
    }
    let keys = key["keys"].as_object().ok_or_else(|| format!("{usage} key: keys must be an object"))?;
    let (Some((id, v)), 1) = (keys.iter().next(), keys.len()) else {
        return Err(format!("{usage} key: exactly one key is required"));
    };
    let public = v.as_str().ok_or_else(|| format!("{usage} key: key must be a string"))?;
    if id.strip_prefix("ed25519:") != Some(public) || b64(public).map(|k| k.len()) != Some(32) {
        return Err(format!("{usage} key: the key ID must be ed25519:<the 32-byte public key>"));
    }
    Ok((id.clone(), public.to_owned()))
}

/// One key of a `one_time_keys` / `fallback_keys` map: `algorithm:key_id` → key.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedKey {
    pub algorithm: String,
    /// The full `algorithm:id`.
    pub key_id: String,
    pub key: Value,
}

/// Parses a `one_time_keys` or `fallback_keys` map; each name must be `algorithm:id` and each
/// key a string or an object.
pub fn parse_key_map(map: &Value, what: &str) -> Result<Vec<UploadedKey>, String> {
    let Some(m) = map.as_object() else {
        return if map.is_null() { Ok(vec![]) } else { Err(format!("{what} must be an object")) };
    };
    let mut out = Vec::with_capacity(m.len());
    for (id, key) in m {
        let Some((alg, rest)) = id.split_once(':') else {
            return Err(format!("{what}: key name {id:?} is not algorithm:key_id"));
        };
        if alg.is_empty() || rest.is_empty() || id.len() > 255 {
            return Err(format!("{what}: bad key name {id:?}"));
        }
        if !(key.is_string() || key.is_object()) {
            return Err(format!("{what}: {id} must be a string or an object"));
        }
        out.push(UploadedKey { algorithm: alg.to_owned(), key_id: id.clone(), key: key.clone() });
    }
    Ok(out)
}

/// What `device_lists` of a sync (or `/keys/changes`) reports, from:
/// - `key_changes`: users whose device keys or cross-signing keys changed in the range;
/// - `membership_changes`: `(room_id, user_id)` of membership events in the range in rooms the
///   user is in or was in;
/// - `room_members`: `(room_id, user_id)` of the current (joined or invited) members of those
///   rooms, and of every room the user is joined to;
/// - `sharing`: everyone who now shares a room with the user.
///
/// Spec ("Extensions to /sync"): `changed` = users whose keys changed, or who now share a room
/// they did not before; `left` = users with whom the user no longer shares any room. The user's
/// own key changes are reported to their other devices.
pub fn device_list_changes(
    me: &str,
    key_changes: &[String],
    membership_changes: &[(String, String)],
    room_members: &[(String, String)],
    sharing: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut changed: BTreeSet<String> = key_changes.iter().filter(|u| *u == me || sharing.contains(*u)).cloned().collect();
    let mut left = BTreeSet::new();
    let mut candidates: BTreeSet<&str> = BTreeSet::new();
    for (room, user) in membership_changes {
        if user == me {
            // My own join or leave: everyone in that room may have started or stopped sharing.
            candidates.extend(room_members.iter().filter(|(r, _)| r == room).map(|(_, u)| u.as_str()));
        } else {
            candidates.insert(user.as_str());
        }
    }
    for u in candidates {
        if u == me {
            continue;
        }
        if sharing.contains(u) {
            changed.insert(u.to_owned());
        } else {
            left.insert(u.to_owned());
        }
    }
    (changed.into_iter().collect(), left.into_iter().collect())
}

/// Merges stored signatures (`signer_user`, `signer_key_id`, `signature`) into a key
/// object's `signatures`.
pub fn add_signatures(object: &mut Value, sigs: &[(String, String, String)]) {
    if sigs.is_empty() {
        return;
    }
    // A key object that is not a JSON object has nowhere to hold signatures.
    let Some(object) = object.as_object_mut() else {
        return;
    };
    let signatures = object.entry("signatures").or_insert_with(|| Value::Object(Default::default()));
    if !signatures.is_object() {
        *signatures = Value::Object(Default::default());
    }
    let Some(signatures) = signatures.as_object_mut() else {
        return;
    };
    for (user, key_id, sig) in sigs {
        let by_user = signatures.entry(user.clone()).or_insert_with(|| Value::Object(Default::default()));
        if !by_user.is_object() {
            *by_user = Value::Object(Default::default());
        }
        if let Some(by_user) = by_user.as_object_mut() {
            by_user.insert(key_id.clone(), Value::String(sig.clone()));
        }
    }
}

/// The `one_time_key_counts` shape: `signed_curve25519` is always present (clients read a
/// missing count as "unknown" and some never upload then).
pub fn key_counts(counts: &BTreeMap<String, u64>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("signed_curve25519".into(), 0.into());
    for (k, v) in counts {
        m.insert(k.clone(), (*v).into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn public(k: &SigningKey) -> String {
        STANDARD_NO_PAD.encode(k.verifying_key().to_bytes())
    }

    fn sign(mut obj: Value, user: &str, key_id: &str, k: &SigningKey) -> Value {
        let canonical = match CanonicalJsonValue::try_from(obj.clone()).unwrap() {
            CanonicalJsonValue::Object(o) => o,
            _ => unreachable!(),
        };
        let text = to_canonical_json_string_for_signing(&canonical).unwrap();
        let sig = STANDARD_NO_PAD.encode(k.sign(text.as_bytes()).to_bytes());
        if !obj["signatures"].is_object() {
            obj["signatures"] = json!({});
        }
        if !obj["signatures"][user].is_object() {
            obj["signatures"][user] = json!({});
        }
        obj["signatures"][user][key_id] = json!(sig);
        obj
    }

    fn device_keys(k: &SigningKey) -> Value {
        let dk = json!({
            "user_id": "@a:x", "device_id": "DEV",
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": { "ed25519:DEV": public(k), "curve25519:DEV": "c".repeat(43) },
        });
        sign(dk, "@a:x", "ed25519:DEV", k)
    }

    #[test]
    fn device_keys_self_signature_is_checked() {
        let k = key(1);
        let dk = device_keys(&k);
        assert_eq!(check_device_keys(&dk, "@a:x", "DEV"), Ok(()));
        // Unsigned fields and others' signatures don't matter.
        let mut extra = dk.clone();
        extra["unsigned"] = json!({ "device_display_name": "x" });
        extra["signatures"]["@b:x"] = json!({ "ed25519:Z": "abc" });
        assert_eq!(check_device_keys(&extra, "@a:x", "DEV"), Ok(()));
        // Tampered content, wrong owner, wrong device, signed by another key.
        let mut tampered = dk.clone();
        tampered["keys"]["curve25519:DEV"] = json!("d".repeat(43));
        assert!(check_device_keys(&tampered, "@a:x", "DEV").is_err());
        assert!(check_device_keys(&dk, "@b:x", "DEV").is_err());
        assert!(check_device_keys(&dk, "@a:x", "OTHER").is_err());
        let mut forged = dk.clone();
        forged["signatures"] = json!({});
        let forged = sign(forged, "@a:x", "ed25519:DEV", &key(2));
        assert!(check_device_keys(&forged, "@a:x", "DEV").is_err());
        let mut nosig = dk;
        nosig.as_object_mut().unwrap().remove("signatures");
        assert!(check_device_keys(&nosig, "@a:x", "DEV").is_err());
    }

    #[test]
    fn cross_signing_keys_are_checked() {
        let m = key(3);
        let master = json!({ "user_id": "@a:x", "usage": ["master"], "keys": { format!("ed25519:{}", public(&m)): public(&m) } });
        assert_eq!(cross_signing_public_key(&master, "@a:x", "master").unwrap().1, public(&m));
        assert!(cross_signing_public_key(&master, "@a:x", "self_signing").is_err());
        assert!(cross_signing_public_key(&master, "@b:x", "master").is_err());
        let wrong_id = json!({ "user_id": "@a:x", "usage": ["master"], "keys": { "ed25519:abc": public(&m) } });
        assert!(cross_signing_public_key(&wrong_id, "@a:x", "master").is_err());
        let two = json!({ "user_id": "@a:x", "usage": ["master"], "keys": { format!("ed25519:{}", public(&m)): public(&m), "ed25519:b": "b" } });
        assert!(cross_signing_public_key(&two, "@a:x", "master").is_err());
        // A self-signing key signed by the master key verifies with the master's public key.
        let s = key(4);
        let ssk = sign(
            json!({ "user_id": "@a:x", "usage": ["self_signing"], "keys": { format!("ed25519:{}", public(&s)): public(&s) } }),
            "@a:x",
            &format!("ed25519:{}", public(&m)),
            &m,
        );
        assert!(verify_signature(&ssk, "@a:x", &format!("ed25519:{}", public(&m)), &public(&m)).is_ok());
        assert!(verify_signature(&ssk, "@a:x", &format!("ed25519:{}", public(&m)), &public(&s)).is_err());
    }

    #[test]
    fn key_maps_parse() {
        let keys = parse_key_map(&json!({ "signed_curve25519:AAAA": { "key": "k" }, "curve25519:B": "k2" }), "one_time_keys").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].algorithm, "curve25519");
        assert_eq!(keys[1].key_id, "signed_curve25519:AAAA");
        assert!(parse_key_map(&json!({ "nocolon": "k" }), "x").is_err());
        assert!(parse_key_map(&json!({ "a:": "k" }), "x").is_err());
        assert!(parse_key_map(&json!({ "a:b": 5 }), "x").is_err());
        assert!(parse_key_map(&json!([1]), "x").is_err());
        assert_eq!(parse_key_map(&Value::Null, "x").unwrap(), vec![]);
    }

    #[test]
    fn device_lists_follow_shared_rooms() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<BTreeSet<_>>();
        let p = |r: &str, u: &str| (r.to_string(), u.to_string());
        let sharing = s(&["@me:x", "@bob:x", "@carol:x", "@new:x"]);
        // Key changes: mine and Bob's are reported; a stranger's is not.
        let (changed, left) = device_list_changes("@me:x", &["@me:x".into(), "@bob:x".into(), "@stranger:x".into()], &[], &[], &sharing);
        assert_eq!(changed, vec!["@bob:x", "@me:x"]);
        assert!(left.is_empty());
        // @new joined a shared room → changed; @gone left its last shared room → left;
        // @carol left one room but still shares another → nothing.
        let (changed, left) = device_list_changes("@me:x", &[], &[p("!a", "@new:x"), p("!a", "@gone:x"), p("!b", "@carol:x")], &[], &sharing);
        assert_eq!(changed, vec!["@carol:x", "@new:x"]);
        assert_eq!(left, vec!["@gone:x"]);
        // I joined !c: all its members are changed; I left !d: its members I no longer share
        // anything with are left.
        let (changed, left) = device_list_changes(
            "@me:x",
            &[],
            &[p("!c", "@me:x"), p("!d", "@me:x")],
            &[p("!c", "@bob:x"), p("!c", "@me:x"), p("!d", "@dave:x"), p("!d", "@carol:x")],
            &sharing,
        );
        assert_eq!(changed, vec!["@bob:x", "@carol:x"]);
        assert_eq!(left, vec!["@dave:x"]);
    }

    #[test]
    fn signatures_merge_and_counts_default() {
        let mut o = json!({ "keys": {} });
        add_signatures(&mut o, &[("@a:x".into(), "ed25519:K".into(), "sig".into())]);
        assert_eq!(o["signatures"]["@a:x"]["ed25519:K"], "sig");
        assert_eq!(signed_part(&json!({ "a": 1, "signatures": {}, "unsigned": {} })), json!({ "a": 1 }));
        let mut c = BTreeMap::new();
        c.insert("curve25519".to_string(), 3);
        assert_eq!(key_counts(&c), json!({ "signed_curve25519": 0, "curve25519": 3 }));
    }
}
