//! Calls to a user's `UserKeys` Durable Object (one-time and fallback keys; see
//! `durable_objects/user_keys.rs`), and the device-list bookkeeping every key change needs.

use std::collections::BTreeMap;

use serde_json::Value;
use worker::{D1PreparedStatement, Env};

use crate::core::config::Config;
use crate::core::e2ee::UploadedKey;
use crate::durable_objects::protocol::{ClaimWire, KeyWire, UserKeysProto, UserKeysRequest as Req, UserKeysResponse as Resp};
use crate::error::Result;
use crate::service::objects::{call, unexpected};
use crate::service::{to_device, wakeups};
use crate::store::db::Db;
use crate::store::{accounts, e2ee as kstore, sync as sstore};

fn wire(keys: &[UploadedKey]) -> Vec<KeyWire> {
    keys.iter().map(|k| KeyWire { algorithm: k.algorithm.clone(), key_id: k.key_id.clone(), key: k.key.clone() }).collect()
}

/// Outcome of storing one-time/fallback keys.
pub enum Uploaded {
    Counts(BTreeMap<String, u64>),
    /// A one-time key ID that already holds another key (nothing was stored).
    Conflict(String),
}

pub async fn upload(env: &Env, user: &str, device: &str, otks: &[UploadedKey], fallbacks: &[UploadedKey]) -> Result<Uploaded> {
    let request = Req::Upload { device_id: device.to_owned(), one_time_keys: wire(otks), fallback_keys: wire(fallbacks) };
    match call::<UserKeysProto>(env, user, &request).await? {
        Resp::Uploaded { counts } => Ok(Uploaded::Counts(counts)),
        Resp::Conflict { key_id } => Ok(Uploaded::Conflict(key_id)),
        _ => Err(unexpected::<UserKeysProto>()),
    }
}

/// The device's one-time key counts and its unused fallback key algorithms.
pub async fn counts(env: &Env, user: &str, device: &str) -> Result<(BTreeMap<String, u64>, Vec<String>)> {
    match call::<UserKeysProto>(env, user, &Req::Counts { device_id: device.to_owned() }).await? {
        Resp::Counts { counts, unused_fallback } => Ok((counts, unused_fallback)),
        _ => Err(unexpected::<UserKeysProto>()),
    }
}

/// Claims one key per `(device, algorithm)`; returns `device → (key_id, key)`.
pub async fn claim(env: &Env, user: &str, claims: &[(String, String)]) -> Result<BTreeMap<String, (String, Value)>> {
    let claims = claims.iter().map(|(d, a)| ClaimWire { device_id: d.clone(), algorithm: a.clone() }).collect();
    match call::<UserKeysProto>(env, user, &Req::Claim { claims }).await? {
        Resp::Claimed { keys } => Ok(keys.into_iter().map(|k| (k.device_id, (k.key_id, k.key))).collect()),
        _ => Err(unexpected::<UserKeysProto>()),
    }
}

async fn drop_device_keys(env: &Env, user: &str, devices: &[String]) -> Result<()> {
    call::<UserKeysProto>(env, user, &Req::Delete { device_ids: devices.to_vec() }).await?;
    Ok(())
}

/// After the user's devices or cross-signing keys changed (and the change is committed):
/// move the device-list stream and wake everyone who shares a room with them, so their
/// clients re-query the keys.
pub async fn device_list_changed(env: &Env, db: &Db, config: &Config, user: &str) -> Result<()> {
    kstore::mark_device_list_change(db, user).await?;
    let users = sstore::users_sharing_rooms(db, user).await?;
    wakeups::notify_users(env, config, users).await;
    Ok(())
}

/// Everything to do when devices are deleted (after `first`, D1 statements to run in the same
/// batch): their keys (D1 and the `UserKeys` object) and queued to-device messages go, and
/// the user's device list changes.
async fn forget(env: &Env, db: &Db, config: &Config, user: &str, devices: &[String], mut first: Vec<D1PreparedStatement>) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    first.extend(kstore::delete_device_keys_stmts(db, user, devices)?);
    db.batch(first).await?;
    drop_device_keys(env, user, devices).await?;
    to_device::forget_devices(env, user, devices).await?;
    device_list_changed(env, db, config, user).await
}

/// For devices already deleted (deactivation): their keys and queued messages go.
pub async fn forget_devices(env: &Env, db: &Db, config: &Config, user: &str, devices: &[String]) -> Result<()> {
    forget(env, db, config, user, devices, vec![]).await
}

/// Deletes devices: what authenticates as them (tokens, OAuth sessions) and their keys in one
/// D1 batch, then their one-time keys and queued messages, and tells the users who share a room.
pub async fn remove_devices(env: &Env, db: &Db, config: &Config, user: &str, devices: &[String]) -> Result<()> {
    forget(env, db, config, user, devices, accounts::delete_devices_stmts(db, user, devices)?).await
}
