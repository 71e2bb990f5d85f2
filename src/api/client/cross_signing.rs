//! Cross-signing (spec: client-server-api, "Cross-signing"; OpenAPI `cross_signing.yaml`):
//! the user's master, self-signing and user-signing keys, and the signatures made with them.
//! Every key and signature is verified before it is stored.

use serde_json::{json, Map, Value};

use crate::api::auth::{user_interactive_auth, AuthToken, Authed};
use crate::core::e2ee::{self, verify_signature};
use crate::core::uia::{self, Flows};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::keys;
use crate::store::e2ee::{self as kstore, Sig};

const USAGES: [(&str, &str); 3] = [("master_key", "master"), ("self_signing_key", "self_signing"), ("user_signing_key", "user_signing")];

/// # `POST /_matrix/client/v3/keys/device_signing/upload`
/// The first upload needs no UIA (MSC3967, in the spec since v1.11), nor does re-uploading
/// the same keys; replacing keys needs the password, or, for OAuth 2.0 sessions, approval in
/// the account page (`m.oauth`). The self-signing and user-signing keys
/// must be signed by the master key (the new one, or the stored one).
pub async fn upload_signing_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    if !body.is_object() {
        return Err(err!(BadJson, "Body must be an object"));
    }
    let user = me.user_id.as_str();
    let existing = kstore::cross_signing_keys(&ctx.db, user).await?;
    let mut new: Vec<(String, String, Value)> = Vec::new();
    for (field, usage) in USAGES {
        if let Some(k) = body.get(field).filter(|v| !v.is_null()) {
            let (_, public) = e2ee::cross_signing_public_key(k, user, usage).map_err(|e| err!(InvalidParam, "{e}"))?;
            new.push((usage.to_owned(), public, k.clone()));
        }
    }
    let master = new
        .iter()
        .find(|(u, _, _)| u == "master")
        .map(|(_, p, _)| p.clone())
        .or_else(|| existing.get("master").map(|(p, _)| p.clone()))
        .ok_or_else(|| err!(InvalidParam, "A master key is required"))?;
    let master_id = format!("ed25519:{master}");
    for (usage, _, k) in &new {
        if usage != "master" {
            verify_signature(k, user, &master_id, &master).map_err(|e| err!(InvalidParam, "{usage} key is not signed by the master key: {e}"))?;
        }
    }
    let unchanged = new.iter().all(|(usage, _, k)| existing.get(usage).is_some_and(|(_, old)| e2ee::signed_part(old) == e2ee::signed_part(k)));
    if existing.contains_key("master") && !unchanged {
        // Clients signed in with OAuth 2.0 can't do password UIA: they get `m.oauth`, approved
        // in the account page (spec v1.17, "OAuth authentication").
        let stage = if matches!(me.token, AuthToken::OAuth(_)) { uia::OAUTH } else { uia::PASSWORD };
        user_interactive_auth(ctx, req, &body, uia::CROSS_SIGNING_UPLOAD, &Flows::single(stage), Some(&me.user_id)).await?;
    }
    if new.is_empty() || unchanged {
        return Ok(Response::ok(json!({})));
    }
    // Signatures on and by the keys being replaced no longer hold.
    let old: Vec<String> = new.iter().filter_map(|(usage, p, _)| existing.get(usage).filter(|(op, _)| op != p).map(|(op, _)| op.clone())).collect();
    kstore::put_cross_signing_keys(&ctx.db, user, &new, &old).await?;
    keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await?;
    // The user-signing key is the owner's alone: only master and self-signing keys go out.
    if new.iter().any(|(usage, _, _)| usage != "user_signing") {
        keys::announce_signing_keys(&ctx.env, &ctx.db, &ctx.config, user).await?;
    }
    Ok(Response::ok(json!({})))
}

fn failure(errcode: &str, error: impl Into<String>) -> Value {
    json!({ "errcode": errcode, "error": error.into() })
}

