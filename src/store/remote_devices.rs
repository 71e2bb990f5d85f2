//! D1 storage for end-to-end encryption across servers (`migrations/0013_remote_devices.sql`):
//! the device lists of remote users we track, and our users' outbound device-list stream.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// D1 allows 100 bound parameters per statement.
const CHUNK: usize = 90;

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn json_text(v: &Option<Value>) -> Value {
    match v {
        Some(v) => Value::String(v.to_string()),
        None => Value::Null,
    }
}

fn parse(v: &Value, k: &str) -> Option<Value> {
    v.get(k).and_then(Value::as_str).and_then(|s| serde_json::from_str(s).ok())
}

/// One remote device: its signed keys (if uploaded) and display name (if shared).
#[derive(Clone, Debug, Default)]
pub struct RemoteDevice {
    pub device_id: String,
    pub keys: Option<Value>,
    pub display_name: Option<String>,
}

/// A remote user's cached device list.
#[derive(Clone, Debug, Default)]
pub struct RemoteList {
    pub stream_id: i64,
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
    pub devices: Vec<RemoteDevice>,
}

/// Of `users` (all of another server), those who share a room with one of our users
/// (`ours`: our server name): the users whose device lists we track.
pub async fn tracked(db: &Db, ours: &str, users: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for chunk in users.chunks(CHUNK) {
        let mut p: Vec<Value> = chunk.iter().map(|u| Value::String(u.clone())).collect();
        p.push(Value::String(ours.to_owned()));
        #[derive(Deserialize)]
        struct R {
            user_id: String,
        }
        let rows: Vec<R> = db
            .all(
                &format!(
                    "SELECT DISTINCT m1.user_id FROM memberships m1 JOIN memberships m2 ON m2.room_id = m1.room_id
                     WHERE m1.user_id IN ({}) AND m1.membership = 'join' AND m2.membership = 'join'
                       AND substr(m2.user_id, instr(m2.user_id, ':') + 1) = ?",
                    placeholders(chunk.len())
                ),
                p,
            )
            .await?;
        out.extend(rows.into_iter().map(|r| r.user_id));
    }
    Ok(out)
}

/// Whether `user` (remote) shares a room with one of our users.
pub async fn is_tracked(db: &Db, ours: &str, user: &str) -> Result<bool> {
    Ok(!tracked(db, ours, &[user.to_owned()]).await?.is_empty())
}

/// The fresh (not stale) cached lists of these users.
pub async fn lists(db: &Db, users: &[String]) -> Result<BTreeMap<String, RemoteList>> {
    let mut out: BTreeMap<String, RemoteList> = BTreeMap::new();
    for chunk in users.chunks(CHUNK) {
        let ph = placeholders(chunk.len());
        let p: Vec<Value> = chunk.iter().map(|u| Value::String(u.clone())).collect();
        let rows = db
            .batch_rows(vec![
                db.stmt(
                    &format!(
                        "SELECT user_id, stream_id, master_key, self_signing_key FROM remote_device_lists WHERE stale = 0 AND user_id IN ({ph})"
                    ),
                    p.clone(),
                )?,
                db.stmt(&format!("SELECT user_id, device_id, keys_json, display_name FROM remote_devices WHERE user_id IN ({ph})"), p)?,
            ])
            .await?;
        for r in rows.first().into_iter().flatten() {
            let Some(u) = r["user_id"].as_str() else { continue };
            out.insert(
                u.to_owned(),
                RemoteList {
                    stream_id: r["stream_id"].as_i64().unwrap_or(0),
                    master_key: parse(r, "master_key"),
                    self_signing_key: parse(r, "self_signing_key"),
                    devices: Vec::new(),
                },
            );
        }
        for r in rows.get(1).into_iter().flatten() {
            let Some(list) = r["user_id"].as_str().and_then(|u| out.get_mut(u)) else { continue };
            list.devices.push(RemoteDevice {
                device_id: r["device_id"].as_str().unwrap_or_default().to_owned(),
                keys: parse(r, "keys_json"),
                display_name: r["display_name"].as_str().map(str::to_owned),
            });
        }
    }
    Ok(out)
}

/// The cached `stream_id` of a user and whether the cache is stale; `None` when not cached.
pub async fn position(db: &Db, user: &str) -> Result<Option<(i64, bool)>> {
    #[derive(Deserialize)]
    struct R {
        stream_id: i64,
        stale: i64,
    }
    let r: Option<R> = db.first("SELECT stream_id, stale FROM remote_device_lists WHERE user_id = ?", params![user]).await?;
    Ok(r.map(|r| (r.stream_id, r.stale != 0)))
}

