//! D1 storage for end-to-end encryption: device keys, cross-signing keys, uploaded
//! signatures, the device-list stream and dehydrated devices (`migrations/0006_e2ee.sql`).
//! One-time and fallback keys are in the `UserKeys` Durable Object, not here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;
use worker::D1PreparedStatement;

use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// D1 allows 100 bound parameters per statement.
const CHUNK: usize = 90;

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// A stored signature: `(target_user, target_key, signer_user, signer_key, signature)`.
pub type Sig = (String, String, String, String, String);

/// What `/keys/query` needs about a set of users, read in one batch per chunk of users.
#[derive(Default)]
pub struct KeyRows {
    /// `(user_id, device_id, key_json, display_name)`; only devices that exist.
    pub devices: Vec<(String, String, String, Option<String>)>,
    /// `(user_id, usage, public_key, key_json)`.
    pub cross_signing: Vec<(String, String, String, String)>,
    pub signatures: Vec<Sig>,
}

pub async fn query_keys(db: &Db, users: &[String]) -> Result<KeyRows> {
    let mut out = KeyRows::default();
    for chunk in users.chunks(CHUNK) {
        let ph = placeholders(chunk.len());
        let p: Vec<Value> = chunk.iter().map(|u| Value::String(u.clone())).collect();
        let rows = db
            .batch_rows(vec![
                db.stmt(
                    &format!(
                        "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM device_keys k
                         JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id WHERE k.user_id IN ({ph})"
                    ),
                    p.clone(),
                )?,
                db.stmt(&format!("SELECT user_id, usage, public_key, key_json FROM cross_signing_keys WHERE user_id IN ({ph})"), p.clone())?,
                db.stmt(
                    &format!("SELECT target_user, target_key, signer_user, signer_key, signature FROM key_signatures WHERE target_user IN ({ph})"),
                    p,
                )?,
            ])
            .await?;
        for r in rows.first().into_iter().flatten() {
            out.devices.push((s(r, "user_id"), s(r, "device_id"), s(r, "key_json"), r["display_name"].as_str().map(str::to_owned)));
        }
        for r in rows.get(1).into_iter().flatten() {
            out.cross_signing.push((s(r, "user_id"), s(r, "usage"), s(r, "public_key"), s(r, "key_json")));
        }
        for r in rows.get(2).into_iter().flatten() {
            out.signatures.push((s(r, "target_user"), s(r, "target_key"), s(r, "signer_user"), s(r, "signer_key"), s(r, "signature")));
        }
    }
    Ok(out)
}

pub async fn get_device_keys(db: &Db, user: &str, device: &str) -> Result<Option<Value>> {
    #[derive(Deserialize)]
    struct R {
        key_json: String,
    }
    let r: Option<R> = db.first("SELECT key_json FROM device_keys WHERE user_id = ? AND device_id = ?", params![user, device]).await?;
    Ok(r.and_then(|r| serde_json::from_str(&r.key_json).ok()))
}

/// Statements storing a device's keys. Signatures others made on the previous keys no
/// longer apply.
pub fn put_device_keys_stmts(db: &Db, user: &str, device: &str, keys: &Value) -> Result<Vec<D1PreparedStatement>> {
    Ok(vec![
        db.stmt("DELETE FROM key_signatures WHERE target_user = ? AND target_key = ?", params![user, device])?,
        db.stmt(
            "INSERT INTO device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)
             ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
            params![user, device, keys.to_string()],
        )?,
    ])
}

pub async fn put_device_keys(db: &Db, user: &str, device: &str, keys: &Value) -> Result<()> {
    db.batch(put_device_keys_stmts(db, user, device, keys)?).await?;
    Ok(())
}

