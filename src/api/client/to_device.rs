//! Send-to-device messaging (spec: client-server-api, "Send-to-Device messaging";
//! OpenAPI `to_device.yaml`). Messages queue in each recipient's `UserSync` Durable Object,
//! per device, with the user's own to-device stream position; `/sync` delivers them and a
//! later sync's `since` acknowledges (deletes) them.

use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::core::txn::txn_key;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::to_device;

/// The largest content of one message (the spec's event size limit, as Synapse applies to
/// to-device messages sent over federation).
const MAX_MESSAGE_BYTES: usize = 65_536;

/// # `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
/// `*` as the device ID means all of the user's devices; messages for local devices that
/// don't exist are dropped (they would never be fetched); other servers' users get theirs
/// over federation (`service::to_device::send`). The whole request is checked before
/// anything is queued; an invalid user ID in `messages` is `400 M_INVALID_PARAM`.
pub async fn send_to_device_route(ctx: &Ctx, req: &Request, me: &Authed, kind: &str, txn_id: &str) -> Result<Response> {
    let body = req.json_value()?;
    let messages = body.get("messages").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "messages must be an object"))?;
    for (user, per_device) in messages {
        let per_device = per_device.as_object().ok_or_else(|| err!(BadJson, "messages must map devices to contents"))?;
        for content in per_device.values() {
            if !content.is_object() {
                return Err(err!(BadJson, "Message contents must be objects"));
            }
            if content.to_string().len() > MAX_MESSAGE_BYTES {
                return Err(err!(TooLarge, "A to-device message is larger than {MAX_MESSAGE_BYTES} bytes"));
            }
        }
        crate::core::ids::parse_client_user_id(user)?;
    }
    // Scoped to the endpoint and its event type, as room sends are (`timeline::txn_key`).
    let key = txn_key(&["sendToDevice", kind], txn_id);
    if !to_device::new_send_txn(&ctx.env, me.user_id.as_str(), &me.device_id, &key).await? {
        return Ok(Response::ok(json!({})));
    }
    to_device::send(ctx, &me.user_id, kind, messages).await?;
    Ok(Response::ok(json!({})))
}
