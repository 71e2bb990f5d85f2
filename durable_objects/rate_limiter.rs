//! The `RateLimiter` Durable Object: one per rate-limit bucket and key (named
//! `<bucket>:<user ID or client address>`), holding that bucket's level (issue 18).
//!
//! Why a Durable Object: a limit must hold across isolates and data centres. The object runs
//! one request at a time and each `Take` is a read and a write of its SQLite row with no
//! `await` between them, so 50 parallel sends against a burst of 10 get exactly 10 through
//! (tests/integration/ops/test_rate_limits.py). The Workers rate-limiting binding was not
//! used: it is eventually consistent per location ("permissive", its documentation says)
//! and cannot answer `retry_after_ms`.
//!
//! The level is in storage, not memory, so that an evicted object does not hand out a fresh
//! burst; an alarm deletes the row once the bucket has drained, so idle keys cost no storage.

use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use super::protocol::{RateLimiterProto, RateLimiterRequest, RateLimiterResponse};
use crate::core::ratelimit::{drained_at, take, Level, Rate};
use crate::core::time::now_ms;
use crate::error::Error;

type Result<T> = std::result::Result<T, worker::Error>;

#[durable_object]
pub struct RateLimiter {
    state: State,
    version: i64,
}

const SCHEMA: &[&str] = &[
    // One row: the bucket's level (actions) as of updated_ms, and the rate it was last
    // taken at (the alarm needs it to know when the bucket is empty).
    "CREATE TABLE IF NOT EXISTS bucket (id INTEGER PRIMARY KEY CHECK (id = 1), level REAL NOT NULL, updated_ms INTEGER NOT NULL, per_second REAL NOT NULL)",
    // Idempotency keys already charged (`Take { once }`), the most recent `CHARGED_KEPT`.
    "CREATE TABLE IF NOT EXISTS charged (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
];

/// Charged idempotency keys remembered per bucket (a client retries its last few requests).
const CHARGED_KEPT: f64 = 64.0;

#[derive(Deserialize)]
struct Seq {
    seq: Option<f64>,
}

#[derive(Deserialize)]
struct Row {
    level: f64,
    updated_ms: f64,
    per_second: f64,
}

fn load(sql: &SqlStorage) -> Result<Option<Row>> {
    Ok(sql.exec("SELECT level, updated_ms, per_second FROM bucket WHERE id = 1", None)?.to_array::<Row>()?.into_iter().next())
}

impl RateLimiter {
    /// Takes one action. Returns the response and, when the bucket was empty before, the
    /// time its clean-up alarm should fire.
    fn take(&self, rate: Rate, once: Option<String>) -> Result<(RateLimiterResponse, Option<u64>)> {
        let sql = self.state.storage().sql();
        if let Some(key) = &once {
            // Synchronous storage: nothing interleaves between this look and the write below.
            let seen: Vec<Seq> = sql.exec("SELECT seq FROM charged WHERE key = ?", vec![key.as_str().into()])?.to_array()?;
            if !seen.is_empty() {
                return Ok((RateLimiterResponse::Allowed, None));
            }
        }
        let (resp, alarm) = self.take_one(&sql, rate)?;
        if let (Some(key), RateLimiterResponse::Allowed) = (once, &resp) {
            let top: Vec<Seq> = sql.exec("SELECT MAX(seq) AS seq FROM charged", None)?.to_array()?;
            let next = top.first().and_then(|s| s.seq).unwrap_or(0.0) + 1.0;
            sql.exec("INSERT INTO charged (key, seq) VALUES (?, ?)", vec![key.into(), next.into()])?;
            sql.exec("DELETE FROM charged WHERE seq <= ?", vec![(next - CHARGED_KEPT).into()])?;
        }
        Ok((resp, alarm))
    }

    fn take_one(&self, sql: &SqlStorage, rate: Rate) -> Result<(RateLimiterResponse, Option<u64>)> {
        let now = now_ms();
        let row = load(sql)?;
        let before = row.as_ref().map(|r| Level { level: r.level, updated_ms: r.updated_ms as u64 }).unwrap_or_default();
        match take(before, rate, now) {
            Ok(after) => {
                sql.exec(
                    "INSERT INTO bucket (id, level, updated_ms, per_second) VALUES (1, ?, ?, ?)
                     ON CONFLICT (id) DO UPDATE SET level = excluded.level, updated_ms = excluded.updated_ms, per_second = excluded.per_second",
                    vec![after.level.into(), (after.updated_ms as f64).into(), rate.per_second.into()],
                )?;
                let alarm = row.is_none().then(|| drained_at(after, rate));
                Ok((RateLimiterResponse::Allowed, alarm))
            }
            Err(retry_after_ms) => Ok((RateLimiterResponse::Limited { retry_after_ms }, None)),
        }
    }
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, version }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match super::read::<RateLimiterProto>(&mut req).await {
            Ok(RateLimiterRequest::Health) => Ok(RateLimiterResponse::Health(super::health::<RateLimiterProto>(self.version))),
            // The decision is made and stored before the only await (the alarm).
            Ok(RateLimiterRequest::Take { per_second, burst, once }) => match self.take(Rate { per_second, burst }, once) {
                Ok((resp, Some(at))) => {
                    let offset = at.saturating_sub(now_ms()).max(1000) as i64;
                    self.state.storage().set_alarm(offset).await.map(|_| resp).map_err(Error::internal)
                }
                Ok((resp, None)) => Ok(resp),
                Err(e) => Err(Error::internal(e)),
            },
            Err(e) => Err(e),
        };
        super::answer::<RateLimiterProto>(result)
    }

    /// Deletes the row once the bucket has drained (a later action starts from empty, which
    /// is what a drained bucket is); re-arms while it has not.
    async fn alarm(&self) -> Result<Response> {
        let sql = self.state.storage().sql();
        if let Some(r) = load(&sql)? {
            let at = drained_at(Level { level: r.level, updated_ms: r.updated_ms as u64 }, Rate { per_second: r.per_second, burst: 1.0 });
            let now = now_ms();
            if at <= now {
                sql.exec("DELETE FROM bucket", None)?;
                sql.exec("DELETE FROM charged", None)?;
            } else {
                self.state.storage().set_alarm((at - now).max(1000) as i64).await?;
            }
        }
        Response::ok("")
    }
}
