//! The `Room` Durable Object: one per room. It is the room's single writer: every event
//! appended to an existing room goes through [`Room::append`] under a lock, so `prev_events`,
//! depth and the state the auth rules see are never raced by a concurrent send.
//!
//! Local appends are group-committed: requests queue, and whoever holds the writer lock
//! takes the whole queue and appends it as ONE D1 batch, each request built and authorised
//! on the state after the ones before it and answered with its own event ID or error
//! ([`timeline::append_group`]). What an append needs (head, extremities, depth, state group,
//! the state the auth rules read, the members to wake, recent transaction IDs) stays in
//! memory between appends ([`timeline::RoomCache`]), so an append reads nothing from D1. The
//! cache is exact because this object is the room's only writer, and it is dropped on every
//! other write (`Ingest`, `JoinRemote`, `Backfill`, deferred PDUs) and after a failed batch;
//! an evicted object loads it again (one round trip). The batch ends with the fan-out's
//! reads (members, their push rules); right after it the members' syncs are woken and our
//! events queued for federation ([`crate::service::notify::wake`], no D1); push rules are
//! evaluated and push actions written after that
//! ([`crate::service::notify::record_pushes`]), outside the writer lock, so the next group
//! commits meanwhile.
//!
//! It also keeps who is typing (spec: client-server-api, "Typing Notifications"): each
//! typing user with the expiry of the timeout they asked for, in the object's SQLite, with an
//! alarm at the next expiry. Every change is written to D1 `room_typing` (the typing stream
//! `/sync` reads) and wakes the joined members.

use std::cell::RefCell;

use futures_channel::oneshot;
use futures_util::lock::{Mutex, MutexGuard};
use ruma::{RoomId, ServerName};
use serde::Deserialize;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::core::federation::queue;
use crate::core::room::pdu::{NewEvent, Pdu};
use crate::core::time::now_ms;
use crate::ctx::load_config;
use crate::error::Error;
use crate::service::federation::{ingest, sender};
use crate::service::timeline::{self, Queued, RoomCache, Sent};
use crate::service::{notify, wakeups};
use crate::store::db::Db;
use crate::store::{rooms, servers, sync as sstore};

use super::protocol::{NewEventWire, PduResult, RoomProto, RoomRequest, RoomResponse, Txn};

#[durable_object]
pub struct Room {
    state: State,
    env: Env,
    version: i64,
    /// Held while an append is in flight: D1 calls are real I/O, during which the runtime
    /// would otherwise deliver the next request.
    writer: Mutex<()>,
    /// Serialises typing changes (read-modify-write of the typing set).
    typing_lock: Mutex<()>,
    /// What appends need, valid only after a local append by this instance (see the module
    /// documentation). Taken out while a group is appended, under `writer`.
    cache: RefCell<Option<RoomCache>>,
    /// Append requests waiting for the next group commit.
    queue: RefCell<Vec<Waiting>>,
    /// Held from a group's commit until its wake-ups and federation queueing are done, so
    /// those follow the commit order while the next group already commits.
    fanout: Mutex<()>,
}

