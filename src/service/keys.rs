//! Calls to a user's `UserKeys` Durable Object (one-time and fallback keys; see
//! `durable_objects/user_keys.rs`), and the device-list bookkeeping every key change needs.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use worker::{D1PreparedStatement, Env};

use crate::core::config::Config;
use crate::core::e2ee::add_signatures;
use crate::core::e2ee::UploadedKey;
use crate::durable_objects::protocol::{
    ClaimWire, DeviceKeyCounts, KeyWire, UserKeysProto, UserKeysRequest as Req, UserKeysResponse as Resp, UserSyncProto, UserSyncRequest,
};
use crate::error::Result;
use crate::service::federation::sender;
use crate::service::objects::{call, unexpected};
use crate::service::{to_device, wakeups};
use crate::store::db::Db;
use crate::store::{accounts, e2ee as kstore, remote_devices as rstore, servers, sync as sstore};

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
        Resp::Uploaded { counts, keys } => {
            copy_counts(env, user, keys.into_iter().collect()).await;
            Ok(Uploaded::Counts(counts))
        }
        Resp::Conflict { key_id } => Ok(Uploaded::Conflict(key_id)),
        _ => Err(unexpected::<UserKeysProto>()),
    }
}

/// The device's one-time key counts and its unused fallback key algorithms.
pub async fn counts(env: &Env, user: &str, device: &str) -> Result<(BTreeMap<String, u64>, Vec<String>)> {
    match call::<UserKeysProto>(env, user, &Req::Counts { device_id: device.to_owned() }).await? {
        Resp::Counts { counts, unused_fallback, .. } => Ok((counts, unused_fallback)),
        _ => Err(unexpected::<UserKeysProto>()),
    }
}

/// The device's counts with the `UserKeys` generation they were read at; also kept in the
/// user's `UserSync` object (`/sync` found no fresh copy there).
pub async fn counts_for_sync(env: &Env, user: &str, device: &str) -> Result<DeviceKeyCounts> {
    match call::<UserKeysProto>(env, user, &Req::Counts { device_id: device.to_owned() }).await? {
        Resp::Counts { counts, unused_fallback, gen } => {
            let c = DeviceKeyCounts { device_id: device.to_owned(), gen, one_time: counts, unused_fallback };
            copy_counts(env, user, vec![c.clone()]).await;
            Ok(c)
        }
        _ => Err(unexpected::<UserKeysProto>()),
    }
}

/// Gives the user's `UserSync` object the devices' new counts (it keeps the newest by
/// generation), so their `/sync` reads them there without asking `UserKeys` (#17). A failure
/// is logged, not returned: the keys are stored, and a stale copy is used for a few hours at
/// most (`KEY_COUNTS_TTL_MS`) or until the next change.
async fn copy_counts(env: &Env, user: &str, counts: Vec<DeviceKeyCounts>) {
    if counts.is_empty() {
        return;
    }
    if let Err(e) = call::<UserSyncProto>(env, user, &UserSyncRequest::SetKeyCounts { counts }).await {
        worker::console_error!("key counts copy for {user}: {e}");
    }
}

