//! The `UserKeys` Durable Object: one per user, holding the one-time keys and fallback keys of
//! the user's devices (spec: client-server-api, "One-time and fallback keys").
//!
//! Why a Durable Object: a one-time key must be handed out at most once. The object runs one
//! request at a time and each claim is a read and a delete with no `await` between them, so
//! claims racing from many servers and clients can never get the same key.
//!
//! Its protocol is [`UserKeysRequest`] / [`UserKeysResponse`]: `Upload` stores a device's
//! keys (or answers `Conflict` when a one-time key ID is reused with another key, storing
//! nothing), `Counts`, `Claim` (a one-time key if one is left, else the fallback key, marked
//! used) and `Delete` (forgets devices' keys).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use super::protocol::{ClaimWire, ClaimedKey, DeviceKeyCounts, KeyWire, UserKeysProto, UserKeysRequest, UserKeysResponse};
use crate::error::Error;

type Result<T> = std::result::Result<T, worker::Error>;

#[durable_object]
pub struct UserKeys {
    state: State,
    version: i64,
}

const SCHEMA: &[&str] = &[
    // key_id is the full `algorithm:id`.
    "CREATE TABLE IF NOT EXISTS one_time_keys (device_id TEXT NOT NULL, key_id TEXT NOT NULL, algorithm TEXT NOT NULL, key_json TEXT NOT NULL, PRIMARY KEY (device_id, key_id))",
    // One fallback key per device and algorithm; `used` once it was handed out.
    "CREATE TABLE IF NOT EXISTS fallback_keys (device_id TEXT NOT NULL, algorithm TEXT NOT NULL, key_id TEXT NOT NULL, key_json TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (device_id, algorithm))",
    // `gen`: moves on every change, so the counts copies `UserSync` keeps can be ordered.
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
];

#[derive(Deserialize)]
struct Row {
    key_id: String,
    key_json: String,
}

fn counts(sql: &SqlStorage, device: &str) -> Result<BTreeMap<String, u64>> {
    #[derive(Deserialize)]
    struct C {
        algorithm: String,
        n: f64,
    }
    let rows: Vec<C> =
        sql.exec("SELECT algorithm, COUNT(*) AS n FROM one_time_keys WHERE device_id = ? GROUP BY algorithm", vec![device.into()])?.to_array()?;
    Ok(rows.into_iter().map(|c| (c.algorithm, c.n as u64)).collect())
}

fn unused_fallback(sql: &SqlStorage, device: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct A {
        algorithm: String,
    }
    let rows: Vec<A> =
        sql.exec("SELECT algorithm FROM fallback_keys WHERE device_id = ? AND used = 0 ORDER BY algorithm", vec![device.into()])?.to_array()?;
    Ok(rows.into_iter().map(|a| a.algorithm).collect())
}

/// The key generation (0 before any change).
fn gen(sql: &SqlStorage) -> Result<u64> {
    #[derive(Deserialize)]
    struct V {
        v: i64,
    }
    let rows: Vec<V> = sql.exec("SELECT v FROM meta WHERE k = 'gen'", None)?.to_array()?;
    Ok(rows.first().map(|r| r.v.max(0) as u64).unwrap_or(0))
}

/// Moves the key generation; returns the new one.
fn bump_gen(sql: &SqlStorage) -> Result<u64> {
    let next = gen(sql)? + 1;
    sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('gen', ?)", vec![(next as f64).into()])?;
    Ok(next)
}

fn device_counts(sql: &SqlStorage, device: &str, gen: u64) -> Result<DeviceKeyCounts> {
    Ok(DeviceKeyCounts { device_id: device.to_owned(), gen, one_time: counts(sql, device)?, unused_fallback: unused_fallback(sql, device)? })
}