/// Replaces a user's whole cached list (a resync), fresh.
pub async fn replace(db: &Db, user: &str, list: &RemoteList) -> Result<()> {
    let mut stmts = vec![
        db.stmt("DELETE FROM remote_devices WHERE user_id = ?", params![user])?,
        db.stmt(
            "INSERT INTO remote_device_lists (user_id, stream_id, master_key, self_signing_key, stale, updated_ms) VALUES (?, ?, ?, ?, 0, ?)
             ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, master_key = excluded.master_key,
               self_signing_key = excluded.self_signing_key, stale = 0, updated_ms = excluded.updated_ms",
            vec![
                Value::String(user.to_owned()),
                list.stream_id.into(),
                json_text(&list.master_key),
                json_text(&list.self_signing_key),
                now_ms().into(),
            ],
        )?,
    ];
    for d in &list.devices {
        stmts.push(db.stmt(
            "INSERT OR REPLACE INTO remote_devices (user_id, device_id, keys_json, display_name) VALUES (?, ?, ?, ?)",
            vec![Value::String(user.to_owned()), Value::String(d.device_id.clone()), json_text(&d.keys), d.display_name.clone().into()],
        )?);
    }
    db.batch(stmts).await?;
    Ok(())
}

/// Applies one `m.device_list_update` to a cached list: the device goes (`deleted`) or is
/// stored, and the list moves to `stream_id`.
pub async fn apply_update(db: &Db, user: &str, stream_id: i64, device: &RemoteDevice, deleted: bool) -> Result<()> {
    let change = if deleted {
        db.stmt("DELETE FROM remote_devices WHERE user_id = ? AND device_id = ?", params![user, device.device_id])?
    } else {
        // A device update without keys keeps the keys we have (e.g. a renamed device).
        db.stmt(
            "INSERT INTO remote_devices (user_id, device_id, keys_json, display_name) VALUES (?, ?, ?, ?)
             ON CONFLICT (user_id, device_id) DO UPDATE SET keys_json = COALESCE(excluded.keys_json, keys_json),
               display_name = excluded.display_name",
            vec![
                Value::String(user.to_owned()),
                Value::String(device.device_id.clone()),
                json_text(&device.keys),
                device.display_name.clone().into(),
            ],
        )?
    };
    db.batch(vec![
        change,
        db.stmt("UPDATE remote_device_lists SET stream_id = ?, updated_ms = ? WHERE user_id = ?", params![stream_id, now_ms(), user])?,
    ])
    .await?;
    Ok(())
}

/// Stores a user's new master and/or self-signing key (`m.signing_key_update`); `false` when
/// the user's list is not cached.
pub async fn set_signing_keys(db: &Db, user: &str, master: Option<&Value>, self_signing: Option<&Value>) -> Result<bool> {
    let n = db
        .run(
            "UPDATE remote_device_lists SET master_key = COALESCE(?, master_key), self_signing_key = COALESCE(?, self_signing_key), updated_ms = ?
             WHERE user_id = ?",
            vec![json_text(&master.cloned()), json_text(&self_signing.cloned()), now_ms().into(), Value::String(user.to_owned())],
        )
        .await?;
    Ok(n > 0)
}

/// Marks a user's cached list stale (a resync is due); it is not used until then.
pub async fn mark_stale(db: &Db, user: &str) -> Result<()> {
    db.run("UPDATE remote_device_lists SET stale = 1 WHERE user_id = ?", params![user]).await?;
    Ok(())
}

/// Drops the cached lists of users we no longer track (no update reaches us for them).
pub async fn forget(db: &Db, users: &[String]) -> Result<()> {
    let mut stmts = Vec::new();
    for u in users {
        stmts.push(db.stmt("DELETE FROM remote_devices WHERE user_id = ?", params![u])?);
        stmts.push(db.stmt("DELETE FROM remote_device_lists WHERE user_id = ?", params![u])?);
    }
    if !stmts.is_empty() {
        db.batch(stmts).await?;
    }
    Ok(())
}

/// The next `stream_id` of our user's outbound device list (1 for the first change) and the
/// previous one (`None` for the first), allocated atomically.
pub async fn next_outbound(db: &Db, user: &str) -> Result<(i64, Option<i64>)> {
    #[derive(Deserialize)]
    struct R {
        stream_id: i64,
    }
    let r: Option<R> = db
        .first(
            "INSERT INTO device_list_outbound (user_id, stream_id) VALUES (?, 1)
             ON CONFLICT (user_id) DO UPDATE SET stream_id = stream_id + 1 RETURNING stream_id",
            params![user],
        )
        .await?;
    let id = r.map(|r| r.stream_id).unwrap_or(1);
    Ok((id, (id > 1).then_some(id - 1)))
}

/// Our user's current outbound `stream_id` (0 before any change).
pub async fn outbound(db: &Db, user: &str) -> Result<i64> {
    #[derive(Deserialize)]
    struct R {
        stream_id: i64,
    }
    let r: Option<R> = db.first("SELECT stream_id FROM device_list_outbound WHERE user_id = ?", params![user]).await?;
    Ok(r.map(|r| r.stream_id).unwrap_or(0))
}
