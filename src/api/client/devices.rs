//! Device management (spec: client-server-api, "Device management").

use crate::core::json::JsonExt;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::{user_interactive_auth, Authed};
use crate::core::uia::{self, Flows};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{parse_json, Request, Response};
use crate::store::accounts;

/// # `GET /_matrix/client/v3/devices`
pub async fn devices_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let devices = accounts::list_devices(&ctx.db, me.user_id.as_str()).await?;
    Ok(Response::ok(json!({ "devices": devices.iter().map(device_json).collect::<Vec<_>>() })))
}

/// A `Device` (definitions/client_device.yaml): the optional fields are absent, not `null`,
/// when unknown ("Absent if no name has been set").
fn device_json(d: &accounts::Device) -> serde_json::Value {
    let mut v = json!({ "device_id": d.device_id });
    if let Some(n) = &d.display_name {
        v.set("display_name", json!(n));
    }
    if let Some(ip) = &d.last_seen_ip {
        v.set("last_seen_ip", json!(ip));
    }
    if let Some(ts) = d.last_seen_ts {
        v.set("last_seen_ts", json!(ts));
    }
    v
}

/// # `GET /_matrix/client/v3/devices/{deviceId}`
pub async fn get_device_route(ctx: &Ctx, _req: &Request, me: &Authed, device_id: &str) -> Result<Response> {
    let d = accounts::get_device(&ctx.db, me.user_id.as_str(), device_id).await?.ok_or_else(|| err!(NotFound, "Device not found"))?;
    Ok(Response::ok(device_json(&d)))
}

#[derive(Deserialize)]
struct UpdateBody {
    display_name: Option<String>,
}

/// # `PUT /_matrix/client/v3/devices/{deviceId}`
pub async fn update_device_route(ctx: &Ctx, req: &Request, me: &Authed, device_id: &str) -> Result<Response> {
    let body: UpdateBody = req.json()?;
    if body.display_name.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return Err(err!(InvalidParam, "Device display name too long"));
    }
    if accounts::get_device(&ctx.db, me.user_id.as_str(), device_id).await?.is_none() {
        return Err(err!(NotFound, "Device not found"));
    }
    if let Some(name) = &body.display_name {
        accounts::set_device_name(&ctx.db, me.user_id.as_str(), device_id, Some(name)).await?;
    }
    Ok(Response::ok(json!({})))
}

/// # `DELETE /_matrix/client/v3/devices/{deviceId}`
/// Needs the password (UIA); the device's tokens die with it.
pub async fn delete_device_route(ctx: &Ctx, req: &Request, me: &Authed, device_id: &str) -> Result<Response> {
    if accounts::get_device(&ctx.db, me.user_id.as_str(), device_id).await?.is_none() {
        return Err(err!(NotFound, "Device not found"));
    }
    let value = req.json_value_or_empty()?;
    user_interactive_auth(ctx, req, &value, "delete_devices", &Flows::single(uia::PASSWORD), Some(&me.user_id)).await?;
    crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, me.user_id.as_str(), &[device_id.to_owned()]).await?;
    Ok(Response::ok(json!({})))
}

#[derive(Deserialize)]
struct DeleteDevicesBody {
    devices: Vec<String>,
}

/// # `POST /_matrix/client/v3/delete_devices`
pub async fn delete_devices_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let value = req.json_value()?;
    let body: DeleteDevicesBody = parse_json(value.clone())?;
    if body.devices.len() > 1000 {
        return Err(err!(InvalidParam, "Too many devices at once"));
    }
    user_interactive_auth(ctx, req, &value, "delete_devices", &Flows::single(uia::PASSWORD), Some(&me.user_id)).await?;
    crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, me.user_id.as_str(), &body.devices).await?;
    Ok(Response::ok(json!({})))
}