/// A queued append and where its answer goes.
struct Waiting {
    news: Vec<NewEvent>,
    txn: Option<Txn>,
    reply: oneshot::Sender<crate::Result<(Vec<String>, u32)>>,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS typing (user_id TEXT PRIMARY KEY, expires_ts INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    // PDUs from other servers that could not be checked yet (Outcome::Deferred).
    "CREATE TABLE IF NOT EXISTS pending_pdus (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, origin TEXT NOT NULL, \
     json TEXT NOT NULL, attempts INTEGER NOT NULL, next_ts INTEGER NOT NULL)",
];

/// A deferred PDU is tried this many times in all, then dropped (logged).
const PENDING_ATTEMPTS: i64 = 6;
/// Deferred PDUs retried per alarm.
const PENDING_PER_ALARM: usize = 20;

#[derive(Deserialize)]
struct PendingRow {
    event_id: String,
    room_id: String,
    origin: String,
    json: String,
    attempts: f64,
}

/// Typing timeouts are capped (clients send 30 s).
const MAX_TYPING_MS: u64 = 120_000;

#[derive(Deserialize)]
struct TypingRow {
    user_id: String,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self {
            state,
            env,
            version,
            writer: Mutex::new(()),
            typing_lock: Mutex::new(()),
            cache: RefCell::new(None),
            queue: RefCell::new(Vec::new()),
            fanout: Mutex::new(()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let result = match super::read::<RoomProto>(&mut req).await {
            Ok(request) => self.handle(request).await,
            Err(e) => Err(e),
        };
        super::answer::<RoomProto>(result)
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.expire_typing().await {
            worker::console_error!("typing expiry: {e}");
        }
        if let Err(e) = self.retry_pending().await {
            worker::console_error!("deferred PDUs: {e}");
        }
        if let Err(e) = self.schedule_alarm().await {
            worker::console_error!("room alarm: {e}");
        }
        Response::ok("")
    }
}

impl Room {
    async fn handle(&self, request: RoomRequest) -> crate::Result<RoomResponse> {
        Ok(match request {
            RoomRequest::Health => RoomResponse::Health(super::health::<RoomProto>(self.version)),
            RoomRequest::Append { room_id, events, txn } => {
                let (event_ids, d1_round_trips) = self.append(room_id, events, txn).await?;
                RoomResponse::Sent { event_ids, d1_round_trips }
            }
            RoomRequest::Ingest { room_id, origin, pdus } => RoomResponse::Ingested { results: self.ingest(room_id, origin, pdus).await? },
            RoomRequest::JoinRemote { room_id, room_version, origin, join_event, state, auth_chain } => {
                let _writer = self.writer.lock().await;
                self.forget();
                let ctx = self.ctx()?;
                let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
                let origin = ServerName::parse(&origin).map_err(|_| crate::err!(InvalidParam, "Invalid server name"))?;
                let id = ingest::store_remote_join(&ctx, &room_id, &room_version, &origin, &join_event, &state, &auth_chain).await?;
                RoomResponse::Appended { event_ids: vec![id.to_string()] }
            }
            RoomRequest::Backfill { room_id, from, limit } => {
                let _writer = self.writer.lock().await;
                self.forget();
                let ctx = self.ctx()?;
                let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
                let from: Vec<ruma::OwnedEventId> = from.iter().filter_map(|e| ruma::EventId::parse(e).ok()).collect();
                RoomResponse::Appended { event_ids: ingest::backfill_room(&ctx, &room_id, &from, limit).await? }
            }
            RoomRequest::Purge { room_id } => {
                let _writer = self.writer.lock().await;
                self.forget();
                RoomResponse::Purged { rows: crate::store::admin::purge_step(&self.db()?, &room_id).await? }
            }
            RoomRequest::Typing { room_id, user_id, typing, timeout } => {
                self.typing(room_id, user_id, typing, timeout).await?;
                RoomResponse::Done
            }
        })
    }

    fn db(&self) -> crate::Result<Db> {
        Ok(Db::new(self.env.d1("DB").map_err(Error::internal)?))
    }

    /// Any write other than a local append: the cached head and state may no longer be
    /// the room's (called under the writer lock).
    fn forget(&self) {
        self.cache.borrow_mut().take();
    }

    /// Queues the request; whoever gets the writer lock next appends everything queued as
    /// one group (this request's or a later one's caller). Returns the event IDs and the
    /// group's D1 round trips.
    async fn append(&self, room_id: String, events: Vec<NewEventWire>, txn: Option<Txn>) -> crate::Result<(Vec<String>, u32)> {
        let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let news = events.into_iter().map(NewEventWire::into_new).collect::<crate::Result<Vec<_>>>()?;
        let (reply, answer) = oneshot::channel();
        self.queue.borrow_mut().push(Waiting { news, txn, reply });
        let writer = self.writer.lock().await;
        let group = std::mem::take(&mut *self.queue.borrow_mut());
        if group.is_empty() {
            // An earlier lock holder took this request with its group.
            drop(writer);
        } else {
            self.commit(writer, &room_id, group).await;
        }
        answer.await.map_err(|_| Error::internal("append abandoned"))?
    }

