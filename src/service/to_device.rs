//! Send-to-device queues, kept per user in the `UserSync` Durable Object (each user has their
//! own stream position; a sync's `since` acknowledges, and so deletes, what it covered).
//! Messages for other servers' users leave as one `m.direct_to_device` EDU per server
//! through its `Destination` queue (spec: server-server-api, "Send-to-device messaging").

use std::collections::BTreeMap;

use futures_util::future::join_all;
use ruma::UserId;
use serde_json::{json, Map, Value};
use worker::Env;

use crate::core::crypto::random_alpha;
use crate::ctx::Ctx;
use crate::durable_objects::protocol::{DeviceKeyCounts, ToDeviceMessage, UserSyncProto, UserSyncRequest as Req, UserSyncResponse as Resp};
use crate::error::{Error, Result};
use crate::service::federation::sender;
use crate::service::objects::{call, unexpected};
use crate::store::accounts;

/// Sends one `/sendToDevice` request's `messages` (`{user: {device or "*": content}}`, already
/// checked by the handler) of type `kind` from `sender_id`: local users' devices get them
/// queued now; other servers' users are grouped by server, one `m.direct_to_device` EDU per
/// server with a fresh `message_id` (the receiver's idempotence key). A remote queue that
/// cannot be reached is logged, not failed: the transaction ID is already spent.
pub async fn send(ctx: &Ctx, sender_id: &UserId, kind: &str, messages: &Map<String, Value>) -> Result<()> {
    let mut remote: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (user, per_device) in messages {
        let Some(per_device) = per_device.as_object() else { continue };
        let Ok(uid) = UserId::parse(user.as_str()) else { continue };
        if uid.server_name() == ctx.config.server_name {
            deliver_local(ctx, sender_id.as_str(), kind, user, per_device).await?;
        } else {
            remote.entry(uid.server_name().to_string()).or_default().insert(user.clone(), Value::Object(per_device.clone()));
        }
    }
    let sends = remote.into_iter().map(|(server, messages)| async move {
        let edu = json!({
            "edu_type": "m.direct_to_device",
            "content": { "sender": sender_id, "type": kind, "message_id": random_alpha(24), "messages": messages },
        });
        if let Err(e) = sender::enqueue_edus(&ctx.env, &server, vec![edu]).await {
            worker::console_error!("to-device for {server}: {e}");
        }
    });
    join_all(sends).await;
    Ok(())
}

/// Queues `sender_id`'s messages of type `kind` for the local `user`'s devices
/// (`{device or "*": content}`; `*` is all of them). Devices that don't exist are skipped:
/// nobody would ever fetch their messages. Used by `/sendToDevice` and by
/// `m.direct_to_device` from other servers.
pub async fn deliver_local(ctx: &Ctx, sender_id: &str, kind: &str, user: &str, per_device: &Map<String, Value>) -> Result<()> {
    let devices: Vec<String> = accounts::list_devices(&ctx.db, user).await?.into_iter().map(|d| d.device_id).collect();
    let mut out = Vec::new();
    for (device, content) in per_device {
        let ev = json!({ "type": kind, "sender": sender_id, "content": content });
        if device == "*" {
            for d in &devices {
                out.push(json!({ "device_id": d, "message": ev }));
            }
        } else if devices.contains(device) {
            out.push(json!({ "device_id": device, "message": ev }));
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    queue_to_device(&ctx.env, user, out).await
}

/// Queues to-device messages for a user's devices (`[{"device_id", "message"}]`) in their
/// `UserSync` object, which wakes their syncs.
pub async fn queue_to_device(env: &Env, user: &str, messages: Vec<Value>) -> Result<()> {
    let messages = messages
        .into_iter()
        .map(serde_json::from_value::<ToDeviceMessage>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(format!("to-device message: {e}")))?;
    call::<UserSyncProto>(env, user, &Req::QueueToDevice { messages }).await?;
    Ok(())
}

/// Drops the queued to-device messages of deleted devices.
pub async fn forget_devices(env: &Env, user: &str, devices: &[String]) -> Result<()> {
    call::<UserSyncProto>(env, user, &Req::ForgetDevices { device_ids: devices.to_vec() }).await?;
    Ok(())
}

async fn read(env: &Env, user: &str, device: &str, since: u64, keep: bool, with_keys: bool) -> Result<(Vec<Value>, u64, Option<DeviceKeyCounts>)> {
    match call::<UserSyncProto>(env, user, &Req::TakeToDevice { device_id: device.to_owned(), since, keep, with_keys }).await? {
        Resp::ToDevice { events, position, keys } => Ok((events, position, keys)),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}

/// A dehydrated device's to-device messages after `since`, without deleting any (MSC3814:
/// a rehydration that fails half-way can start again). Returns the events and the position
/// of the last one.
pub async fn peek_to_device(env: &Env, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64)> {
    read(env, user, device, since, true, false).await.map(|(e, p, _)| (e, p))
}

/// The device's to-device messages after position `since` (which acknowledges, and so
/// deletes, everything up to it). Returns the events and the new position.
pub async fn take_to_device(env: &Env, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64)> {
    read(env, user, device, since, false, false).await.map(|(e, p, _)| (e, p))
}

/// [`take_to_device`], with the device's key counts copy if its `UserSync` object has a
/// fresh one (`/sync`: one object request for both).
pub async fn take_with_keys(env: &Env, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64, Option<DeviceKeyCounts>)> {
    read(env, user, device, since, false, true).await
}

/// Records a `/sendToDevice` transaction; false if the device used it before.
pub async fn new_send_txn(env: &Env, user: &str, device: &str, txn: &str) -> Result<bool> {
    match call::<UserSyncProto>(env, user, &Req::SendTxn { device_id: device.to_owned(), txn_id: txn.to_owned() }).await? {
        Resp::Txn { new } => Ok(new),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}
