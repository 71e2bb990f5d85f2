//! Dehydrated devices (MSC3814, `proposals/3814-dehydrated-devices-with-ssss.md`), served at
//! the MSC's unstable prefix `/_matrix/client/unstable/org.matrix.msc3814.v1/`.
//!
//! A dehydrated device is a real device of the user (in `devices`, with device keys and
//! one-time keys) that no client runs: other users encrypt room keys to it, its to-device
//! messages queue in the user's `UserSync` object, and a new login fetches them with
//! `…/dehydrated_device/{id}/events`, which never deletes (a failed rehydration can start
//! over). At most one per user; a new one replaces the old.

use crate::core::json::JsonExt;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::core::e2ee;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::e2ee::{store_keys, uploaded_keys};
use crate::service::{keys, to_device};
use crate::store::{accounts, e2ee as kstore};

/// # `PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
/// The device, its keys and its one-time/fallback keys arrive together, so there is never a
/// dehydrated device that cannot receive encrypted messages.
pub async fn put_dehydrated_device_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value()?;
    let user = me.user_id.as_str();
    let device_id = body
        .get("device_id")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty() && d.len() <= 255)
        .ok_or_else(|| err!(BadJson, "device_id is required"))?;
    let data =
        body.get("device_data").filter(|d| d["algorithm"].is_string()).ok_or_else(|| err!(BadJson, "device_data with an algorithm is required"))?;
    let dk = body.get("device_keys").filter(|v| v.is_object()).ok_or_else(|| err!(BadJson, "device_keys is required"))?;
    e2ee::check_device_keys(dk, user, device_id).map_err(|e| err!(InvalidParam, "{e}"))?;
    let (otks, fallbacks) = uploaded_keys(&body)?;
    let name = body.get("initial_device_display_name").and_then(Value::as_str);
    if name.is_some_and(|n| n.chars().count() > 256) {
        return Err(err!(InvalidParam, "Device display name too long"));
    }
    let old = kstore::dehydrated_device(&ctx.db, user).await?;
    // The ID must not be one of the user's running devices (their tokens would then act for it).
    if old.as_ref().map(|(d, _)| d.as_str()) != Some(device_id) && accounts::get_device(&ctx.db, user, device_id).await?.is_some() {
        return Err(err!(InvalidParam, "device_id is already in use by another device"));
    }
    if let Some((old_id, _)) = old.filter(|(d, _)| d != device_id) {
        keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, user, &[old_id]).await?;
    }
    // One-time keys first: if they are refused, the device is not created.
    store_keys(ctx, user, device_id, &otks, &fallbacks).await?;
    let mut stmts = vec![accounts::upsert_device_stmt(&ctx.db, user, device_id, name, None)?];
    stmts.extend(kstore::put_device_keys_stmts(&ctx.db, user, device_id, dk)?);
    stmts.push(kstore::put_dehydrated_device_stmt(&ctx.db, user, device_id, data)?);
    ctx.db.batch(stmts).await?;
    keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await?;
    keys::announce_devices(&ctx.env, &ctx.db, &ctx.config, user, &[device_id.to_owned()]).await?;
    Ok(Response::ok(json!({ "device_id": device_id })))
}

/// # `GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
pub async fn get_dehydrated_device_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let (device_id, data) = kstore::dehydrated_device(&ctx.db, me.user_id.as_str()).await?.ok_or_else(|| err!(NotFound, "No dehydrated device"))?;
    Ok(Response::ok(json!({ "device_id": device_id, "device_data": data })))
}

/// # `DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
/// No UIA (MSC3814): the device only ever held what the user's other devices gave it.
pub async fn delete_dehydrated_device_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let user = me.user_id.as_str();
    let (device_id, _) = kstore::dehydrated_device(&ctx.db, user).await?.ok_or_else(|| err!(NotFound, "No dehydrated device"))?;
    keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, user, std::slice::from_ref(&device_id)).await?;
    Ok(Response::ok(json!({ "device_id": device_id })))
}

/// # `POST /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events`
/// (and `GET …?from=`, as the MSC's text writes it). `next_batch` is given while a batch had
/// events; the batch after the last one is empty and has none.
pub async fn dehydrated_events_route(ctx: &Ctx, req: &Request, me: &Authed, device_id: &str) -> Result<Response> {
    let user = me.user_id.as_str();
    match kstore::dehydrated_device(&ctx.db, user).await? {
        Some((d, _)) if d == device_id => {}
        _ => return Err(err!(Forbidden, "Not the dehydrated device")),
    }
    let from = match req.method {
        crate::http::Method::Get => req.query("from").map(str::to_owned),
        _ => {
            let body = req.json_value_or_empty()?;
            match body.get("next_batch") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(err!(BadJson, "next_batch must be a string")),
            }
        }
    };
    let since = match from {
        None => 0,
        Some(t) => t.parse::<u64>().map_err(|_| err!(InvalidParam, "Bad next_batch token"))?,
    };
    let (events, pos) = to_device::peek_to_device(&ctx.env, user, device_id, since).await?;
    let mut out = json!({ "events": events });
    if !events.is_empty() {
        out.set("next_batch", json!(pos.to_string()));
    }
    Ok(Response::ok(out))
}
