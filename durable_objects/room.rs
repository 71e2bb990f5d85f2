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
//! an evicted object loads it again (one round trip). A send's cached access token is
//! confirmed by a guard in the same batch (`store::tokens::guard_stmt`). For a group of
//! messages the push actions are computed before the batch from the cached
//! [`PushContext`] and written in it (guarded by the members' push-rules version), every
//! request is answered right after the batch, and the members' syncs are woken and our
//! events queued for federation in the background, in commit order. A group with state
//! events instead ends its batch with the fan-out's reads (members, their push rules),
//! wakes, then writes the push actions ([`crate::service::notify::record_with`]) before
//! answering; the next group commits meanwhile.
//!
//! It also keeps who is typing (spec: client-server-api, "Typing Notifications"): each
//! typing user with the expiry of the timeout they asked for, in the object's SQLite, with an
//! alarm at the next expiry. Every change is written to D1 `room_typing` (the typing stream
//! `/sync` reads) and wakes the joined members.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;
use futures_util::lock::{Mutex, MutexGuard};
use ruma::{RoomId, ServerName};
use serde::Deserialize;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::core::federation::queue;
use crate::core::room::pdu::Pdu;
use crate::core::time::now_ms;
use crate::ctx::load_config;
use crate::error::Error;
use crate::service::federation::{acl, ingest, sender};
use crate::service::notify::{self, PushContext};
use crate::service::timeline::{self, Queued, RoomCache, Sent};
use crate::service::wakeups;
use crate::store::db::Db;
use crate::store::{fanout, graph, rooms, servers, sync as sstore, tokens};

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
    fanout: Arc<Mutex<()>>,
    /// What push-rule evaluation needs (members, their rules, power levels, display names),
    /// read by the last batch that had state events; valid while only messages follow and
    /// the members' push rules stay the same (the batch checks their version). Dropped with
    /// `cache`, except by an ingest, which uses it for messages and hands back the one valid
    /// after it (`ingest::Accepted::push`).
    push: RefCell<Option<Rc<PushContext>>>,
    /// The room's version and current server ACL as `PUT /send`'s PDUs are checked against
    /// (`graph::room_acls`): this object writes the room's current state, so it drops this
    /// whenever a write may change the ACL (a state event or a redaction of ours, an ingest
    /// that moved the ACL or redacted, a join, backfill or purge). Not dropped by [`Self::forget`].
    acl: RefCell<Option<graph::TxnRoom>>,
    /// The room's row as the last ingest's writes left it (`ingest::Ingest::take_row`): the
    /// next ingest starts from it instead of reading it, and a PDU on the room's one
    /// extremity is then checked without a read. Dropped by every other write (a local
    /// append, whose cache then gives the head instead; [`Self::forget`]).
    ingest_row: RefCell<Option<rooms::RoomRow>>,
}

/// An append's answer: its event IDs and the group's D1 round trips.
type Answer = crate::Result<(Vec<String>, u32)>;

/// A queued append and where its answer goes.
struct Waiting {
    q: Queued,
    /// A cached access token to confirm in the batch (see `timeline::send_via_room`).
    confirm: Option<String>,
    /// Taken when answered.
    reply: Option<oneshot::Sender<Answer>>,
}

impl Waiting {
    fn answer(mut self, r: Answer) {
        self.answer_ref(r);
    }

    fn answer_ref(&mut self, r: Answer) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(r);
        }
    }

    /// The request's sender (every event of a request has the same one).
    fn sender(&self) -> &str {
        self.q.news.first().map(|n| n.sender.as_str()).unwrap_or_default()
    }
}

