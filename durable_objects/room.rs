//! The `Room` Durable Object.

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object]
pub struct Room {
    #[allow(dead_code)]
    state: State,
    version: i64,
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS typing (user_id TEXT PRIMARY KEY, expires_ts INTEGER NOT NULL)"];

impl DurableObject for Room {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, version }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/health" => super::health("Room", self.version),
            _ => Response::error("Not found", 404),
        }
    }
}
