//! Calls to a user's `UserKeys` Durable Object (one-time and fallback keys; see
//! `durable_objects/user_keys.rs`), and the device-list bookkeeping every key change needs.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use worker::{D1PreparedStatement, Env};

use crate::core::config::Config;
use crate::core::e2ee::UploadedKey;
use crate::error::{Error, Result};
use crate::service::notify;
use crate::store::db::Db;
use crate::store::{accounts, e2ee as kstore, sync as sstore};

fn fail(e: worker::Error) -> Error {
    Error::internal(format!("UserKeys object: {e}"))
}

async fn post(env: &Env, user: &str, path: &str, body: &Value) -> Result<Value> {
    let ns = env.durable_object("USER_KEYS").map_err(fail)?;
    let stub = ns.id_from_name(user).map_err(fail)?.get_stub().map_err(fail)?;
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post).with_body(Some(wasm_bindgen::JsValue::from_str(&body.to_string())));
    let req = worker::Request::new_with_init(&format!("https://user-keys{path}"), &init).map_err(fail)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(fail)?;
    if resp.status_code() != 200 {
        return Err(Error::internal(format!("UserKeys {path}: HTTP {}", resp.status_code())));
    }
    resp.json().await.map_err(fail)
}

fn keys_json(keys: &[UploadedKey]) -> Value {
    Value::Array(keys.iter().map(|k| json!({ "algorithm": k.algorithm, "key_id": k.key_id, "key": k.key })).collect())
}

/// Outcome of storing one-time/fallback keys.
pub enum Uploaded {
    Counts(BTreeMap<String, u64>),
    /// A one-time key ID that already holds another key (nothing was stored).
    Conflict(String),
}

fn counts_of(v: &Value) -> BTreeMap<String, u64> {
    v.as_object().map(|m| m.iter().map(|(k, n)| (k.clone(), n.as_f64().unwrap_or(0.0) as u64)).collect()).unwrap_or_default()
}

pub async fn upload(env: &Env, user: &str, device: &str, otks: &[UploadedKey], fallbacks: &[UploadedKey]) -> Result<Uploaded> {
    let r =
        post(env, user, "/upload", &json!({ "device_id": device, "one_time_keys": keys_json(otks), "fallback_keys": keys_json(fallbacks) })).await?;
    Ok(match r["conflict"].as_str() {
        Some(k) => Uploaded::Conflict(k.to_owned()),
        None => Uploaded::Counts(counts_of(&r["counts"])),
    })
}

/// The device's one-time key counts and its unused fallback key algorithms.
pub async fn counts(env: &Env, user: &str, device: &str) -> Result<(BTreeMap<String, u64>, Vec<String>)> {
    let r = post(env, user, "/counts", &json!({ "device_id": device })).await?;
    let unused = r["unused_fallback"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    Ok((counts_of(&r["counts"]), unused))
}

/// Claims one key per `(device, algorithm)`; returns `device → (key_id, key)`.
pub async fn claim(env: &Env, user: &str, claims: &[(String, String)]) -> Result<BTreeMap<String, (String, Value)>> {
    let body = json!({ "claims": claims.iter().map(|(d, a)| json!({ "device_id": d, "algorithm": a })).collect::<Vec<_>>() });
    let r = post(env, user, "/claim", &body).await?;
    let mut out = BTreeMap::new();
    for k in r["keys"].as_array().into_iter().flatten() {
        if let (Some(d), Some(id)) = (k["device_id"].as_str(), k["key_id"].as_str()) {
            out.insert(d.to_owned(), (id.to_owned(), k["key"].clone()));
        }
    }
    Ok(out)
}

async fn drop_device_keys(env: &Env, user: &str, devices: &[String]) -> Result<()> {
    post(env, user, "/delete", &json!({ "device_ids": devices })).await?;
    Ok(())
}

/// After the user's devices or cross-signing keys changed (and the change is committed):
/// move the device-list stream and wake everyone who shares a room with them, so their
/// clients re-query the keys.
pub async fn device_list_changed(env: &Env, db: &Db, config: &Config, user: &str) -> Result<()> {
    kstore::mark_device_list_change(db, user).await?;
    let users = sstore::users_sharing_rooms(db, user).await?;
    notify::notify_users(env, config, users).await;
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
    notify::forget_devices(env, user, devices).await?;
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