/// Statements deleting what D1 holds about deleted devices: their keys, the signatures on
/// them, and the dehydrated-device record if one of them was it.
pub fn delete_device_keys_stmts(db: &Db, user: &str, devices: &[String]) -> Result<Vec<D1PreparedStatement>> {
    let mut stmts = Vec::new();
    for d in devices {
        stmts.push(db.stmt("DELETE FROM device_keys WHERE user_id = ? AND device_id = ?", params![user, d])?);
        stmts.push(db.stmt("DELETE FROM key_signatures WHERE target_user = ? AND target_key = ?", params![user, d])?);
        stmts.push(db.stmt("DELETE FROM dehydrated_devices WHERE user_id = ? AND device_id = ?", params![user, d])?);
    }
    Ok(stmts)
}

/// The user's cross-signing keys: usage → (public key, key JSON).
pub async fn cross_signing_keys(db: &Db, user: &str) -> Result<BTreeMap<String, (String, Value)>> {
    #[derive(Deserialize)]
    struct R {
        usage: String,
        public_key: String,
        key_json: String,
    }
    let rows: Vec<R> = db.all("SELECT usage, public_key, key_json FROM cross_signing_keys WHERE user_id = ?", params![user]).await?;
    Ok(rows.into_iter().filter_map(|r| Some((r.usage, (r.public_key, serde_json::from_str(&r.key_json).ok()?)))).collect())
}

/// Replaces some of the user's cross-signing keys (`(usage, public_key, json)`) in one batch.
/// A new master key voids every signature on the user's old keys made by their old keys.
pub async fn put_cross_signing_keys(db: &Db, user: &str, keys: &[(String, String, Value)], old_public: &[String]) -> Result<()> {
    let mut stmts = Vec::new();
    for old in old_public {
        stmts.push(db.stmt("DELETE FROM key_signatures WHERE target_user = ? AND target_key = ?", params![user, old])?);
        stmts.push(db.stmt("DELETE FROM key_signatures WHERE signer_user = ? AND signer_key = ?", params![user, format!("ed25519:{old}")])?);
    }
    for (usage, public, json) in keys {
        stmts.push(db.stmt(
            "INSERT INTO cross_signing_keys (user_id, usage, public_key, key_json) VALUES (?, ?, ?, ?)
             ON CONFLICT (user_id, usage) DO UPDATE SET public_key = excluded.public_key, key_json = excluded.key_json",
            params![user, usage, public, json.to_string()],
        )?);
    }
    db.batch(stmts).await?;
    Ok(())
}

pub async fn put_signatures(db: &Db, sigs: &[Sig]) -> Result<()> {
    if sigs.is_empty() {
        return Ok(());
    }
    let mut stmts = Vec::new();
    for (tu, tk, su, sk, sig) in sigs {
        stmts.push(db.stmt(
            "INSERT INTO key_signatures (target_user, target_key, signer_user, signer_key, signature) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (target_user, target_key, signer_user, signer_key) DO UPDATE SET signature = excluded.signature",
            params![tu, tk, su, sk, sig],
        )?);
    }
    db.batch(stmts).await?;
    Ok(())
}

/// Moves the device-list stream for `user` (the position is allocated inside the write).
pub async fn mark_device_list_change(db: &Db, user: &str) -> Result<()> {
    db.run(
        "INSERT INTO device_list_changes (user_id, stream) VALUES (?1, (SELECT COALESCE(MAX(stream), 0) + 1 FROM device_list_changes))
         ON CONFLICT (user_id) DO UPDATE SET stream = excluded.stream",
        params![user],
    )
    .await?;
    Ok(())
}

/// The inputs of [`crate::core::e2ee::device_list_changes`] for the ranges
/// `(dl_from, dl_to]` of the device-list stream and `(ev_from, ev_to]` of the event stream.
pub struct DeviceListInputs {
    pub key_changes: Vec<String>,
    pub membership_changes: Vec<(String, String)>,
    pub room_members: Vec<(String, String)>,
    pub sharing: BTreeSet<String>,
}

