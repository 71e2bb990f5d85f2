//! Send-to-device messaging (spec: client-server-api, "Send-to-Device messaging";
//! OpenAPI `to_device.yaml`). Messages queue in each recipient's `UserSync` Durable Object,
//! per device, with the user's own to-device stream position; `/sync` delivers them and a
//! later sync's `since` acknowledges (deletes) them.

use serde_json::{json, Value};

use crate::api::auth::authenticate;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::notify;
use crate::store::accounts;

/// # `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
/// `*` as the device ID means all of the user's devices. Local users only (federation
/// delivery arrives with federation).
pub async fn send_to_device_route(ctx: &Ctx, req: &Request, kind: &str, txn_id: &str) -> Result<Response> {
    let me = authenticate(ctx, req).await?;
    let body = req.json_value()?;
    let messages = body.get("messages").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "messages must be an object"))?;
    if !notify::new_send_txn(&ctx.env, me.user_id.as_str(), &me.device_id, txn_id).await? {
        return Ok(Response::ok(json!({})));
    }
    for (user, per_device) in messages {
        let Ok(uid) = ruma::UserId::parse(user.as_str()) else { continue };
        if uid.server_name() != ctx.config.server_name {
            continue;
        }
        let Some(per_device) = per_device.as_object() else {
            return Err(err!(BadJson, "messages must map devices to contents"));
        };
        let mut out = Vec::new();
        for (device, content) in per_device {
            let ev = json!({ "type": kind, "sender": me.user_id, "content": content });
            if device == "*" {
                for d in accounts::list_devices(&ctx.db, user).await? {
                    out.push(json!({ "device_id": d.device_id, "message": ev }));
                }
            } else {
                out.push(json!({ "device_id": device, "message": ev }));
            }
        }
        if !out.is_empty() {
            notify::queue_to_device(&ctx.env, user, out).await?;
        }
    }
    Ok(Response::ok(json!({})))
}
