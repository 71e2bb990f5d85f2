//! The `Room` Durable Object: one per room. It is the room's single writer: every event
//! appended to an existing room goes through [`Room::append`] under a lock, so `prev_events`,
//! depth and the state the auth rules see are never raced by a concurrent send. After each
//! append it records push actions and wakes the members' syncs
//! ([`crate::service::notify::after_append`]).
//!
//! It also keeps who is typing (spec: client-server-api, "Typing Notifications"): each
//! typing user with the expiry of the timeout they asked for, in the object's SQLite, with an
//! alarm at the next expiry. Every change is written to D1 `room_typing` (the typing stream
//! `/sync` reads) and wakes the joined members.

use futures_util::lock::Mutex;
use ruma::{RoomId, ServerName};
use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::core::time::now_ms;
use crate::ctx::load_config;
use crate::error::Error;
use crate::service::federation::ingest;
use crate::service::{timeline, wakeups};
use crate::store::db::Db;
use crate::store::{rooms, sync as sstore};

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
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS typing (user_id TEXT PRIMARY KEY, expires_ts INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
];

/// Typing timeouts are capped (clients send 30 s).
const MAX_TYPING_MS: u64 = 120_000;

#[derive(Deserialize)]
struct TypingRow {
    user_id: String,
    expires_ts: f64,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, env, version, writer: Mutex::new(()), typing_lock: Mutex::new(()) }
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
        Response::ok("")
    }
}

impl Room {
    async fn handle(&self, request: RoomRequest) -> crate::Result<RoomResponse> {
        Ok(match request {
            RoomRequest::Health => RoomResponse::Health(super::health::<RoomProto>(self.version)),
            RoomRequest::Append { room_id, events, txn } => RoomResponse::Appended { event_ids: self.append(room_id, events, txn).await? },
            RoomRequest::Ingest { room_id, origin, pdus } => RoomResponse::Ingested { results: self.ingest(room_id, origin, pdus).await? },
            RoomRequest::JoinRemote { room_id, room_version, origin, join_event, state, auth_chain } => {
                let _writer = self.writer.lock().await;
                let ctx = self.ctx()?;
                let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
                let origin = ServerName::parse(&origin).map_err(|_| crate::err!(InvalidParam, "Invalid server name"))?;
                let id = ingest::store_remote_join(&ctx, &room_id, &room_version, &origin, &join_event, &state, &auth_chain).await?;
                RoomResponse::Appended { event_ids: vec![id.to_string()] }
            }
            RoomRequest::Backfill { room_id, from, limit } => {
                let _writer = self.writer.lock().await;
                let ctx = self.ctx()?;
                let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
                let from: Vec<ruma::OwnedEventId> = from.iter().filter_map(|e| ruma::EventId::parse(e).ok()).collect();
                RoomResponse::Appended { event_ids: ingest::backfill_room(&ctx, &room_id, &from, limit).await? }
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

    async fn append(&self, room_id: String, events: Vec<NewEventWire>, txn: Option<Txn>) -> crate::Result<Vec<String>> {
        let _writer = self.writer.lock().await;
        let config = load_config(&self.env)?;
        let db = self.db()?;
        let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let news = events.into_iter().map(NewEventWire::into_new).collect::<crate::Result<Vec<_>>>()?;
        // Append and fan out (push actions, sync wake-ups): the one write path.
        let pdus = timeline::write(&self.env, &db, &config, Some(&room_id), news, txn).await?;
        Ok(pdus.iter().map(|p| p.event_id.to_string()).collect())
    }

    fn ctx(&self) -> crate::Result<crate::ctx::Ctx> {
        crate::ctx::Ctx::new(self.env.clone(), None)
    }

    /// PDUs from another server, under the writer lock (the room's single writer).
    async fn ingest(&self, room_id: String, origin: String, pdus: Vec<serde_json::Value>) -> crate::Result<Vec<PduResult>> {
        let _writer = self.writer.lock().await;
        let ctx = self.ctx()?;
        let room_id = RoomId::parse(&room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let origin = ServerName::parse(&origin).map_err(|_| crate::err!(InvalidParam, "Invalid server name"))?;
        let mut ingest = ingest::Ingest::new(&ctx, &room_id, &origin).await?;
        let outcomes = ingest.pdus(&pdus).await;
        ingest::fan_out(&ctx, &ingest.accepted).await;
        Ok(outcomes
            .into_iter()
            .map(|(id, o)| PduResult {
                event_id: id.to_string(),
                accepted: o == ingest::Outcome::Accepted,
                error: match o {
                    ingest::Outcome::Rejected(why) => Some(why),
                    _ => None,
                },
            })
            .collect())
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
        self.publish(&room_id, was).await
    }

    /// Drops expired entries; if the set of typing users changed, writes it to D1 and wakes
    /// the joined members. Sets the alarm for the next expiry.
    async fn publish(&self, room_id: &str, was: Vec<String>) -> crate::Result<()> {
        let now = now_ms() as f64;
        self.sql().exec("DELETE FROM typing WHERE expires_ts <= ?", vec![now.into()]).map_err(Error::internal)?;
        let rows = self.typing_rows()?;
        let now_typing: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
        if let Some(next) = rows.iter().map(|r| r.expires_ts).fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b)))) {
            let wait = (next - now).max(1.0) as i64;
            self.state.storage().set_alarm(std::time::Duration::from_millis(wait as u64)).await.map_err(Error::internal)?;
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