/// Claims one key per `(device, algorithm)`; returns `device → (key_id, key)`.
pub async fn claim(env: &Env, user: &str, claims: &[(String, String)]) -> Result<BTreeMap<String, (String, Value)>> {
    let claims = claims.iter().map(|(d, a)| ClaimWire { device_id: d.clone(), algorithm: a.clone() }).collect();
    match call::<UserKeysProto>(env, user, &Req::Claim { claims }).await? {
        Resp::Claimed { keys, counts } => {
            copy_counts(env, user, counts).await;
            Ok(keys.into_iter().map(|k| (k.device_id, (k.key_id, k.key))).collect())
        }
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
    device_list_changed(env, db, config, user).await?;
    announce_devices(env, db, config, user, devices).await
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

// ---- our users' device lists for other servers (spec: server-server-api, "Device Management") ----

/// Our user's devices and cross-signing keys as other servers see them: each device's
/// keys (`None` before it uploaded any) with the owner's signatures, its display name, and
/// the master and self-signing keys with the owner's signatures.
pub struct OwnDevices {
    pub devices: Vec<(String, Option<String>, Option<Value>)>,
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
}

pub async fn own_devices(db: &Db, user: &str) -> Result<OwnDevices> {
    let users = [user.to_owned()];
    let (devices, rows) = futures_util::future::join(kstore::devices_with_keys(db, user), kstore::query_keys(db, &users)).await;
    let rows = rows?;
    let own_sigs = |target: &str| -> Vec<(String, String, String)> {
        rows.signatures
            .iter()
            .filter(|(tu, tk, su, _, _)| tu == user && tk == target && su == user)
            .map(|(_, _, su, sk, s)| (su.clone(), sk.clone(), s.clone()))
            .collect()
    };
    let devices = devices?
        .into_iter()
        .map(|(d, name, mut keys)| {
            if let Some(k) = keys.as_mut() {
                add_signatures(k, &own_sigs(&d));
            }
            (d, name, keys)
        })
        .collect();
    let mut out = OwnDevices { devices, master_key: None, self_signing_key: None };
    for (_, usage, public, key_json) in &rows.cross_signing {
        let Ok(mut k) = serde_json::from_str::<Value>(key_json) else { continue };
        add_signatures(&mut k, &own_sigs(public));
        match usage.as_str() {
            "master" => out.master_key = Some(k),
            "self_signing" => out.self_signing_key = Some(k),
            _ => {}
        }
    }
    Ok(out)
}

/// The other servers that share a room with our user (where news of their devices goes).
async fn remote_servers(db: &Db, config: &Config, user: &str) -> Result<Vec<String>> {
    let ours = config.server_name.as_str();
    Ok(servers::servers_sharing_rooms(db, user).await?.into_iter().filter(|s| s != ours).collect())
}

/// Tells the servers sharing a room with our user that some of their devices changed: one
/// `m.device_list_update` per device (its keys, or `deleted` when it is gone), each with the
/// user's next `stream_id` and the previous one as `prev_id`. Nothing (and no `stream_id`
/// spent) when no other server shares a room: a server that starts sharing one fetches the
/// whole list (`/user/devices`) with the current `stream_id`.
pub async fn announce_devices(env: &Env, db: &Db, config: &Config, user: &str, devices: &[String]) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let destinations = remote_servers(db, config, user).await?;
    if destinations.is_empty() {
        return Ok(());
    }
    let own = own_devices(db, user).await?;
    for d in devices {
        let (stream_id, prev) = rstore::next_outbound(db, user).await?;
        let mut content = Map::new();
        content.insert("user_id".into(), json!(user));
        content.insert("device_id".into(), json!(d));
        content.insert("stream_id".into(), json!(stream_id));
        content.insert("prev_id".into(), json!(prev.into_iter().collect::<Vec<_>>()));
        match own.devices.iter().find(|(id, _, _)| id == d) {
            Some((_, name, keys)) => {
                content.insert("deleted".into(), json!(false));
                if let Some(k) = keys {
                    content.insert("keys".into(), k.clone());
                }
                if let Some(n) = name {
                    content.insert("device_display_name".into(), json!(n));
                }
            }
            None => {
                content.insert("deleted".into(), json!(true));
            }
        }
        let edu = json!({ "edu_type": "m.device_list_update", "content": content });
        sender::send_edu(env, config, destinations.iter().map(String::as_str), &edu).await;
    }
    Ok(())
}

/// Tells the servers sharing a room with our user that their master or self-signing key
/// changed (`m.signing_key_update`).
pub async fn announce_signing_keys(env: &Env, db: &Db, config: &Config, user: &str) -> Result<()> {
    let destinations = remote_servers(db, config, user).await?;
    if destinations.is_empty() {
        return Ok(());
    }
    let own = own_devices(db, user).await?;
    let mut content = Map::new();
    content.insert("user_id".into(), json!(user));
    if let Some(k) = own.master_key {
        content.insert("master_key".into(), k);
    }
    if let Some(k) = own.self_signing_key {
        content.insert("self_signing_key".into(), k);
    }
    let edu = json!({ "edu_type": "m.signing_key_update", "content": content });
    sender::send_edu(env, config, destinations.iter().map(String::as_str), &edu).await;
    Ok(())
}