    /// Appends a group (one batch, from the cache when it is valid), then wakes the
    /// members and queues federation (in commit order, after releasing the writer lock),
    /// then records push actions; answers every request of the group at the end.
    async fn commit(&self, writer: MutexGuard<'_, ()>, room_id: &RoomId, group: Vec<Waiting>) {
        let mut replies = Vec::with_capacity(group.len());
        let mut reqs = Vec::with_capacity(group.len());
        for w in group {
            replies.push(w.reply);
            reqs.push(Queued { news: w.news, txn: w.txn });
        }
        let setup = load_config(&self.env).and_then(|c| Ok((c, self.db()?)));
        let (config, db) = match setup {
            Ok(x) => x,
            Err(e) => {
                for r in replies {
                    let _ = r.send(Err(timeline::same_error(&e)));
                }
                return;
            }
        };
        let cached = self.cache.borrow_mut().take().filter(|c| c.room_id() == Some(room_id));
        let mut cache = match cached {
            Some(c) => Some(c),
            None => match RoomCache::load(&db, room_id).await {
                Ok(c) => Some(c),
                Err(e) => {
                    worker::console_warn!("room cache of {room_id}: {e}");
                    None
                }
            },
        };
        let (outcomes, inputs) = match cache.as_mut() {
            Some(c) => match timeline::append_group(&db, &config, c, &reqs).await {
                Ok(g) => (g.outcomes, g.fanout),
                Err(e) if crate::store::rooms::is_unique_conflict(&e) => {
                    // A transaction stored before the cache was loaded: nothing of the group
                    // was written; one by one, each repeat is answered from D1.
                    cache = None;
                    (self.one_by_one(&db, &config, room_id, reqs).await, None)
                }
                Err(e) => {
                    // Whether the batch was written is not known (as for a single append
                    // before): every request of the group gets the error, nothing is retried
                    // here (a client's retry with its transaction ID is safe).
                    worker::console_error!("group append in {room_id}: {e}");
                    cache = None;
                    (reqs.iter().map(|_| Err(timeline::same_error(&e))).collect(), None)
                }
            },
            None => (self.one_by_one(&db, &config, room_id, reqs).await, None),
        };
        *self.cache.borrow_mut() = cache;
        let committed: Vec<Pdu> = outcomes.iter().filter_map(|o| if let Ok(Sent::New(p)) = o { Some(p.clone()) } else { None }).flatten().collect();
        let fanout = self.fanout.lock().await;
        drop(writer);
        if !committed.is_empty() {
            match inputs {
                Some(inputs) => {
                    let (affected, joined) = notify::audience(&inputs, &committed);
                    notify::wake(&self.env, &config, &committed, affected, &joined).await;
                    drop(fanout);
                    notify::record_pushes(&self.env, &db, &config, &committed, inputs).await;
                }
                None => {
                    if let Err(e) = notify::after_append(&self.env, &db, &config, &committed).await {
                        worker::console_error!("fan-out after append in {room_id}: {e}");
                    }
                    drop(fanout);
                }
            }
        }
        // Every D1 call made for the group before its answer (the push-action write too).
        let trips = db.round_trips();
        for (reply, o) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(o.map(|s| (s.event_ids().iter().map(|e| e.to_string()).collect(), trips)));
        }
    }

    /// The requests appended one at a time from D1 (no cache): when the cache cannot be
    /// loaded or a group's batch failed.
    async fn one_by_one(&self, db: &Db, config: &crate::core::config::Config, room_id: &RoomId, reqs: Vec<Queued>) -> Vec<crate::Result<Sent>> {
        let mut out = Vec::with_capacity(reqs.len());
        for q in reqs {
            out.push(timeline::append_once(db, config, Some(room_id), q.news, q.txn).await);
        }
        out
    }

    fn ctx(&self) -> crate::Result<crate::ctx::Ctx> {
        crate::ctx::Ctx::new(self.env.clone(), None)
    }

    /// PDUs from another server, under the writer lock (the room's single writer).
    async fn ingest(&self, room_id: String, origin: String, pdus: Vec<serde_json::Value>) -> crate::Result<Vec<PduResult>> {
        let _writer = self.writer.lock().await;
        self.forget();
        let ctx = self.ctx()?;
        let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let origin = ServerName::parse(&origin).map_err(|_| crate::err!(InvalidParam, "Invalid server name"))?;
        let mut ingest = ingest::Ingest::new(&ctx, &room_id, &origin).await?;
        let outcomes = ingest.pdus(&pdus).await;
        ingest::fan_out(&ctx, &ingest.accepted).await;
        let mut deferred = false;
        let mut results = Vec::new();
        for (id, o) in outcomes {
            if let ingest::Outcome::Deferred(why) = &o {
                // Kept here and tried again on the alarm: the sender has handed it over.
                if let Some(json) = pdus.iter().find(|p| ingest::event_id_of(ingest.rules(), p).as_ref() == Some(&id)) {
                    worker::console_warn!("deferred {id} in {room_id} from {origin}: {why}");
                    self.defer(id.as_str(), room_id.as_str(), origin.as_str(), json, 0)?;
                    deferred = true;
                }
            }
            results.push(PduResult {
                event_id: id.to_string(),
                accepted: o == ingest::Outcome::Accepted,
                error: match o {
                    ingest::Outcome::Rejected(why) => Some(why),
                    _ => None,
                },
            });
        }
        if deferred {
            self.schedule_alarm().await?;
        }
        Ok(results)
    }

