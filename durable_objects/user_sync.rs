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

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS to_device (device_id TEXT NOT NULL, stream_id INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (device_id, stream_id))"];

/// Waits are capped so a client's huge `timeout` cannot pin a request forever.
const MAX_WAIT_MS: u64 = 120_000;

impl UserSync {
    fn current(&self) -> String {
        format!("{}:{}", self.epoch, self.counter.get())
    }
}

impl DurableObject for UserSync {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        let epoch = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Self { state, version, epoch, counter: Cell::new(0), waiters: RefCell::new(Vec::new()) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (_, "/health") => super::health("UserSync", self.version),
            (Method::Get, "/version") => Response::from_json(&serde_json::json!({ "v": self.current() })),
            (Method::Post, "/notify") => {
                self.counter.set(self.counter.get() + 1);
                let waiters: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
                for w in waiters {
                    let _ = w.send(());
                }
                Response::from_json(&serde_json::json!({ "v": self.current() }))
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
