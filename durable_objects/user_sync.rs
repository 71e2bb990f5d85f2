//! The `UserSync` Durable Object: one per user. It wakes the user's waiting `/sync` requests.
//!
//! A change counter (`epoch:n`, the epoch random per instance so that a restarted object
//! never matches an old value) moves on every `POST /notify`. A sync reads it (`GET
//! /version`) *before* it checks the stores, then, finding nothing, waits with `GET
//! /wait?v=<that value>&timeout=<ms>`: the wait returns at once if the counter has moved
//! since, so a change committed between the check and the wait is never lost.

use std::cell::{Cell, RefCell};

use futures_channel::oneshot;
use futures_util::future::{select, Either};
use worker::{durable_object, Delay, DurableObject, Env, Method, Request, Response, Result, State};

#[durable_object]
pub struct UserSync {
    #[allow(dead_code)]
    state: State,
    version: i64,
    epoch: String,
    counter: Cell<u64>,
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS to_device (device_id TEXT NOT NULL, stream_id INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (device_id, stream_id))",
    // The to-device counter survives deleting every delivered message (positions never regress).
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
    // /sendToDevice transaction IDs of this user's devices (idempotent sends).
    "CREATE TABLE IF NOT EXISTS sent_txns (device_id TEXT NOT NULL, txn_id TEXT NOT NULL, PRIMARY KEY (device_id, txn_id))",
];

/// At most this many to-device messages per sync (spec: the rest come in later syncs).
const TO_DEVICE_BATCH: i64 = 100;

/// Waits are capped so a client's huge `timeout` cannot pin a request forever.
const MAX_WAIT_MS: u64 = 120_000;

impl UserSync {
    fn current(&self) -> String {
        format!("{}:{}", self.epoch, self.counter.get())
    }

    fn wake(&self) {
        self.counter.set(self.counter.get() + 1);
        let waiters: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
        for w in waiters {
            let _ = w.send(());
        }
    }

    /// Queues to-device messages: `{"messages": [{"device_id", "message"}]}`.
    fn enqueue(&self, body: &serde_json::Value) -> Result<()> {
        let sql = self.state.storage().sql();
        #[derive(serde::Deserialize)]
        struct V {
            v: i64,
        }
        let cur: Vec<V> = sql.exec("SELECT v FROM meta WHERE k = 'to_device'", None)?.to_array()?;
        let mut next = cur.first().map(|r| r.v).unwrap_or(0);
        for m in body["messages"].as_array().into_iter().flatten() {
            next += 1;
            let device = m["device_id"].as_str().unwrap_or_default().to_owned();
            sql.exec(
                "INSERT INTO to_device (device_id, stream_id, message) VALUES (?, ?, ?)",
                vec![device.into(), (next as f64).into(), m["message"].to_string().into()],
            )?;
        }
        sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('to_device', ?)", vec![(next as f64).into()])?;
        Ok(())
    }

    /// The device's messages after `since`; those up to `since` were delivered and go (unless
    /// `keep`: a dehydrated device's messages stay until the device is replaced).
    fn take(&self, device: &str, since: i64, keep: bool) -> Result<serde_json::Value> {
        let sql = self.state.storage().sql();
        if !keep {
            sql.exec("DELETE FROM to_device WHERE device_id = ? AND stream_id <= ?", vec![device.into(), (since as f64).into()])?;
        }
        #[derive(serde::Deserialize)]
        struct M {
            stream_id: i64,
            message: String,
        }
        let rows: Vec<M> = sql
            .exec(
                "SELECT stream_id, message FROM to_device WHERE device_id = ? AND stream_id > ? ORDER BY stream_id LIMIT ?",
                vec![device.into(), (since as f64).into(), (TO_DEVICE_BATCH as f64).into()],
            )?
            .to_array()?;
        let last = rows.last().map(|r| r.stream_id).unwrap_or(since);
        let events: Vec<serde_json::Value> = rows.iter().filter_map(|r| serde_json::from_str(&r.message).ok()).collect();
        Ok(serde_json::json!({ "events": events, "position": last }))
    }
}

impl DurableObject for UserSync {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        let epoch = uuid::Uuid::new_v4().simple().to_string().chars().take(8).collect::<String>();
        Self { state, version, epoch, counter: Cell::new(0), waiters: RefCell::new(Vec::new()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (_, "/health") => super::health("UserSync", self.version),
            (Method::Get, "/version") => Response::from_json(&serde_json::json!({ "v": self.current() })),
            (Method::Post, "/notify") => {
                self.wake();
                Response::from_json(&serde_json::json!({ "v": self.current() }))
            }
            (Method::Post, "/to_device") => {
                let body: serde_json::Value = req.json().await?;
                self.enqueue(&body)?;
                self.wake();
                Response::from_json(&serde_json::json!({}))
            }
            (Method::Get, "/to_device") => {
                let url = req.url()?;
                let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
                let device = q("device_id").unwrap_or_default();
                let since = q("since").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
                Response::from_json(&self.take(&device, since, q("keep").is_some())?)
            }
            (Method::Post, "/forget") => {
                // Deleted devices: their queued messages go.
                let body: serde_json::Value = req.json().await?;
                let sql = self.state.storage().sql();
                for d in body["device_ids"].as_array().into_iter().flatten().filter_map(|d| d.as_str()) {
                    sql.exec("DELETE FROM to_device WHERE device_id = ?", vec![d.into()])?;
                }
                Response::from_json(&serde_json::json!({}))
            }
            (Method::Post, "/txn") => {
                // Records a send transaction; `{"new": false}` if seen before.
                let body: serde_json::Value = req.json().await?;
                let sql = self.state.storage().sql();
                let d = body["device_id"].as_str().unwrap_or_default().to_owned();
                let t = body["txn_id"].as_str().unwrap_or_default().to_owned();
                #[derive(serde::Deserialize)]
                struct C {
                    n: i64,
                }
                let seen: Vec<C> = sql
                    .exec("SELECT COUNT(*) AS n FROM sent_txns WHERE device_id = ? AND txn_id = ?", vec![d.clone().into(), t.clone().into()])?
                    .to_array()?;
                let new = seen.first().map(|c| c.n == 0).unwrap_or(true);
                if new {
                    sql.exec("INSERT INTO sent_txns (device_id, txn_id) VALUES (?, ?)", vec![d.into(), t.into()])?;
                }
                Response::from_json(&serde_json::json!({ "new": new }))
            }
            (Method::Get, "/wait") => {
                let url = req.url()?;
                let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
                let seen = q("v").unwrap_or_default();
                let timeout = q("timeout").and_then(|t| t.parse::<u64>().ok()).unwrap_or(0).min(MAX_WAIT_MS);
                if seen != self.current() {
                    return Response::from_json(&serde_json::json!({ "woken": true, "v": self.current() }));
                }
                let (tx, rx) = oneshot::channel();
                self.waiters.borrow_mut().push(tx);
                let delay = Delay::from(std::time::Duration::from_millis(timeout));
                let woken = match select(rx, delay).await {
                    Either::Left((r, _)) => r.is_ok(),
                    Either::Right(_) => false,
                };
                // Drop our sender if we timed out (the receiver is gone; notify skips it).
                self.waiters.borrow_mut().retain(|w| !w.is_canceled());
                // `v` is the counter as of the wake-up: a caller that looks again and then waits
                // with it misses nothing committed after this point.
                Response::from_json(&serde_json::json!({ "woken": woken, "v": self.current() }))
            }
            _ => Response::error("Not found", 404),
        }
    }
}