    /// The retry schedule of deferred PDUs: the outbound queue's (`FEDERATION_RETRY_*`).
    fn retry_delay(&self, attempts: i64) -> u64 {
        let schedule = load_config(&self.env).map(|c| c.federation_transport.retry).unwrap_or_default();
        crate::core::federation::queue::backoff_with(schedule, u32::try_from(attempts.max(1)).unwrap_or(1), 0.5)
    }

    /// Keeps a PDU for a later try (`attempts` made so far).
    fn defer(&self, event_id: &str, room_id: &str, origin: &str, json: &serde_json::Value, attempts: i64) -> crate::Result<()> {
        let next = now_ms().saturating_add(self.retry_delay(attempts + 1)) as f64;
        self.sql()
            .exec(
                "INSERT INTO pending_pdus (event_id, room_id, origin, json, attempts, next_ts) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (event_id) DO UPDATE SET attempts = excluded.attempts, next_ts = excluded.next_ts",
                vec![event_id.into(), room_id.into(), origin.into(), json.to_string().into(), ((attempts + 1) as f64).into(), next.into()],
            )
            .map_err(Error::internal)?;
        Ok(())
    }

    /// Tries the deferred PDUs that are due again, under the writer lock; each is dropped
    /// once accepted, soft-failed, rejected or out of attempts.
    async fn retry_pending(&self) -> crate::Result<()> {
        let _writer = self.writer.lock().await;
        let now = now_ms() as f64;
        let rows: Vec<PendingRow> = self
            .sql()
            .exec("SELECT event_id, room_id, origin, json, attempts FROM pending_pdus WHERE next_ts <= ? ORDER BY next_ts", vec![now.into()])
            .and_then(|c| c.to_array())
            .map_err(Error::internal)?;
        if rows.is_empty() {
            return Ok(());
        }
        self.forget();
        let ctx = self.ctx()?;
        for row in rows.into_iter().take(PENDING_PER_ALARM) {
            let (Ok(room_id), Ok(origin), Ok(json)) =
                (RoomId::parse(&row.room_id), ServerName::parse(&row.origin), serde_json::from_str::<serde_json::Value>(&row.json))
            else {
                self.drop_pending(&row.event_id)?;
                continue;
            };
            let mut ingest = ingest::Ingest::new(&ctx, &room_id, &origin).await?;
            let outcome = ingest.pdus(std::slice::from_ref(&json)).await.into_iter().next().map(|(_, o)| o);
            ingest::fan_out(&ctx, &ingest.accepted).await;
            let attempts = row.attempts as i64;
            match outcome {
                Some(ingest::Outcome::Deferred(why)) if attempts < PENDING_ATTEMPTS => {
                    worker::console_warn!("deferred {} again (attempt {}): {why}", row.event_id, attempts + 1);
                    self.defer(&row.event_id, &row.room_id, &row.origin, &json, attempts)?;
                }
                Some(ingest::Outcome::Deferred(why)) => {
                    worker::console_warn!("dropping {} from {} after {attempts} attempts: {why}", row.event_id, row.origin);
                    self.drop_pending(&row.event_id)?;
                }
                _ => self.drop_pending(&row.event_id)?,
            }
        }
        Ok(())
    }

    fn drop_pending(&self, event_id: &str) -> crate::Result<()> {
        self.sql().exec("DELETE FROM pending_pdus WHERE event_id = ?", vec![event_id.into()]).map_err(Error::internal)?;
        Ok(())
    }

