//! Send-to-device queues, kept per user in the `UserSync` Durable Object (each user has their
//! own stream position; a sync's `since` acknowledges, and so deletes, what it covered).

use serde_json::Value;
use worker::Env;

use crate::durable_objects::protocol::{ToDeviceMessage, UserSyncProto, UserSyncRequest as Req, UserSyncResponse as Resp};
use crate::error::{Error, Result};
use crate::service::objects::{call, unexpected};

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

async fn read(env: &Env, user: &str, device: &str, since: u64, keep: bool) -> Result<(Vec<Value>, u64)> {
    match call::<UserSyncProto>(env, user, &Req::TakeToDevice { device_id: device.to_owned(), since, keep }).await? {
        Resp::ToDevice { events, position } => Ok((events, position)),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}

/// A dehydrated device's to-device messages after `since`, without deleting any (MSC3814:
/// a rehydration that fails half-way can start again). Returns the events and the position
/// of the last one.
pub async fn peek_to_device(env: &Env, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64)> {
    read(env, user, device, since, true).await
}

/// The device's to-device messages after position `since` (which acknowledges, and so
/// deletes, everything up to it). Returns the events and the new position.
pub async fn take_to_device(env: &Env, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64)> {
    read(env, user, device, since, false).await
}

/// Records a `/sendToDevice` transaction; false if the device used it before.
pub async fn new_send_txn(env: &Env, user: &str, device: &str, txn: &str) -> Result<bool> {
    match call::<UserSyncProto>(env, user, &Req::SendTxn { device_id: device.to_owned(), txn_id: txn.to_owned() }).await? {
        Resp::Txn { new } => Ok(new),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}
