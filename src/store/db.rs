//! A thin, typed wrapper over the D1 binding. Parameters are `serde_json::Value`s (use the
//! [`params!`](crate::params) macro); rows deserialise into any `serde` type.
//!
//! D1 has no interactive transactions: [`Db::batch`] is the atomic unit, so multi-row
//! changes that must stand or fall together go through it.

use serde::de::DeserializeOwned;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use crate::core::waves::Waves;
use crate::error::{Error, Result};
use crate::service::meter::Meter;

/// `params![a, b, c]` → `Vec<serde_json::Value>`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => { vec![$(serde_json::json!($v)),*] };
}

/// The D1 handle, the meter of the request it serves (`service::meter`: every statement's
/// rows read and written are counted) and the waves of coalesced reads (`core::waves`).
pub struct Db(D1Database, std::rc::Rc<Meter>, Waves<D1PreparedStatement, Vec<Value>, String>);

thread_local! {
    // `DEV_SIMULATED_LATENCY_MS` (development only): a fixed delay added to every D1 round
    // trip and Durable Object call, so that a local run previews production, where each of
    // them is a network hop. Set once per isolate from the configuration.
    static SIMULATED_LATENCY_MS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    // `DEV_LOG_SQL` (development only): every statement's text (never its parameters) is
    // logged, so that a test can run the queries a request made under EXPLAIN QUERY PLAN.
    static LOG_SQL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns the statement log on or off for this isolate (see `DEV_LOG_SQL`).
pub(crate) fn set_log_sql(on: bool) {
    LOG_SQL.with(|c| c.set(on));
}

/// Sets the simulated latency of this isolate (see `DEV_SIMULATED_LATENCY_MS`).
pub(crate) fn set_simulated_latency_ms(ms: u64) {
    SIMULATED_LATENCY_MS.with(|c| c.set(ms));
}

/// Waits the simulated latency, if one is set (never in production: the default is 0).
pub(crate) async fn simulated_hop() {
    let ms = SIMULATED_LATENCY_MS.with(std::cell::Cell::get);
    if ms > 0 {
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
}

fn to_js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_f64(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => JsValue::from_str(s),
        // Nested JSON is stored as its text.
        other => JsValue::from_str(&other.to_string()),
    }
}

fn db_err(sql: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("D1 error in `{sql}`: {e}"))
}

impl Db {
    /// A handle with a meter of its own (Durable Objects, background work).
    pub fn new(d1: D1Database) -> Self {
        Db(d1, Meter::new(), Waves::default())
    }

    /// A handle counting on the request's meter.
    pub fn metered(d1: D1Database, meter: std::rc::Rc<Meter>) -> Self {
        Db(d1, meter, Waves::default())
    }

    /// How many round trips to D1 this handle has made (each counts against the Worker's
    /// subrequest limit); `/sync` reports it so tests can check its cost stays bounded.
    pub fn round_trips(&self) -> u32 {
        self.1.round_trips()
    }

    async fn count(&self) {
        self.1.d1_trip();
        simulated_hop().await;
    }

    /// Prepares a statement with bound parameters (for [`Db::batch`]).
    pub fn stmt(&self, sql: &str, params: Vec<Value>) -> Result<D1PreparedStatement> {
        if LOG_SQL.with(std::cell::Cell::get) {
            worker::console_log!("{}", serde_json::json!({ "msg": "sql", "sql": sql }));
        }
        let args: Vec<JsValue> = params.iter().map(to_js).collect();
        self.0.prepare(sql).bind(&args).map_err(|e| db_err(sql, e))
    }

    /// All rows.
    pub async fn all<T: DeserializeOwned>(&self, sql: &str, params: Vec<Value>) -> Result<Vec<T>> {
        self.count().await;
        let res = self.stmt(sql, params)?.all().await.map_err(|e| db_err(sql, e))?;
        self.1.d1_statement(res.meta().ok().flatten());
        res.results::<T>().map_err(|e| db_err(sql, e))
    }