pub async fn device_list_inputs(db: &Db, me: &str, dl_from: u64, dl_to: u64, ev_from: u64, ev_to: u64) -> Result<DeviceListInputs> {
    const SHARING: &str = "SELECT m2.user_id FROM memberships m1 JOIN memberships m2 ON m2.room_id = m1.room_id
         WHERE m1.user_id = ?1 AND m1.membership = 'join' AND m2.membership IN ('join', 'invite')";
    let rows = db
        .batch_rows(vec![
            db.stmt(
                &format!("SELECT user_id FROM device_list_changes WHERE stream > ?2 AND stream <= ?3 AND (user_id = ?1 OR user_id IN ({SHARING}))"),
                params![me, dl_from, dl_to],
            )?,
            db.stmt(
                "SELECT DISTINCT room_id, state_key AS user_id FROM events
                 WHERE type = 'm.room.member' AND stream > ?2 AND stream <= ?3 AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ?1)",
                params![me, ev_from, ev_to],
            )?,
            db.stmt(
                "SELECT room_id, user_id FROM memberships WHERE membership IN ('join', 'invite') AND room_id IN
                   (SELECT room_id FROM events WHERE type = 'm.room.member' AND state_key = ?1 AND stream > ?2 AND stream <= ?3)",
                params![me, ev_from, ev_to],
            )?,
            db.stmt(&format!("SELECT DISTINCT user_id FROM ({SHARING})"), params![me])?,
        ])
        .await?;
    let col = |i: usize, k: &str| rows.get(i).into_iter().flatten().map(|r| s(r, k)).collect::<Vec<_>>();
    let pairs = |i: usize| rows.get(i).into_iter().flatten().map(|r| (s(r, "room_id"), s(r, "user_id"))).collect::<Vec<_>>();
    Ok(DeviceListInputs {
        key_changes: col(0, "user_id"),
        membership_changes: pairs(1),
        room_members: pairs(2),
        sharing: col(3, "user_id").into_iter().collect(),
    })
}

// ---- dehydrated devices (MSC3814) ----

pub async fn dehydrated_device(db: &Db, user: &str) -> Result<Option<(String, Value)>> {
    #[derive(Deserialize)]
    struct R {
        device_id: String,
        device_data: String,
    }
    let r: Option<R> = db.first("SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = ?", params![user]).await?;
    Ok(r.map(|r| (r.device_id, serde_json::from_str(&r.device_data).unwrap_or(Value::Null))))
}

pub fn put_dehydrated_device_stmt(db: &Db, user: &str, device: &str, data: &Value) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES (?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET device_id = excluded.device_id, device_data = excluded.device_data",
        params![user, device, data.to_string()],
    )
}

/// Deactivation: every key of the user goes.
pub async fn delete_all_keys(db: &Db, user: &str) -> Result<()> {
    db.batch(vec![
        db.stmt("DELETE FROM device_keys WHERE user_id = ?", params![user])?,
        db.stmt("DELETE FROM cross_signing_keys WHERE user_id = ?", params![user])?,
        db.stmt("DELETE FROM key_signatures WHERE target_user = ?", params![user])?,
        db.stmt("DELETE FROM dehydrated_devices WHERE user_id = ?", params![user])?,
    ])
    .await?;
    Ok(())
}

/// All of a user's devices (dehydrated included), with their display names and device keys
/// (`None` before the device uploaded any): `(device_id, display_name, key_json)`.
pub async fn devices_with_keys(db: &Db, user: &str) -> Result<Vec<(String, Option<String>, Option<Value>)>> {
    #[derive(Deserialize)]
    struct R {
        device_id: String,
        display_name: Option<String>,
        key_json: Option<String>,
    }
    let rows: Vec<R> = db
        .all(
            "SELECT d.device_id, d.display_name, k.key_json FROM devices d
             LEFT JOIN device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id WHERE d.user_id = ?",
            params![user],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.device_id, r.display_name, r.key_json.and_then(|k| serde_json::from_str(&k).ok()))).collect())
}
