//! Durable Object classes (SQLite-backed; see `wrangler.toml` `[[migrations]]`).
//!
//! - [`UserKeys`]: one per user; atomic one-time-key claims.
//! - [`Room`]: one per room; typing, receipts, real-time coordination.
//! - [`UserSync`]: one per user; to-device queues and sync wake-ups.
//!
//! Each answers `GET /health` with its class name and its SQLite schema version, which the
//! integration tests call through `/_stratus/health`. Their real work lands with the issues
//! that need it (sync, E2EE).

mod room;
mod user_keys;
mod user_sync;

pub use room::Room;
pub use user_keys::UserKeys;
pub use user_sync::UserSync;

use worker::{Response, Result, SqlStorage};

/// Creates the object's tables once per instance; returns the schema version.
pub(crate) fn migrate(sql: &SqlStorage, schema: &[&str]) -> Result<i64> {
    sql.exec("CREATE TABLE IF NOT EXISTS _schema (version INTEGER NOT NULL)", None)?;
    #[derive(serde::Deserialize)]
    struct V {
        version: i64,
    }
    let current: Vec<V> = sql.exec("SELECT version FROM _schema", None)?.to_array()?;
    let mut version = current.first().map(|v| v.version).unwrap_or(0);
    for (i, stmt) in schema.iter().enumerate() {
        let target = i as i64 + 1;
        if version < target {
            sql.exec(stmt, None)?;
            version = target;
        }
    }
    sql.exec("DELETE FROM _schema", None)?;
    sql.exec("INSERT INTO _schema (version) VALUES (?)", vec![version.into()])?;
    Ok(version)
}

pub(crate) fn health(class: &str, version: i64) -> Result<Response> {
    Response::from_json(&serde_json::json!({ "class": class, "schema_version": version }))
}