    /// The first row, if any.
    pub async fn first<T: DeserializeOwned>(&self, sql: &str, params: Vec<Value>) -> Result<Option<T>> {
        Ok(self.all(sql, params).await?.into_iter().next())
    }

    /// Runs a statement; returns the number of rows changed.
    pub async fn run(&self, sql: &str, params: Vec<Value>) -> Result<usize> {
        self.count().await;
        let res = self.stmt(sql, params)?.run().await.map_err(|e| db_err(sql, e))?;
        let meta = res.meta().ok().flatten();
        let changes = meta.as_ref().and_then(|m| m.changes).unwrap_or(0);
        self.1.d1_statement(meta);
        Ok(changes)
    }

    /// Runs statements atomically (all or none); returns the rows changed by each.
    pub async fn batch(&self, stmts: Vec<D1PreparedStatement>) -> Result<Vec<usize>> {
        self.count().await;
        let res = self.0.batch(stmts).await.map_err(|e| db_err("batch", e))?;
        Ok(res
            .iter()
            .map(|r| {
                let meta = r.meta().ok().flatten();
                let changes = meta.as_ref().and_then(|m| m.changes).unwrap_or(0);
                self.1.d1_statement(meta);
                changes
            })
            .collect())
    }

    /// Runs statements in one batch (one transaction, so the reads see one snapshot) and
    /// returns each statement's rows.
    /// Inside [`Db::coalesced`], joins the current wave instead.
    pub async fn batch_rows(&self, stmts: Vec<D1PreparedStatement>) -> Result<Vec<Vec<Value>>> {
        let stmts = match self.2.join(stmts) {
            Ok(waiting) => return waiting.await.map_err(|e| db_err("batch", e)),
            Err(stmts) => stmts,
        };
        self.rows_of(stmts).await.map_err(|e| db_err("batch", e))
    }

    async fn rows_of(&self, stmts: Vec<D1PreparedStatement>) -> std::result::Result<Vec<Vec<Value>>, String> {
        self.count().await;
        let res = self.0.batch(stmts).await.map_err(|e| e.to_string())?;
        for r in &res {
            self.1.d1_statement(r.meta().ok().flatten());
        }
        res.iter().map(|r| r.results::<Value>().map_err(|e| e.to_string())).collect()
    }

    /// Runs `f` with its concurrent [`Db::batch_rows`] reads coalesced into one D1 batch per
    /// wave (`core::waves`): independent reads a pass makes at once cost one round trip
    /// together. For reads: one failing statement fails its whole wave.
    pub async fn coalesced<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.2.run(f, |stmts| self.rows_of(stmts)).await
    }

    /// Runs an `INSERT` that may hit a unique constraint: `Ok(false)` when it did.
    /// This is the atomic guard for single-use things (nonces, codes).
    pub async fn insert_unique(&self, sql: &str, params: Vec<Value>) -> Result<bool> {
        self.count().await;
        match self.stmt(sql, params)?.run().await {
            Ok(res) => {
                self.1.d1_statement(res.meta().ok().flatten());
                Ok(true)
            }
            Err(e) => {
                // A refused insert still read the index it collided with; D1 reports no meta.
                self.1.d1_statement(None);
                let msg = e.to_string();
                if msg.contains("UNIQUE constraint failed") || msg.contains("PRIMARY KEY") {
                    Ok(false)
                } else {
                    Err(db_err(sql, msg))
                }
            }
        }
    }
}

/// Whether D1 answers a query (`/_stratus/health`).
pub(crate) async fn ping(db: &Db) -> Result<bool> {
    #[derive(serde::Deserialize)]
    struct One {
        one: i64,
    }
    Ok(db.first::<One>("SELECT 1 AS one", vec![]).await?.is_some_and(|o| o.one == 1))
}