/// What follows a group's commit.
enum Fan {
    /// Push actions written in the batch: answer, then wake (the pushes go to gateways).
    Ready(Rc<PushContext>, Vec<notify::PendingPush>),
    /// Wake, then write the push actions, then answer.
    Record(Rc<PushContext>),
    /// Appended one by one: the whole fan-out from D1 (`notify::after_append`).
    Full,
    Nothing,
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
            fanout: Arc::new(Mutex::new(())),
            push: RefCell::new(None),
            acl: RefCell::new(None),
            ingest_row: RefCell::new(None),
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
            RoomRequest::Append { room_id, events, txn, confirm_token } => {
                let (event_ids, d1_round_trips) = self.append(room_id, events, txn, confirm_token).await?;
                RoomResponse::Sent { event_ids, d1_round_trips }
            }
            RoomRequest::Ingest { room_id, origin, pdus } => {
                let (results, d1_round_trips) = self.ingest(room_id, origin, pdus).await?;
                RoomResponse::Ingested { results, d1_round_trips }
            }
            RoomRequest::JoinRemote { room_id, room_version, origin, join_event, state, auth_chain } => {
                let _writer = self.writer.lock().await;
                self.forget_all();
                let ctx = self.ctx()?;
                let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
                let origin = ServerName::parse(&origin).map_err(|_| crate::err!(InvalidParam, "Invalid server name"))?;
                let id = ingest::store_remote_join(&ctx, &room_id, &room_version, &origin, &join_event, &state, &auth_chain).await?;
                RoomResponse::Appended { event_ids: vec![id.to_string()] }
            }
            RoomRequest::Backfill { room_id, from, limit } => {
                let _writer = self.writer.lock().await;
                self.forget_all();
                let ctx = self.ctx()?;
                let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
                let from: Vec<ruma::OwnedEventId> = from.iter().filter_map(|e| ruma::EventId::parse(e).ok()).collect();
                RoomResponse::Appended { event_ids: ingest::backfill_room(&ctx, &room_id, &from, limit).await? }
            }
            RoomRequest::Purge { room_id } => {
                let _writer = self.writer.lock().await;
                self.forget_all();
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
        self.push.borrow_mut().take();
        self.ingest_row.borrow_mut().take();
    }

    /// [`Self::forget`], and the cached server ACL too: a write that brings state from
    /// elsewhere (a remote join, backfill) or removes the room (purge).
    fn forget_all(&self) {
        self.forget();
        self.acl.borrow_mut().take();
    }