impl UserKeys {
    fn upload(&self, device_id: String, one_time_keys: Vec<KeyWire>, fallback_keys: Vec<KeyWire>) -> Result<UserKeysResponse> {
        let sql = self.state.storage().sql();
        // Check every key before storing any, so a refused upload stores nothing.
        let mut fresh = Vec::new();
        for k in &one_time_keys {
            let old: Vec<Row> = sql
                .exec(
                    "SELECT key_id, key_json FROM one_time_keys WHERE device_id = ? AND key_id = ?",
                    vec![device_id.clone().into(), k.key_id.clone().into()],
                )?
                .to_array()?;
            match old.first() {
                Some(o) if serde_json::from_str::<Value>(&o.key_json).ok().as_ref() != Some(&k.key) => {
                    return Ok(UserKeysResponse::Conflict { key_id: k.key_id.clone() });
                }
                Some(_) => {} // the same key again: a retried upload
                None => fresh.push(k),
            }
        }
        for k in fresh {
            sql.exec(
                "INSERT INTO one_time_keys (device_id, key_id, algorithm, key_json) VALUES (?, ?, ?, ?)",
                vec![device_id.clone().into(), k.key_id.clone().into(), k.algorithm.clone().into(), k.key.to_string().into()],
            )?;
        }
        for k in &fallback_keys {
            // A new fallback key replaces the old one and is unused; the same key again keeps
            // its state (a retried upload must not reset `used`).
            sql.exec(
                "INSERT INTO fallback_keys (device_id, algorithm, key_id, key_json, used) VALUES (?, ?, ?, ?, 0)
                 ON CONFLICT (device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0
                 WHERE key_id != excluded.key_id OR key_json != excluded.key_json",
                vec![device_id.clone().into(), k.algorithm.clone().into(), k.key_id.clone().into(), k.key.to_string().into()],
            )?;
        }
        let keys = device_counts(&sql, &device_id, bump_gen(&sql)?)?;
        Ok(UserKeysResponse::Uploaded { counts: keys.one_time.clone(), keys: Some(keys) })
    }

    /// The keys handed out, and the new counts of each device they came from.
    fn claim(&self, claims: Vec<ClaimWire>) -> Result<(Vec<ClaimedKey>, Vec<DeviceKeyCounts>)> {
        let sql = self.state.storage().sql();
        let mut keys = Vec::new();
        for c in claims {
            // Read and delete with no await in between: the object is single-threaded, so this
            // is atomic against every other claim.
            let otk: Vec<Row> = sql
                .exec(
                    "DELETE FROM one_time_keys WHERE rowid = (SELECT rowid FROM one_time_keys WHERE device_id = ? AND algorithm = ? ORDER BY rowid LIMIT 1) RETURNING key_id, key_json",
                    vec![c.device_id.clone().into(), c.algorithm.clone().into()],
                )?
                .to_array()?;
            let row = match otk.into_iter().next() {
                Some(r) => Some(r),
                None => sql
                    .exec(
                        "UPDATE fallback_keys SET used = 1 WHERE device_id = ? AND algorithm = ? RETURNING key_id, key_json",
                        vec![c.device_id.clone().into(), c.algorithm.clone().into()],
                    )?
                    .to_array::<Row>()?
                    .into_iter()
                    .next(),
            };
            if let Some(r) = row {
                let key: Value = serde_json::from_str(&r.key_json).unwrap_or(Value::Null);
                keys.push(ClaimedKey { device_id: c.device_id, key_id: r.key_id, key });
            }
        }
        let mut devices: Vec<&str> = keys.iter().map(|k| k.device_id.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        let mut after = Vec::new();
        if !devices.is_empty() {
            let g = bump_gen(&sql)?;
            for d in devices {
                after.push(device_counts(&sql, d, g)?);
            }
        }
        Ok((keys, after))
    }

    fn delete(&self, devices: &[String]) -> Result<()> {
        let sql = self.state.storage().sql();
        for d in devices {
            sql.exec("DELETE FROM one_time_keys WHERE device_id = ?", vec![d.clone().into()])?;
            sql.exec("DELETE FROM fallback_keys WHERE device_id = ?", vec![d.clone().into()])?;
        }
        bump_gen(&sql)?;
        Ok(())
    }
}

impl DurableObject for UserKeys {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, version }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match super::read::<UserKeysProto>(&mut req).await {
            // No await from here on: each request, a claim above all, runs as one step.
            Ok(request) => self.handle(request).map_err(Error::internal),
            Err(e) => Err(e),
        };
        super::answer::<UserKeysProto>(result)
    }
}

impl UserKeys {
    fn handle(&self, request: UserKeysRequest) -> Result<UserKeysResponse> {
        Ok(match request {
            UserKeysRequest::Health => UserKeysResponse::Health(super::health::<UserKeysProto>(self.version)),
            UserKeysRequest::Upload { device_id, one_time_keys, fallback_keys } => self.upload(device_id, one_time_keys, fallback_keys)?,
            UserKeysRequest::Counts { device_id } => {
                let sql = self.state.storage().sql();
                let c = device_counts(&sql, &device_id, gen(&sql)?)?;
                UserKeysResponse::Counts { counts: c.one_time, unused_fallback: c.unused_fallback, gen: c.gen }
            }
            UserKeysRequest::Claim { claims } => {
                let (keys, counts) = self.claim(claims)?;
                UserKeysResponse::Claimed { keys, counts }
            }
            UserKeysRequest::Delete { device_ids } => {
                self.delete(&device_ids)?;
                UserKeysResponse::Done
            }
        })
    }
}
