//! The `Destination` Durable Object: one per remote server (named by its server name), the
//! outbound queue of our events for it (spec: server-server-api, "Transactions":
//! `PUT /_matrix/federation/v1/send/{txnId}` with `origin`, `origin_server_ts`, `pdus`,
//! `edus`; per-PDU errors in the response do not fail the transaction).
//!
//! Everything lives in the object's SQLite, so nothing is lost when the Worker or the object
//! is evicted: the PDUs in the order they were queued, the EDUs, and the send state (the
//! transaction in flight, failed attempts in a row, when the next is due). `Enqueue` stores
//! the items and returns; when the destination is idle (nothing in flight, not backing off)
//! the send starts at once in the object, after the answer (`wait_until`), with a safety
//! alarm behind it in case the object is evicted mid-send; while backing off, the alarm
//! fires at the retry time. Sending through an alarm every time cost a delivery 15-25 ms
//! (the alarm's scheduling) for nothing when the queue was idle.
//!
//! One transaction is in flight at a time. Its batch (up to 50 PDUs / 100 EDUs, the oldest
//! first) is marked with its transaction ID in the queue, so a retry resends exactly that
//! batch under the same ID (the receiver de-duplicates on it). Delivered rows go; failures
//! back off exponentially (`core::federation::queue`). A room whose queue grows past the
//! catch-up threshold while the remote is down keeps only its forward extremities: the
//! remote fetches the rest with `/get_missing_events`.
//! Protocol: [`DestinationRequest`] / [`DestinationResponse`].

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::lock::Mutex;
use ruma::ServerName;
use serde::Deserialize;
use serde_json::Value;
use worker::{console_error, console_log, durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, State};

use super::protocol::{DestinationProto, DestinationRequest, DestinationResponse, QueuedPduWire};
use crate::core::federation::queue::{self, QueuedPdu, SendState};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::http::Method;
use crate::service::federation::{client, socket};

#[durable_object]
pub struct Destination {
    /// Shared with the send started from a request, which outlives it (`wait_until`).
    inner: Rc<Inner>,
}

struct Inner {
    state: State,
    env: Env,
    version: i64,
    /// Held while transactions are being sent: one in flight per destination.
    sending: Mutex<()>,
    /// The connection to the server, kept between transactions (socket transport).
    kept: socket::Kept,
}

const SCHEMA: &[&str] = &[
    // `prev` (the PDU's prev_events as a JSON array) is kept apart so the catch-up rule
    // reads it without the PDUs; `txn` marks the rows of the transaction in flight.
    "CREATE TABLE IF NOT EXISTS pdus (seq INTEGER PRIMARY KEY, room_id TEXT NOT NULL, event_id TEXT NOT NULL UNIQUE, prev TEXT NOT NULL, json TEXT NOT NULL, txn TEXT)",
    "CREATE INDEX IF NOT EXISTS pdus_room ON pdus (room_id, seq)",
    "CREATE TABLE IF NOT EXISTS edus (seq INTEGER PRIMARY KEY, json TEXT NOT NULL, txn TEXT)",
    // destination, txn_id, retries, next_attempt, txn_counter
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
];

#[derive(Deserialize)]
struct MetaRow {
    k: String,
    v: String,
}

#[derive(Deserialize)]
struct Count {
    n: f64,
}

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

#[derive(Deserialize)]
struct PrevRow {
    seq: f64,
    event_id: String,
    prev: String,
}

fn fail(e: worker::Error) -> Error {
    Error::internal(format!("Destination storage: {e}"))
}

impl DurableObject for Destination {
    fn new(state: State, env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { inner: Rc::new(Inner { state, env, version, sending: Mutex::new(()), kept: socket::Kept::default() }) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match super::read::<DestinationProto>(&mut req).await {
            Ok(request) => self.handle(request).await,
            Err(e) => Err(e),
        };
        super::answer::<DestinationProto>(result)
    }

    async fn alarm(&self) -> Result<Response> {
        self.inner.run_logged().await;
        Response::ok("")
    }
}

impl Destination {
    async fn handle(&self, request: DestinationRequest) -> crate::Result<DestinationResponse> {
        let inner = &self.inner;
        match request {
            DestinationRequest::Health => Ok(DestinationResponse::Health(super::health::<DestinationProto>(inner.version))),
            DestinationRequest::Enqueue { destination, pdus, edus } => {
                inner.enqueue(&destination, pdus, edus)?;
                self.send_soon().await?;
                inner.status()
            }
            DestinationRequest::Wake { destination } => {
                inner.set_meta("destination", &destination)?;
                let st = inner.load_state()?;
                // Same transaction (if one waits for its retry), no more backoff.
                inner.save_state(&SendState { txn_id: st.txn_id, ..SendState::delivered() })?;
                if inner.queued()? > (0, 0) {
                    self.send_soon().await?;
                }
                inner.status()
            }
            DestinationRequest::Status => inner.status(),
        }
    }