    /// One alarm serves typing expiry and deferred PDUs: set it for the earlier of the two.
    async fn schedule_alarm(&self) -> crate::Result<()> {
        #[derive(Deserialize)]
        struct Next {
            next: Option<f64>,
        }
        let next: Vec<Next> = self
            .sql()
            .exec("SELECT MIN(t) AS next FROM (SELECT MIN(expires_ts) AS t FROM typing UNION ALL SELECT MIN(next_ts) FROM pending_pdus)", None)
            .and_then(|c| c.to_array())
            .map_err(Error::internal)?;
        if let Some(at) = next.first().and_then(|n| n.next) {
            let wait = (at - now_ms() as f64).max(1.0) as u64;
            self.state.storage().set_alarm(std::time::Duration::from_millis(wait)).await.map_err(Error::internal)?;
        }
        Ok(())
    }

    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn typing_rows(&self) -> crate::Result<Vec<TypingRow>> {
        self.sql().exec("SELECT user_id, expires_ts FROM typing ORDER BY user_id", None).and_then(|c| c.to_array()).map_err(Error::internal)
    }

    async fn typing(&self, room_id: String, user_id: String, typing: bool, timeout: Option<u64>) -> crate::Result<()> {
        let _lock = self.typing_lock.lock().await;
        let sql = self.sql();
        sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('room_id', ?)", vec![room_id.clone().into()]).map_err(Error::internal)?;
        let was: Vec<String> = self.typing_rows()?.into_iter().map(|r| r.user_id).collect();
        if typing {
            let ms = timeout.unwrap_or(30_000).min(MAX_TYPING_MS);
            let expires = (now_ms() + ms) as f64;
            sql.exec("INSERT OR REPLACE INTO typing (user_id, expires_ts) VALUES (?, ?)", vec![user_id.into(), expires.into()])
                .map_err(Error::internal)?;
        } else {
            sql.exec("DELETE FROM typing WHERE user_id = ?", vec![user_id.into()]).map_err(Error::internal)?;
        }
        self.publish(&room_id, was).await
    }

    async fn expire_typing(&self) -> crate::Result<()> {
        let _lock = self.typing_lock.lock().await;
        let room_id: Vec<serde_json::Value> =
            self.sql().exec("SELECT v FROM meta WHERE k = 'room_id'", None).and_then(|c| c.to_array()).map_err(Error::internal)?;
        let Some(room_id) = room_id.first().and_then(|r| r["v"].as_str()).map(str::to_owned) else { return Ok(()) };
        let was: Vec<String> = self.typing_rows()?.into_iter().map(|r| r.user_id).collect();
        self.publish(&room_id, was.clone()).await?;
        // Our users whose typing timed out: the room's other servers are told it stopped (they
        // would otherwise show it until their own, longer, expiry).
        let config = load_config(&self.env)?;
        let still: Vec<String> = self.typing_rows()?.into_iter().map(|r| r.user_id).collect();
        let ours = config.server_name.as_str();
        let stopped: Vec<&String> = was.iter().filter(|u| !still.contains(u) && queue::server_of(u) == Some(ours)).collect();
        if stopped.is_empty() {
            return Ok(());
        }
        let joined = servers::joined_servers(&self.db()?, &room_id).await?;
        for user in stopped {
            let edu = json!({ "edu_type": "m.typing", "content": { "room_id": room_id, "user_id": user, "typing": false } });
            sender::send_edu(&self.env, &config, joined.iter().map(String::as_str), &edu).await;
        }
        Ok(())
    }

    /// Drops expired entries; if the set of typing users changed, writes it to D1 and wakes
    /// the joined members. Sets the alarm for the next expiry.
    async fn publish(&self, room_id: &str, was: Vec<String>) -> crate::Result<()> {
        let now = now_ms() as f64;
        self.sql().exec("DELETE FROM typing WHERE expires_ts <= ?", vec![now.into()]).map_err(Error::internal)?;
        let rows = self.typing_rows()?;
        let now_typing: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
        if !rows.is_empty() {
            self.schedule_alarm().await?;
        }
        if now_typing != was {
            let db = self.db()?;
            let config = load_config(&self.env)?;
            sstore::put_typing(&db, room_id, &now_typing).await?;
            let members = rooms::members_with(&db, room_id, "join").await?;
            wakeups::notify_users(&self.env, &config, members).await;
        }
        Ok(())
    }
}
