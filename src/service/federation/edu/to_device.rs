//! `m.direct_to_device` from other servers (spec: server-server-api, "Send-to-device
//! messaging"; schema `definitions/event-schemas/m.direct_to_device.yaml`): messages from a
//! user of the origin for our users' devices (`*` = all of a user's devices).
//!
//! The `message_id` is the sender's idempotence key: it is claimed once per origin
//! (`store::edus`), so the same EDU arriving again in another transaction queues nothing
//! (identical transaction IDs are already answered from the `/send` cache). Recipients who
//! are not ours, or unknown, are dropped.

use ruma::{ServerName, UserId};
use serde_json::Value;

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::service::to_device;
use crate::store::{accounts, edus};

/// Longest `message_id` kept (the spec says 32 codepoints; some senders are generous).
const MAX_MESSAGE_ID_BYTES: usize = 256;

/// Applies one `m.direct_to_device` EDU from `origin`.
pub async fn receive(ctx: &Ctx, origin: &ServerName, content: &Value) -> Result<()> {
    let sender = content.get("sender").and_then(Value::as_str).and_then(|s| UserId::parse(s).ok()).ok_or_else(|| err!(BadJson, "no valid sender"))?;
    if sender.server_name() != origin {
        return Err(err!(Forbidden, "sender {sender} is not a user of {origin}"));
    }
    let kind = content.get("type").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| err!(BadJson, "no type"))?;
    let message_id = content
        .get("message_id")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty() && m.len() <= MAX_MESSAGE_ID_BYTES)
        .ok_or_else(|| err!(BadJson, "no valid message_id"))?;
    let messages = content.get("messages").and_then(Value::as_object).ok_or_else(|| err!(BadJson, "no messages"))?;
    if !edus::claim_to_device_message(&ctx.db, origin.as_str(), message_id).await? {
        return Ok(());
    }
    let result = deliver(ctx, sender.as_str(), kind, messages).await;
    if result.is_err() {
        // Nothing or only part was queued: let a redelivery try again rather than lose it.
        edus::unclaim_to_device_message(&ctx.db, origin.as_str(), message_id).await?;
    }
    result
}

async fn deliver(ctx: &Ctx, sender: &str, kind: &str, messages: &serde_json::Map<String, Value>) -> Result<()> {
    for (user, per_device) in messages {
        let Some(per_device) = per_device.as_object() else { continue };
        if !UserId::parse(user.as_str()).is_ok_and(|u| u.server_name() == ctx.config.server_name) {
            continue;
        }
        if accounts::get_user(&ctx.db, user).await?.is_none() {
            continue;
        }
        let per_device: serde_json::Map<String, Value> =
            per_device.iter().filter(|(_, c)| c.is_object()).map(|(d, c)| (d.clone(), c.clone())).collect();
        to_device::deliver_local(ctx, sender, kind, user, &per_device).await?;
    }
    Ok(())
}