    /// What is queued goes as soon as it may: while backing off, at the retry time (the
    /// alarm); while a run is sending, with that run (it sends until the queue is empty);
    /// otherwise at once, in a run started here that continues after the caller's answer.
    /// An alarm is armed behind a direct run (one retry interval away), so that a run cut
    /// short by the object's eviction is resumed (the batch in flight keeps its transaction
    /// ID, as on a retry); if it fires while the run is still going, it finds the lock taken
    /// and does nothing, and after a run that emptied the queue it finds nothing to send.
    async fn send_soon(&self) -> crate::Result<()> {
        let inner = &self.inner;
        let st = inner.load_state()?;
        let now = now_ms();
        if st.failing() && st.next_attempt_ms > now {
            return inner.schedule(st.next_attempt_ms).await;
        }
        if inner.sending.try_lock().is_none() {
            return Ok(());
        }
        // Armed first: a failing run re-arms it for its retry, which must not be overwritten.
        inner.schedule(now.saturating_add(inner.retry_schedule().base_ms)).await?;
        let run = Rc::clone(inner);
        inner.state.wait_until(async move { run.run_logged().await });
        Ok(())
    }
}

impl Inner {
    /// [`Self::run`], its errors logged and rescheduled here: a failing alarm would be
    /// retried by the runtime on its own schedule, not ours.
    async fn run_logged(&self) {
        if let Err(e) = self.run().await {
            console_error!("federation sender: {e}");
            if let Ok(st) = self.load_state() {
                let st = st.failed(now_ms(), jitter(), self.retry_schedule());
                if self.save_state(&st).is_ok() {
                    let _ = self.set_alarm_at(st.next_attempt_ms).await;
                }
            }
        }
    }

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn meta(&self) -> crate::Result<BTreeMap<String, String>> {
        let rows: Vec<MetaRow> = self.sql().exec("SELECT k, v FROM meta", None).and_then(|c| c.to_array()).map_err(fail)?;
        Ok(rows.into_iter().map(|r| (r.k, r.v)).collect())
    }

    fn set_meta(&self, k: &str, v: &str) -> crate::Result<()> {
        self.sql().exec("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", vec![k.into(), v.into()]).map_err(fail)?;
        Ok(())
    }

    /// The retry schedule from the configuration (the default if it cannot be read).
    fn retry_schedule(&self) -> queue::Backoff {
        crate::ctx::load_config(&self.env).map(|c| c.federation_transport.retry).unwrap_or_default()
    }

