//! The key management API (spec: client-server-api, "End-to-End Encryption" → "Key
//! management API"; OpenAPI `keys.yaml`): device keys and one-time/fallback keys, queries,
//! claims and device-list changes.

use serde_json::{json, Map, Value};

use crate::api::auth::Authed;
use crate::core::e2ee;
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::e2ee::{self as e2ee_service, store_keys, uploaded_keys};
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
        keys::announce_devices(&ctx.env, &ctx.db, &ctx.config, user, std::slice::from_ref(&me.device_id)).await?;
    }
    Ok(Response::ok(json!({ "one_time_key_counts": e2ee::key_counts(&counts) })))
}

/// The request's `timeout` for other servers (ms, default 10 s, at most a minute).
fn remote_timeout(body: &Value) -> u64 {
    body.get("timeout").and_then(Value::as_u64).unwrap_or(10_000).min(60_000)
}

/// # `POST /_matrix/client/v3/keys/query`
/// Device keys (with `unsigned.device_display_name`) and cross-signing keys, with the
/// signatures the requester may see: the owner's, and the requester's own. Other servers'
/// users come from our cache of their device lists when we track them, else from their
/// servers, asked in parallel within `timeout`; a server that fails goes to `failures`.
pub async fn query_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    let wanted = body.get("device_keys").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "device_keys must be an object"))?;
    if wanted.len() > 1000 {
        return Err(err!(InvalidParam, "Too many users in one query"));
    }
    let mut failures = Map::new();
    let (local, remote) = e2ee_service::split_users(ctx, wanted.keys());
    let mut answer = e2ee_service::local_keys(ctx, wanted, &local, Some(me.user_id.as_str())).await?;
    e2ee_service::query_remote(ctx, wanted, &remote, remote_timeout(&body), &mut answer, &mut failures).await?;
    Ok(Response::ok(json!({
        "device_keys": answer.device_keys,
        "master_keys": answer.master_keys,
        "self_signing_keys": answer.self_signing_keys,
        "user_signing_keys": answer.user_signing_keys,
        "failures": failures,
    })))
}

/// # `POST /_matrix/client/v3/keys/claim`
/// One key per requested device, atomically in each user's `UserKeys` object: a one-time
/// key if any is left, else the fallback key. Other servers' users are claimed of their
/// servers in parallel within `timeout`; a server that fails goes to `failures`.
pub async fn claim_keys_route(ctx: &Ctx, req: &Request, _me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    let wanted = body.get("one_time_keys").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "one_time_keys must be an object"))?;
    let mut failures = Map::new();
    let (local, remote) = e2ee_service::split_users(ctx, wanted.keys());
    let mut out = e2ee_service::claim_local(ctx, wanted, &local).await?;
    e2ee_service::claim_remote(ctx, wanted, &remote, remote_timeout(&body), &mut out, &mut failures).await;
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
