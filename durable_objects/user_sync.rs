//! The `UserSync` Durable Object.

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object]
pub struct UserSync {
    #[allow(dead_code)]
    state: State,
    version: i64,
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS to_device (device_id TEXT NOT NULL, stream_id INTEGER NOT NULL, message TEXT NOT NULL, PRIMARY KEY (device_id, stream_id))"];

impl DurableObject for UserSync {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, version }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/health" => super::health("UserSync", self.version),
            _ => Response::error("Not found", 404),
        }
    }
}