    fn load_state(&self) -> crate::Result<SendState> {
        let m = self.meta()?;
        Ok(SendState {
            txn_id: m.get("txn_id").filter(|t| !t.is_empty()).cloned(),
            retries: m.get("retries").and_then(|v| v.parse().ok()).unwrap_or(0),
            next_attempt_ms: m.get("next_attempt").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    fn save_state(&self, st: &SendState) -> crate::Result<()> {
        self.set_meta("txn_id", st.txn_id.as_deref().unwrap_or(""))?;
        self.set_meta("retries", &st.retries.to_string())?;
        self.set_meta("next_attempt", &st.next_attempt_ms.to_string())
    }

    fn count(&self, sql: &str, params: Vec<worker::SqlStorageValue>) -> crate::Result<u64> {
        let rows: Vec<Count> = self.sql().exec(sql, Some(params)).and_then(|c| c.to_array()).map_err(fail)?;
        Ok(rows.first().map(|c| c.n.max(0.0) as u64).unwrap_or(0))
    }

    /// Queued PDUs and EDUs.
    fn queued(&self) -> crate::Result<(u64, u64)> {
        Ok((self.count("SELECT COUNT(*) AS n FROM pdus", vec![])?, self.count("SELECT COUNT(*) AS n FROM edus", vec![])?))
    }

    fn status(&self) -> crate::Result<DestinationResponse> {
        let (queued_pdus, queued_edus) = self.queued()?;
        let st = self.load_state()?;
        Ok(DestinationResponse::Status { queued_pdus, queued_edus, txn_id: st.txn_id, retries: st.retries, next_attempt_ms: st.next_attempt_ms })
    }

    /// Stores the items (all synchronous SQLite: no other request runs in between), trims
    /// the EDUs and, while the destination is failing, catches up rooms that grew too long.
    fn enqueue(&self, destination: &str, pdus: Vec<QueuedPduWire>, edus: Vec<Value>) -> crate::Result<()> {
        self.set_meta("destination", destination)?;
        let sql = self.sql();
        let mut rooms: Vec<String> = Vec::new();
        for p in pdus {
            let prev = p.pdu.get("prev_events").cloned().unwrap_or(Value::Array(vec![]));
            sql.exec(
                "INSERT OR IGNORE INTO pdus (room_id, event_id, prev, json) VALUES (?, ?, ?, ?)",
                vec![p.room_id.clone().into(), p.event_id.into(), prev.to_string().into(), p.pdu.to_string().into()],
            )
            .map_err(fail)?;
            if !rooms.contains(&p.room_id) {
                rooms.push(p.room_id);
            }
        }
        for e in &edus {
            sql.exec("INSERT INTO edus (json) VALUES (?)", vec![e.to_string().into()]).map_err(fail)?;
        }
        let st = self.load_state()?;
        if !edus.is_empty() {
            let drop = queue::edus_to_drop(self.count("SELECT COUNT(*) AS n FROM edus", vec![])? as usize);
            if drop > 0 {
                sql.exec("DELETE FROM edus WHERE seq IN (SELECT seq FROM edus WHERE txn IS NULL ORDER BY seq LIMIT ?)", vec![(drop as f64).into()])
                    .map_err(fail)?;
            }
        }
        let mut counts = BTreeMap::new();
        if st.failing() {
            for r in rooms {
                let n = self.count("SELECT COUNT(*) AS n FROM pdus WHERE room_id = ?", vec![r.clone().into()])?;
                counts.insert(r, n as usize);
            }
        }
        let catch_up = queue::catch_up_rooms(&counts, st.failing());
        for room in &catch_up {
            self.catch_up(room, &st)?;
        }
        Ok(())
    }

    /// Keeps only the room's forward extremities among its queued PDUs. If that touched the
    /// batch waiting for its retry, the batch is cut again under a new ID: a transaction ID
    /// is never reused for other content.
    fn catch_up(&self, room: &str, st: &SendState) -> crate::Result<()> {
        let sql = self.sql();
        let rows: Vec<PrevRow> = sql
            .exec("SELECT seq, event_id, prev FROM pdus WHERE room_id = ? ORDER BY seq", vec![room.into()])
            .and_then(|c| c.to_array())
            .map_err(fail)?;
        let queued: Vec<QueuedPdu> = rows
            .into_iter()
            .map(|r| QueuedPdu { seq: r.seq as i64, event_id: r.event_id, prev_events: serde_json::from_str(&r.prev).unwrap_or_default() })
            .collect();
        let before = queued.len();
        let keep = queue::catch_up_keep(&queued);
        let keep_json = serde_json::to_string(&keep)?;
        sql.exec("DELETE FROM pdus WHERE room_id = ? AND seq NOT IN (SELECT value FROM json_each(?))", vec![room.into(), keep_json.into()])
            .map_err(fail)?;
        if let Some(txn) = &st.txn_id {
            sql.exec("UPDATE pdus SET txn = NULL WHERE txn = ?", vec![txn.clone().into()]).map_err(fail)?;
            sql.exec("UPDATE edus SET txn = NULL WHERE txn = ?", vec![txn.clone().into()]).map_err(fail)?;
            self.save_state(&SendState { txn_id: None, ..st.clone() })?;
        }
        console_log!("federation catch-up in {room}: {before} queued PDUs, keeping {} forward extremities", keep.len());
        Ok(())
    }

    /// Makes the alarm fire at `when` (ms since the epoch) unless it is already due sooner.
    async fn schedule(&self, when: u64) -> crate::Result<()> {
        let storage = self.state.storage();
        let current = storage.get_alarm().await.map_err(fail)?;
        if current.is_some_and(|c| c >= 0 && (c as u64) <= when) {
            return Ok(());
        }
        self.set_alarm_at(when).await
    }

    async fn set_alarm_at(&self, when: u64) -> crate::Result<()> {
        let offset = when.saturating_sub(now_ms()) as i64;
        self.state.storage().set_alarm(offset).await.map_err(fail)
    }

    /// Sends transactions until the queue is empty, one fails, or the run's share is used
    /// up (then the alarm is re-armed at once).
    async fn run(&self) -> crate::Result<()> {
        // An alarm while another run is sending: that run takes whatever is queued.
        let Some(_sending) = self.sending.try_lock() else { return Ok(()) };
        let Some(destination) = self.meta()?.remove("destination") else { return Ok(()) };
        let server = match ServerName::parse(&destination) {
            Ok(s) => s,
            Err(_) => {
                // Never queued by our own code (names come from parsed user IDs).
                console_error!("federation sender: invalid destination {destination:?}; dropping its queue");
                self.sql().exec("DELETE FROM pdus", None).map_err(fail)?;
                self.sql().exec("DELETE FROM edus", None).map_err(fail)?;
                return Ok(());
            }
        };
        let ctx = Ctx::new(self.env.clone(), None)?;
        for _ in 0..queue::MAX_TXNS_PER_RUN {
            let mut st = self.load_state()?;
            if st.txn_id.is_none() {
                st = match self.cut_batch(&st)? {
                    Some(cut) => cut,
                    None => return Ok(()),
                };
            }
            let Some(txn) = st.txn_id.clone() else { return Ok(()) };
            let sql = self.sql();
            let pdus: Vec<JsonRow> =
                sql.exec("SELECT json FROM pdus WHERE txn = ? ORDER BY seq", vec![txn.clone().into()]).and_then(|c| c.to_array()).map_err(fail)?;
            let edus: Vec<JsonRow> =
                sql.exec("SELECT json FROM edus WHERE txn = ? ORDER BY seq", vec![txn.clone().into()]).and_then(|c| c.to_array()).map_err(fail)?;
            if pdus.is_empty() && edus.is_empty() {
                self.save_state(&SendState::delivered())?;
                continue;
            }
            let parse = |rows: Vec<JsonRow>| rows.into_iter().filter_map(|r| serde_json::from_str::<Value>(&r.json).ok()).collect::<Vec<_>>();
            let (pdus, edus) = (parse(pdus), parse(edus));
            let (n_pdus, n_edus) = (pdus.len(), edus.len());
            let body = queue::txn_body(ctx.server_name(), now_ms(), pdus, edus);
            let path = format!("/_matrix/federation/v1/send/{txn}");
            match client::request_via(&ctx, Some(&self.kept), &server, Method::Put, &path, Some(&body)).await {
                Ok(response) => {
                    let errors = queue::pdu_errors(&response);
                    console_log!("federation txn to {destination}: {txn}, {n_pdus} PDUs, {n_edus} EDUs: sent ({} refused)", errors.len());
                    for (event_id, error) in errors {
                        console_log!("federation txn to {destination}: {txn}: {event_id} refused: {error}");
                    }
                    sql.exec("DELETE FROM pdus WHERE txn = ?", vec![txn.clone().into()]).map_err(fail)?;
                    sql.exec("DELETE FROM edus WHERE txn = ?", vec![txn.into()]).map_err(fail)?;
                    self.save_state(&SendState::delivered())?;
                }
                Err(e) => {
                    let next = st.failed(now_ms(), jitter(), self.retry_schedule());
                    self.save_state(&next)?;
                    console_log!(
                        "federation txn to {destination}: {txn}, {n_pdus} PDUs, {n_edus} EDUs: failed ({e}); retry {} in {} ms",
                        next.retries,
                        next.next_attempt_ms.saturating_sub(now_ms())
                    );
                    return self.set_alarm_at(next.next_attempt_ms).await;
                }
            }
        }
        // More may be queued: continue in a new run, letting other requests in.
        if self.queued()? > (0, 0) {
            self.set_alarm_at(now_ms()).await?;
        }
        Ok(())
    }

    /// Marks the oldest unsent PDUs and EDUs (up to the transaction limits) with a new
    /// transaction ID and records it as in flight (the state returned); `None` if nothing is
    /// queued.
    fn cut_batch(&self, st: &SendState) -> crate::Result<Option<SendState>> {
        if self.queued()? == (0, 0) {
            return Ok(None);
        }
        // No transaction is in flight: a marker left over (a state write that failed) is stale.
        self.sql().exec("UPDATE pdus SET txn = NULL WHERE txn IS NOT NULL", None).map_err(fail)?;
        self.sql().exec("UPDATE edus SET txn = NULL WHERE txn IS NOT NULL", None).map_err(fail)?;
        let counter = self.meta()?.get("txn_counter").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
        self.set_meta("txn_counter", &counter.to_string())?;
        let txn = queue::txn_id(now_ms(), counter);
        let sql = self.sql();
        sql.exec(
            "UPDATE pdus SET txn = ? WHERE seq IN (SELECT seq FROM pdus WHERE txn IS NULL ORDER BY seq LIMIT ?)",
            vec![txn.clone().into(), (queue::MAX_PDUS_PER_TXN as f64).into()],
        )
        .map_err(fail)?;
        sql.exec(
            "UPDATE edus SET txn = ? WHERE seq IN (SELECT seq FROM edus WHERE txn IS NULL ORDER BY seq LIMIT ?)",
            vec![txn.clone().into(), (queue::MAX_EDUS_PER_TXN as f64).into()],
        )
        .map_err(fail)?;
        let cut = SendState { txn_id: Some(txn), ..st.clone() };
        self.save_state(&cut)?;
        Ok(Some(cut))
    }
}

/// Spreads retries ([`queue::backoff_ms`]); not security-relevant.
fn jitter() -> f64 {
    js_sys::Math::random()
}
