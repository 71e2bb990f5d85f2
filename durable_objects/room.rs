//! The `Room` Durable Object: one per room. It is the room's single writer: every event
//! appended to an existing room goes through [`Room::append`] under a lock, so `prev_events`,
//! depth and the state the auth rules see are never raced by a concurrent send. Typing and
//! receipts arrive here with the sync issue.

use futures_util::lock::Mutex;
use ruma::RoomId;
use serde::Deserialize;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use crate::ctx::load_config;
use crate::error::Error;
use crate::service::timeline::{self, NewEventWire, Txn};
use crate::store::db::Db;

#[durable_object]
pub struct Room {
    #[allow(dead_code)]
    state: State,
    env: Env,
    version: i64,
    /// Held while an append is in flight: D1 calls are real I/O, during which the runtime
    /// would otherwise deliver the next request.
    writer: Mutex<()>,
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS typing (user_id TEXT PRIMARY KEY, expires_ts INTEGER NOT NULL)"];

#[derive(Deserialize)]
struct AppendRequest {
    room_id: String,
    events: Vec<NewEventWire>,
    txn: Option<Txn>,
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, env, version, writer: Mutex::new(()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (_, "/health") => super::health("Room", self.version),
            (Method::Post, "/append") => {
                let body: AppendRequest = req.json().await?;
                let result = self.append(body).await;
                let (status, json) = match result {
                    Ok(ids) => (200, serde_json::json!({ "event_ids": ids })),
                    Err(e) => e.to_response(),
                };
                Ok(Response::from_json(&json)?.with_status(status))
            }
            _ => Response::error("Not found", 404),
        }
    }
}

impl Room {
    async fn append(&self, body: AppendRequest) -> crate::Result<Vec<String>> {
        let _writer = self.writer.lock().await;
        let config = load_config(&self.env)?;
        let db = Db::new(self.env.d1("DB").map_err(Error::internal)?);
        let room_id = RoomId::parse(&body.room_id).map_err(|_| crate::err!(InvalidParam, "Invalid room ID"))?;
        let news = body.events.into_iter().map(NewEventWire::into_new).collect::<crate::Result<Vec<_>>>()?;
        let pdus = timeline::append(&db, &config, Some(&room_id), news, body.txn).await?;
        Ok(pdus.iter().map(|p| p.event_id.to_string()).collect())
    }
}