/// # `POST /_matrix/client/v3/keys/signatures/upload`
/// Accepted signatures: the user's self-signing key on their own devices, their devices on
/// their own master key, and their user-signing key on another user's master key. The signed
/// object must be the stored key; anything else is reported in `failures`.
pub async fn upload_signatures_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    let targets = body.as_object().ok_or_else(|| err!(BadJson, "Body must be an object"))?;
    let user = me.user_id.as_str();
    let mine = kstore::cross_signing_keys(&ctx.db, user).await?;
    let mut failures = Map::new();
    let mut sigs: Vec<Sig> = Vec::new();
    for (target_user, objects) in targets {
        let objects = objects.as_object().ok_or_else(|| err!(BadJson, "Signed keys must be objects"))?;
        let theirs = if target_user == user { None } else { Some(kstore::cross_signing_keys(&ctx.db, target_user).await?) };
        for (key_id, signed) in objects {
            let result = match &theirs {
                None => own_signature(ctx, user, &mine, key_id, signed).await?,
                Some(theirs) => other_signature(user, &mine, target_user, theirs, key_id, signed),
            };
            match result {
                Ok(mut s) => sigs.append(&mut s),
                Err(f) => {
                    let entry = failures.entry(target_user.clone()).or_insert_with(|| json!({}));
                    entry[key_id.as_str()] = f;
                }
            }
        }
    }
    kstore::put_signatures(&ctx.db, &sigs).await?;
    if !sigs.is_empty() {
        // Every stored signature is the user's: their other devices learn of it through
        // their own device list (as Synapse).
        keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await?;
        // Other servers get the newly signed devices again, and the master key if a device
        // signed it.
        let mut devices: Vec<String> =
            sigs.iter().filter(|(tu, tk, _, _, _)| tu == user && !mine.values().any(|(p, _)| p == tk)).map(|s| s.1.clone()).collect();
        devices.sort_unstable();
        devices.dedup();
        keys::announce_devices(&ctx.env, &ctx.db, &ctx.config, user, &devices).await?;
        if sigs.iter().any(|(tu, tk, _, _, _)| tu == user && mine.get("master").is_some_and(|(p, _)| p == tk)) {
            keys::announce_signing_keys(&ctx.env, &ctx.db, &ctx.config, user).await?;
        }
    }
    Ok(Response::ok(json!({ "failures": failures })))
}

type Outcome = std::result::Result<Vec<Sig>, Value>;

/// A signature on one of the user's own keys: a device (by the self-signing key) or the
/// master key (by one of the user's devices).
async fn own_signature(
    ctx: &Ctx,
    user: &str,
    mine: &std::collections::BTreeMap<String, (String, Value)>,
    key_id: &str,
    signed: &Value,
) -> Result<Outcome> {
    if let Some((master_pub, master)) = mine.get("master").filter(|(p, _)| p == key_id) {
        if e2ee::signed_part(master) != e2ee::signed_part(signed) {
            return Ok(Err(failure("M_INVALID_SIGNATURE", "The signed object is not the stored master key")));
        }
        let mut out = Vec::new();
        for (sk, sig) in signed.get("signatures").and_then(|x| x.get(user)).and_then(Value::as_object).into_iter().flatten() {
            let Some(device) = sk.strip_prefix("ed25519:").filter(|d| *d != master_pub) else { continue };
            let Some(dk) = kstore::get_device_keys(&ctx.db, user, device).await? else { continue };
            let Some(public) = dk.get("keys").and_then(|x| x.get(sk.as_str())).and_then(Value::as_str) else { continue };
            if verify_signature(signed, user, sk, public).is_ok() {
                out.push((user.to_owned(), master_pub.clone(), user.to_owned(), sk.clone(), sig.as_str().unwrap_or_default().to_owned()));
            }
        }
        return Ok(if out.is_empty() { Err(failure("M_INVALID_SIGNATURE", "No valid device signature on the master key")) } else { Ok(out) });
    }
    let Some(dk) = kstore::get_device_keys(&ctx.db, user, key_id).await? else {
        return Ok(Err(failure("M_NOT_FOUND", "Unknown device or key")));
    };
    if e2ee::signed_part(&dk) != e2ee::signed_part(signed) {
        return Ok(Err(failure("M_INVALID_SIGNATURE", "The signed object is not the stored device keys")));
    }
    let Some((ssk, _)) = mine.get("self_signing") else {
        return Ok(Err(failure("M_INVALID_SIGNATURE", "No self-signing key to sign devices with")));
    };
    let sk = format!("ed25519:{ssk}");
    Ok(match verify_signature(signed, user, &sk, ssk) {
        Ok(()) => {
            let sig =
                signed.get("signatures").and_then(|x| x.get(user)).and_then(|x| x.get(&sk)).and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(vec![(user.to_owned(), key_id.to_owned(), user.to_owned(), sk, sig)])
        }
        Err(e) => Err(failure("M_INVALID_SIGNATURE", e)),
    })
}

/// A signature by the user's user-signing key on another user's master key.
fn other_signature(
    user: &str,
    mine: &std::collections::BTreeMap<String, (String, Value)>,
    target: &str,
    theirs: &std::collections::BTreeMap<String, (String, Value)>,
    key_id: &str,
    signed: &Value,
) -> Outcome {
    let Some((master_pub, master)) = theirs.get("master").filter(|(p, _)| p == key_id) else {
        return Err(failure("M_NOT_FOUND", "Only another user's master key can be signed"));
    };
    if e2ee::signed_part(master) != e2ee::signed_part(signed) {
        return Err(failure("M_INVALID_SIGNATURE", "The signed object is not the stored master key"));
    }
    let Some((usk, _)) = mine.get("user_signing") else {
        return Err(failure("M_INVALID_SIGNATURE", "No user-signing key to sign users with"));
    };
    let sk = format!("ed25519:{usk}");
    verify_signature(signed, user, &sk, usk).map_err(|e| failure("M_INVALID_SIGNATURE", e))?;
    let sig = signed.get("signatures").and_then(|x| x.get(user)).and_then(|x| x.get(&sk)).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(vec![(target.to_owned(), master_pub.clone(), user.to_owned(), sk, sig)])
}