    /// Queues the request; whoever gets the writer lock next appends everything queued as
    /// one group (this request's or a later one's caller). Returns the event IDs and the
    /// group's D1 round trips.
    async fn append(
        &self,
        room_id: String,
        events: Vec<NewEventWire>,
        txn: Option<Txn>,
        confirm: Option<String>,
    ) -> crate::Result<(Vec<String>, u32)> {
        let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let news = events.into_iter().map(NewEventWire::into_new).collect::<crate::Result<Vec<_>>>()?;
        let (reply, answer) = oneshot::channel();
        self.queue.borrow_mut().push(Waiting { q: Queued { news, txn }, confirm, reply: Some(reply) });
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
    /// members and queues federation (in commit order, after releasing the writer lock).
    /// With the room's [`PushContext`] known and only non-state events in the group, the
    /// push actions are written in the group's batch and every request is answered right
    /// after it (the wake-ups follow in the background); otherwise the push actions are
    /// written after the wake-ups and the answers wait for them (send-then-sync sees the
    /// unread counts either way).
    async fn commit(&self, writer: MutexGuard<'_, ()>, room_id: &RoomId, mut items: Vec<Waiting>) {
        // The head moves (the append cache follows it).
        self.ingest_row.borrow_mut().take();
        if items.iter().flat_map(|w| &w.q.news).any(|n| n.state_key.is_some() || n.kind == "m.room.redaction") {
            // May change the room's server ACL (or redact it).
            self.acl.borrow_mut().take();
        }
        let setup = load_config(&self.env).and_then(|c| Ok((c, self.db()?)));
        let (config, db) = match setup {
            Ok(x) => x,
            Err(e) => {
                for w in items {
                    w.answer(Err(timeline::same_error(&e)));
                }
                return;
            }
        };
        let mut attempt = 0;
        let (outcomes, fan) = loop {
            attempt += 1;
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
            let Some(c) = cache.as_mut() else {
                self.screen_out(&db, room_id, &mut items, None, false).await;
                break (self.one_by_one(&db, &config, room_id, &items).await, Fan::Full);
            };
            let reqs: Vec<Queued> = items.iter().map(|w| w.q.clone()).collect();
            let prepared = match timeline::prepare_group(&db, &config, c, &reqs).await {
                Ok(p) => p,
                Err(e) => {
                    worker::console_error!("group append in {room_id}: {e}");
                    self.forget();
                    break (items.iter().map(|_| Err(timeline::same_error(&e))).collect(), Fan::Nothing);
                }
            };
            if prepared.pdus.is_empty() {
                // Nothing to write (repeats, refusals): cached tokens are confirmed by a read.
                *self.cache.borrow_mut() = cache;
                let mut outcomes = prepared.outcomes;
                self.screen_out(&db, room_id, &mut items, Some(&mut outcomes), false).await;
                break (outcomes, Fan::Nothing);
            }
            let guards: crate::Result<Vec<_>> =
                items.iter().filter_map(|w| w.confirm.as_deref().map(|h| tokens::guard_stmt(&db, h, w.sender()))).collect();
            // State events (and redactions, which may change a member's display name or the power
            // levels) change what the rules read: those groups read it again after their writes.
            let pc = self
                .push
                .borrow()
                .clone()
                .filter(|_| !prepared.pdus.iter().any(|p| p.state_key.is_some() || p.kind == ruma::events::TimelineEventType::RoomRedaction));
            let planned = match &pc {
                Some(pc) => match notify::push_plan(&db, &config, pc, &prepared.pdus).await {
                    Ok((mut stmts, pushes)) => fanout::push_rules_guard_stmt(&db, room_id.as_str(), &pc.version).map(|g| {
                        stmts.push(g);
                        (stmts, pushes)
                    }),
                    Err(e) => Err(e),
                },
                None => Err(Error::internal("no push context")),
            };
            let (after, pushes) = match planned {
                Ok((stmts, pushes)) => (stmts, Some(pushes)),
                Err(_) => (vec![], None),
            };
            let guards = match guards {
                Ok(g) => g,
                Err(e) => {
                    self.forget();
                    break (items.iter().map(|_| Err(timeline::same_error(&e))).collect(), Fan::Nothing);
                }
            };
            let guarded = !guards.is_empty() || pushes.is_some();
            match timeline::commit_group(&db, c, &reqs, prepared, guards, after, pushes.is_none()).await {
                Ok(g) => {
                    *self.cache.borrow_mut() = cache;
                    let fan = match (pushes, pc, g.fanout) {
                        (Some(pushes), Some(pc), _) => Fan::Ready(pc, pushes),
                        (_, _, Some(inputs)) => {
                            let pc = Rc::new(PushContext::new(&config, room_id, inputs));
                            *self.push.borrow_mut() = Some(pc.clone());
                            Fan::Record(pc)
                        }
                        _ => Fan::Nothing,
                    };
                    break (g.outcomes, fan);
                }
                Err(e) if crate::store::rooms::is_unique_conflict(&e) => {
                    // A transaction stored before the cache was loaded: nothing of the group
                    // was written; one by one, each repeat is answered from D1.
                    self.forget();
                    self.screen_out(&db, room_id, &mut items, None, false).await;
                    break (self.one_by_one(&db, &config, room_id, &items).await, Fan::Full);
                }
                Err(e) => {
                    // A guard failed (a revoked token, a shadow-banned sender, changed push
                    // rules): nothing was written; the others go again on a fresh cache.
                    if guarded && attempt < 3 {
                        let before = items.len();
                        let stale = self.screen_out(&db, room_id, &mut items, None, true).await;
                        self.forget();
                        if items.len() < before || stale {
                            if items.is_empty() {
                                break (vec![], Fan::Nothing);
                            }
                            continue;
                        }
                    }
                    self.forget();
                    // Whether the batch was written is not known (as for a single append
                    // before): every request of the group gets the error, nothing is retried
                    // here (a client's retry with its transaction ID is safe).
                    worker::console_error!("group append in {room_id}: {e}");
                    break (items.iter().map(|_| Err(timeline::same_error(&e))).collect(), Fan::Nothing);
                }
            }
        };
        let committed: Vec<Pdu> = outcomes.iter().filter_map(|o| if let Ok(Sent::New(p)) = o { Some(p.clone()) } else { None }).flatten().collect();
        let fanout = self.fanout.clone().lock_owned().await;
        drop(writer);
        if committed.is_empty() {
            drop(fanout);
        } else {
            match fan {
                Fan::Ready(pc, pushes) => {
                    // The push actions are in: answer now, wake in commit order after it.
                    let trips = db.round_trips();
                    for (w, o) in items.into_iter().zip(outcomes) {
                        w.answer(o.map(|s| (s.event_ids().iter().map(|e| e.to_string()).collect(), trips)));
                    }
                    let env = self.env.clone();
                    self.state.wait_until(async move {
                        let (affected, joined) = pc.audience(&committed);
                        notify::wake(&env, &config, &committed, affected, &joined).await;
                        drop(fanout);
                        notify::send_pushes_later(&env, &config, pushes);
                    });
                    return;
                }
                Fan::Record(pc) => {
                    let (affected, joined) = pc.audience(&committed);
                    notify::wake(&self.env, &config, &committed, affected, &joined).await;
                    drop(fanout);
                    notify::record_with(&self.env, &db, &config, &committed, &pc).await;
                }
                Fan::Full => {
                    if let Err(e) = notify::after_append(&self.env, &db, &config, &committed).await {
                        worker::console_error!("fan-out after append in {room_id}: {e}");
                    }
                    drop(fanout);
                }
                Fan::Nothing => drop(fanout),
            }
        }
        // Every D1 call made for the group before its answer (the push-action write too).
        let trips = db.round_trips();
        for (w, o) in items.into_iter().zip(outcomes) {
            w.answer(o.map(|s| (s.event_ids().iter().map(|e| e.to_string()).collect(), trips)));
        }
    }

    /// Confirms the cached tokens of `items` (and that their senders are not shadow-banned)
    /// with one read, answering and removing the requests that fail (`M_UNKNOWN_TOKEN`; a
    /// shadow-banned sender gets a made-up event ID, as the handler gives one), with their
    /// `outcomes` when given. Also tells whether the cached push rules are stale (then
    /// forgotten). A failed read answers nothing and changes nothing.
    async fn screen_out(
        &self,
        db: &Db,
        room_id: &RoomId,
        items: &mut Vec<Waiting>,
        outcomes: Option<&mut Vec<crate::Result<Sent>>>,
        check_push: bool,
    ) -> bool {
        let mut stmts = Vec::new();
        let mut which = Vec::new();
        for (i, w) in items.iter().enumerate() {
            if let Some(h) = &w.confirm {
                match tokens::check_stmt(db, h, w.sender()) {
                    Ok(s) => {
                        stmts.push(s);
                        which.push(i);
                    }
                    Err(e) => worker::console_error!("token check: {e}"),
                }
            }
        }
        let pc = self.push.borrow().clone();
        let check_version = check_push && pc.is_some();
        if check_version {
            match fanout::push_rules_version_stmt(db, room_id.as_str()) {
                Ok(s) => stmts.push(s),
                Err(e) => worker::console_error!("push rules version: {e}"),
            }
        }
        if stmts.is_empty() {
            return false;
        }
        let rows = match db.batch_rows(stmts).await {
            Ok(r) => r,
            Err(e) => {
                worker::console_error!("token check: {e}");
                return false;
            }
        };
        let mut stale = false;
        if check_version {
            let now = rows.get(which.len()).and_then(|r| r.first()).and_then(|v| v.get("v")).and_then(|v| v.as_str()).map(str::to_owned);
            if let (Some(pc), Some(now)) = (&pc, now) {
                if pc.version != now {
                    self.push.borrow_mut().take();
                    stale = true;
                }
            }
        }
        let mut gone = vec![false; items.len()];
        for (k, i) in which.iter().enumerate() {
            let row = rows.get(k).and_then(|r| r.first());
            let ok = row.and_then(|v| v.get("ok")).is_some_and(|v| !v.is_null());
            let banned = row.and_then(|v| v.get("banned")).and_then(|v| v.as_f64()).is_some_and(|b| b != 0.0);
            let Some(w) = items.get_mut(*i) else { continue };
            if !ok {
                w.answer_ref(Err(crate::err!(crate::error::ErrorKind::UnknownToken { soft_logout: false }, "Unknown access token")));
            } else if banned {
                w.answer_ref(Ok((vec![crate::core::crypto::decoy_event_id()], db.round_trips())));
            } else {
                continue;
            }
            if let Some(g) = gone.get_mut(*i) {
                *g = true;
            }
        }
        let mut keep = gone.iter().map(|g| !g);
        items.retain(|_| keep.next().unwrap_or(true));
        if let Some(o) = outcomes {
            let mut keep = gone.iter().map(|g| !g);
            o.retain(|_| keep.next().unwrap_or(true));
        }
        stale
    }

    /// The requests appended one at a time from D1 (no cache): when the cache cannot be
    /// loaded or a group's batch failed.
    async fn one_by_one(&self, db: &Db, config: &crate::core::config::Config, room_id: &RoomId, items: &[Waiting]) -> Vec<crate::Result<Sent>> {
        let mut out = Vec::with_capacity(items.len());
        for w in items {
            out.push(timeline::append_once(db, config, Some(room_id), w.q.news.clone(), w.q.txn.clone()).await);
        }
        out
    }

    fn ctx(&self) -> crate::Result<crate::ctx::Ctx> {
        crate::ctx::Ctx::new(self.env.clone(), None)
    }

    /// PDUs from another server, under the writer lock (the room's single writer); their
    /// outcomes and the D1 round trips made for them.
    async fn ingest(&self, room_id: String, origin: String, pdus: Vec<serde_json::Value>) -> crate::Result<(Vec<PduResult>, u32)> {
        let _writer = self.writer.lock().await;
        let ctx = self.ctx()?;
        let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let origin = ServerName::parse(&origin).map_err(|_| crate::err!(InvalidParam, "Invalid server name"))?;
        // Taken before `forget`: it stays valid while the room's state does (the ingest
        // drops it when an event changes that state, and hands back the one valid after).
        let push = self.push.borrow().clone();
        // The room's head as this object's last write left it: an ingest's row, else the
        // append cache's (valid under the writer lock whenever it is there).
        let row = self
            .ingest_row
            .borrow_mut()
            .take()
            .or_else(|| self.cache.borrow().as_ref().filter(|c| c.room_id() == Some(&*room_id)).and_then(RoomCache::head_row));
        self.forget();
        // The server ACL first (cached; else read beside the ingest's own first reads).
        let cached = self.acl.borrow().clone();
        let (room, started) = match cached {
            Some(r) => (Some(r), ingest::Ingest::new(&ctx, &room_id, &origin).await),
            None => {
                let (read, started) =
                    futures_util::future::join(graph::room_acls(&ctx.db, &[room_id.as_str()]), ingest::Ingest::new(&ctx, &room_id, &origin)).await;
                let room = read?.remove(room_id.as_str());
                *self.acl.borrow_mut() = room.clone();
                (room, started)
            }
        };
        let Some(room) = room else { return Err(crate::err!(NotFound, "Unknown room")) };
        if let Some(refused) = acl::refusals(room.acl.as_ref(), &room.room_version, &origin, &pdus) {
            let results = refused.into_iter().map(|(event_id, why)| PduResult { event_id, accepted: false, error: Some(why) }).collect();
            return Ok((results, ctx.db.round_trips()));
        }
        let mut ingest = started?;
        ingest.accepted.with_push(push);
        ingest.with_row(row);
        let outcomes = ingest.pdus(&pdus).await;
        if ingest.acl_may_change {
            self.acl.borrow_mut().take();
        }
        // Not after a failed write (whether it was written is not known).
        if !outcomes.iter().any(|(_, o)| matches!(o, ingest::Outcome::Deferred(_))) {
            *self.push.borrow_mut() = ingest.accepted.push();
            *self.ingest_row.borrow_mut() = ingest.take_row();
        }
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
        Ok((results, ctx.db.round_trips()))
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
            if ingest.acl_may_change {
                self.acl.borrow_mut().take();
            }
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
