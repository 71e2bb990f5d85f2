//! The `UserKeys` Durable Object.

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object]
pub struct UserKeys {
    #[allow(dead_code)]
    state: State,
    version: i64,
}

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS one_time_keys (device_id TEXT NOT NULL, key_id TEXT NOT NULL, algorithm TEXT NOT NULL, key_json TEXT NOT NULL, PRIMARY KEY (device_id, key_id))"];

impl DurableObject for UserKeys {
    fn new(state: State, _env: Env) -> Self {
        let version = super::migrate(&state.storage().sql(), SCHEMA).unwrap_or(-1);
        Self { state, version }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/health" => super::health("UserKeys", self.version),
            _ => Response::error("Not found", 404),
        }
    }
}
