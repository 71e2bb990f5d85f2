//! The key management API (spec: client-server-api, "End-to-End Encryption" → "Key
//! management API"; OpenAPI `keys.yaml`): device keys and one-time/fallback keys, queries,
//! claims and device-list changes.

use crate::core::json::JsonExt;
use futures_util::future::join_all;
use serde_json::{json, Map, Value};

use crate::api::auth::Authed;
use crate::core::e2ee;
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::e2ee::{store_keys, uploaded_keys};
use crate::service::keys;
use crate::service::sync::device_lists;
use crate::store::e2ee as kstore;

/// # `POST /_matrix/client/v3/keys/upload`
/// Device keys must be signed by the device's own ed25519 key; one-time keys are added,
/// fallback keys replace the previous one of their algorithm.
pub async fn upload_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    if !body.is_object() {
        return Err(err!(BadJson, "Body must be an object"));
    }
    let user = me.user_id.as_str();
    let (otks, fallbacks) = uploaded_keys(&body)?;
    let mut changed = false;
    if let Some(dk) = body.get("device_keys").filter(|v| !v.is_null()) {
        e2ee::check_device_keys(dk, user, &me.device_id).map_err(|e| err!(InvalidParam, "{e}"))?;
        let old = kstore::get_device_keys(&ctx.db, user, &me.device_id).await?;
        if old.as_ref().map(e2ee::signed_part) != Some(e2ee::signed_part(dk)) {
            kstore::put_device_keys(&ctx.db, user, &me.device_id, dk).await?;
            changed = true;
        }
    }
    let counts = if otks.is_empty() && fallbacks.is_empty() {
        keys::counts(&ctx.env, user, &me.device_id).await?.0
    } else {
        store_keys(ctx, user, &me.device_id, &otks, &fallbacks).await?
    };
    if changed {
        keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await?;
    }
    Ok(Response::ok(json!({ "one_time_key_counts": e2ee::key_counts(&counts) })))
}

/// Local users of a `{user_id: …}` map; remote servers go to `failures` (no federation yet).
/// Invalid user IDs are skipped (nothing to return for them; one odd room member must not
/// fail a client's whole key query).
fn split_users<'a>(ctx: &Ctx, users: impl Iterator<Item = &'a String>, failures: &mut Map<String, Value>) -> Vec<String> {
    let mut local = Vec::new();
    for u in users {
        match crate::core::ids::parse_client_user_id(u) {
            Ok(id) if id.server_name() == ctx.config.server_name => local.push(u.clone()),
            Ok(id) => {
                failures.insert(id.server_name().to_string(), json!({ "status": 503, "message": "Federation is not available" }));
            }
            Err(_) => {}
        }
    }
    local
}

/// # `POST /_matrix/client/v3/keys/query`
/// Device keys (with `unsigned.device_display_name`) and cross-signing keys, with the
/// signatures the requester may see: the owner's, and the requester's own.
pub async fn query_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    let wanted = body.get("device_keys").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "device_keys must be an object"))?;
    if wanted.len() > 1000 {
        return Err(err!(InvalidParam, "Too many users in one query"));
    }
    let mut failures = Map::new();
    let local = split_users(ctx, wanted.keys(), &mut failures);
    let rows = kstore::query_keys(&ctx.db, &local).await?;
    let requester = me.user_id.as_str();
    let sigs_for = |user: &str, target: &str| -> Vec<(String, String, String)> {
        rows.signatures
            .iter()
            .filter(|(tu, tk, su, _, _)| tu == user && tk == target && (su == user || su == requester))
            .map(|(_, _, su, sk, s)| (su.clone(), sk.clone(), s.clone()))
            .collect()
    };
    let mut device_keys = Map::new();
    for u in &local {
        device_keys.insert(u.clone(), json!({}));
    }
    for (u, d, key_json, name) in &rows.devices {
        let only: Vec<&str> = wanted.get(u).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if !only.is_empty() && !only.contains(&d.as_str()) {
            continue;
        }
        let Ok(mut k) = serde_json::from_str::<Value>(key_json) else { continue };
        e2ee::add_signatures(&mut k, &sigs_for(u, d));
        // Optional, not nullable: absent for a device without a name.
        k.set(
            "unsigned",
            match name {
                Some(n) => json!({ "device_display_name": n }),
                None => json!({}),
            },
        );
        if let Some(of_user) = device_keys.entry(u.clone()).or_insert_with(|| json!({})).as_object_mut() {
            of_user.insert(d.clone(), k);
        }
    }
    let (mut master, mut self_signing, mut user_signing) = (Map::new(), Map::new(), Map::new());
    for (u, usage, public, key_json) in &rows.cross_signing {
        let Ok(mut k) = serde_json::from_str::<Value>(key_json) else { continue };
        e2ee::add_signatures(&mut k, &sigs_for(u, public));
        match usage.as_str() {
            "master" => {
                master.insert(u.clone(), k);
            }
            "self_signing" => {
                self_signing.insert(u.clone(), k);
            }
            // Only the owner sees their user-signing key (spec: "user_signing_keys").
            "user_signing" if u == requester => {
                user_signing.insert(u.clone(), k);
            }
            _ => {}
        }
    }
    Ok(Response::ok(json!({
        "device_keys": device_keys,
        "master_keys": master,
        "self_signing_keys": self_signing,
        "user_signing_keys": user_signing,
        "failures": failures,
    })))
}

/// # `POST /_matrix/client/v3/keys/claim`
/// One key per requested device, atomically in each user's `UserKeys` object: a one-time
/// key if any is left, else the fallback key.
pub async fn claim_keys_route(ctx: &Ctx, req: &Request, _me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    let wanted = body.get("one_time_keys").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "one_time_keys must be an object"))?;
    let mut failures = Map::new();
    let local = split_users(ctx, wanted.keys(), &mut failures);
    let mut claims: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut total = 0;
    for u in &local {
        let per_device = wanted[u].as_object().ok_or_else(|| err!(BadJson, "one_time_keys must map devices to algorithms"))?;
        let mut c = Vec::new();
        for (d, alg) in per_device {
            let alg = alg.as_str().ok_or_else(|| err!(BadJson, "Algorithms must be strings"))?;
            c.push((d.clone(), alg.to_owned()));
        }
        total += c.len();
        claims.push((u.clone(), c));
    }
    if total > 10_000 {
        return Err(err!(InvalidParam, "Too many keys claimed at once"));
    }
    let results = join_all(claims.iter().map(|(u, c)| keys::claim(&ctx.env, u, c))).await;
    let mut out = Map::new();
    for ((u, _), r) in claims.iter().zip(results) {
        let mut per = Map::new();
        for (d, (key_id, key)) in r? {
            per.insert(d, json!({ key_id: key }));
        }
        if !per.is_empty() {
            out.insert(u.clone(), Value::Object(per));
        }
    }
    Ok(Response::ok(json!({ "one_time_keys": out, "failures": failures })))
}

/// # `GET /_matrix/client/v3/keys/changes`
/// Users whose device lists changed between two sync tokens (same rules as `/sync`).
pub async fn key_changes_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let token = |k: &str| -> Result<SyncToken> {
        let t = req.query(k).ok_or_else(|| err!(MissingParam, "Missing {k}"))?;
        SyncToken::decode(t).ok_or_else(|| err!(InvalidParam, "Bad {k} token"))
    };
    let (from, to) = (token("from")?, token("to")?);
    let lists = device_lists::between(ctx, me.user_id.as_str(), &from, &to).await?;
    Ok(Response::ok(serde_json::to_value(lists)?))
}
