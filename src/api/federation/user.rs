//! What other servers ask about our users' end-to-end encryption keys (spec:
//! server-server-api, "End-to-End Encryption" and "Device Management"). Only our own users
//! are answered; others in a request are ignored.

use ruma::{ServerName, UserId};
use serde_json::{json, Map, Value};

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::e2ee as e2ee_service;
use crate::service::keys;
use crate::store::remote_devices as rstore;

/// The users of a request's map that are ours.
fn our_users(ctx: &Ctx, map: &Map<String, Value>) -> Vec<String> {
    map.keys().filter(|u| UserId::parse(u.as_str()).is_ok_and(|id| id.server_name() == ctx.config.server_name)).cloned().collect()
}

/// # `GET /_matrix/federation/v1/user/devices/{userId}`
/// All of the user's devices (with their keys once uploaded, and display names), their
/// master and self-signing keys, and the `stream_id` of their last `m.device_list_update`:
/// what a server resyncs its cache with.
pub async fn user_devices_route(ctx: &Ctx, _req: &Request, _origin: &ServerName, user_id: &str) -> Result<Response> {
    let id = UserId::parse(user_id).map_err(|_| err!(InvalidParam, "Invalid user ID"))?;
    if id.server_name() != ctx.config.server_name {
        return Err(err!(InvalidParam, "The user is not on this server"));
    }
    let (own, stream_id) = futures_util::future::join(keys::own_devices(&ctx.db, user_id), rstore::outbound(&ctx.db, user_id)).await;
    let own = own?;
    let devices: Vec<Value> = own
        .devices
        .into_iter()
        .map(|(device_id, name, keys)| {
            let mut d = Map::new();
            d.insert("device_id".into(), json!(device_id));
            if let Some(k) = keys {
                d.insert("keys".into(), k);
            }
            if let Some(n) = name {
                d.insert("device_display_name".into(), json!(n));
            }
            Value::Object(d)
        })
        .collect();
    let mut body = json!({ "user_id": user_id, "stream_id": stream_id?, "devices": devices });
    if let (Some(k), Some(o)) = (own.master_key, body.as_object_mut()) {
        o.insert("master_key".into(), k);
    }
    if let (Some(k), Some(o)) = (own.self_signing_key, body.as_object_mut()) {
        o.insert("self_signing_key".into(), k);
    }
    Ok(Response::ok(body))
}

/// # `POST /_matrix/federation/v1/user/keys/query`
/// Our users' device keys and master and self-signing keys, with the owners' signatures.
pub async fn user_keys_query_route(ctx: &Ctx, req: &Request, _origin: &ServerName) -> Result<Response> {
    let body = req.json_value()?;
    let wanted = body.get("device_keys").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "device_keys must be an object"))?;
    if wanted.len() > 1000 {
        return Err(err!(InvalidParam, "Too many users in one query"));
    }
    let users = our_users(ctx, wanted);
    let a = e2ee_service::local_keys(ctx, wanted, &users, None).await?;
    Ok(Response::ok(json!({ "device_keys": a.device_keys, "master_keys": a.master_keys, "self_signing_keys": a.self_signing_keys })))
}

/// # `POST /_matrix/federation/v1/user/keys/claim`
/// One key per requested device of our users, from the user's `UserKeys` object as a local
/// claim is: each one-time key goes out once, then the fallback key.
pub async fn user_keys_claim_route(ctx: &Ctx, req: &Request, _origin: &ServerName) -> Result<Response> {
    let body = req.json_value()?;
    let wanted = body.get("one_time_keys").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "one_time_keys must be an object"))?;
    let users = our_users(ctx, wanted);
    let keys = e2ee_service::claim_local(ctx, wanted, &users).await?;
    Ok(Response::ok(json!({ "one_time_keys": keys })))
}
