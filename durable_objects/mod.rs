//! Durable Object classes (SQLite-backed; see `wrangler.toml` `[[migrations]]`).
//!
//! - [`UserKeys`]: one per user; atomic one-time-key claims.
//! - [`Room`]: one per room; the room's single writer, and typing.
//! - [`UserSync`]: one per user; to-device queues and sync wake-ups.
//! - [`Destination`]: one per remote server; the outbound federation queue.
//! - [`RateLimiter`]: one per rate-limit bucket and key; request rate limits.
//!
//! Each class has one protocol ([`protocol`]): a request enum and a response enum. Callers
//! use [`crate::service::objects::call`]; each object reads the request with [`read`] and
//! answers with [`answer`], errors as the normal Matrix error body. Every class answers the
//! health request with its class name and its SQLite schema version (`/_stratus/health`).

pub mod protocol;

#[cfg(target_arch = "wasm32")]
mod destination;
#[cfg(target_arch = "wasm32")]
mod rate_limiter;
#[cfg(target_arch = "wasm32")]
mod room;
#[cfg(target_arch = "wasm32")]
mod user_keys;
#[cfg(target_arch = "wasm32")]
mod user_sync;

#[cfg(target_arch = "wasm32")]
pub use destination::Destination;
#[cfg(target_arch = "wasm32")]
pub use rate_limiter::RateLimiter;
#[cfg(target_arch = "wasm32")]
pub use room::Room;
#[cfg(target_arch = "wasm32")]
pub use user_keys::UserKeys;
#[cfg(target_arch = "wasm32")]
pub use user_sync::UserSync;

#[cfg(target_arch = "wasm32")]
pub(crate) use glue::{answer, health, migrate, read};

#[cfg(target_arch = "wasm32")]
mod glue {
    use worker::{Request, Response, SqlStorage};

    use super::protocol::{Health, Protocol};
    use crate::err;
    use crate::error::Error;

    /// Creates the object's tables once per instance; returns the schema version.
    pub(crate) fn migrate(sql: &SqlStorage, schema: &[&str]) -> worker::Result<i64> {
        sql.exec("CREATE TABLE IF NOT EXISTS _schema (version INTEGER NOT NULL)", None)?;
        #[derive(serde::Deserialize)]
        struct V {
            version: i64,
        }
        let current: Vec<V> = sql.exec("SELECT version FROM _schema", None)?.to_array()?;
        let stored = current.first().map(|v| v.version);
        let mut version = stored.unwrap_or(0);
        for (i, stmt) in schema.iter().enumerate() {
            let target = i as i64 + 1;
            if version < target {
                sql.exec(stmt, None)?;
                version = target;
            }
        }
        // Objects that hibernate are rebuilt often: write only when the version moved.
        if stored == Some(version) {
            return Ok(version);
        }
        sql.exec("DELETE FROM _schema", None)?;
        sql.exec("INSERT INTO _schema (version) VALUES (?)", vec![version.into()])?;
        Ok(version)
    }

    /// The health answer.
    pub(crate) fn health<P: Protocol>(version: i64) -> Health {
        Health { class: P::CLASS.to_owned(), schema_version: version }
    }

    /// Reads the request a caller sent ([`crate::service::objects::call`]).
    pub(crate) async fn read<P: Protocol>(req: &mut Request) -> crate::Result<P::Request> {
        let text = req.text().await.map_err(Error::internal)?;
        serde_json::from_str(&text).map_err(|e| err!(BadJson, "{} request: {e}", P::CLASS))
    }

    /// The response, or the error as its status and Matrix error body.
    pub(crate) fn answer<P: Protocol>(result: crate::Result<P::Response>) -> worker::Result<Response> {
        match result {
            Ok(r) => Response::from_json(&r),
            Err(e) => {
                let (status, body) = e.to_response();
                Ok(Response::from_json(&body)?.with_status(status))
            }
        }
    }
}
