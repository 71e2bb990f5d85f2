//! Other servers' signing keys (tables `server_keys`, `server_key_documents`,
//! `migrations/0009_federation_keys.sql`).

use serde::Deserialize;
use serde_json::Value;

use crate::core::federation::keys::{KeyDocument, ServerKey};
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Deserialize)]
struct KeyRow {
    key_id: String,
    key: String,
    valid_until_ts: f64,
    expired_ts: Option<f64>,
}

/// Every cached key of `server`.
pub async fn keys(db: &Db, server: &str) -> Result<Vec<ServerKey>> {
    let rows: Vec<KeyRow> = db.all("SELECT key_id, key, valid_until_ts, expired_ts FROM server_keys WHERE server_name = ?", params![server]).await?;
    Ok(rows
        .into_iter()
        .map(|r| ServerKey { key_id: r.key_id, key: r.key, valid_until_ts: r.valid_until_ts as u64, expired_ts: r.expired_ts.map(|t| t as u64) })
        .collect())
}

/// Stores a checked key document and its keys in one batch. A current key's validity only
/// grows (an older document relayed later does not shorten it); a key once marked expired
/// keeps its `expired_ts` unless a newer document lists it as current again.
pub async fn store_document(db: &Db, doc: &KeyDocument, now: u64) -> Result<()> {
    let mut stmts = Vec::new();
    for k in &doc.keys {
        stmts.push(db.stmt(
            "INSERT INTO server_keys (server_name, key_id, key, valid_until_ts, expired_ts, fetched_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (server_name, key_id) DO UPDATE SET
               key = excluded.key,
               valid_until_ts = MAX(valid_until_ts, excluded.valid_until_ts),
               expired_ts = CASE WHEN excluded.expired_ts IS NULL AND excluded.valid_until_ts >= valid_until_ts THEN NULL
                                 ELSE COALESCE(excluded.expired_ts, expired_ts) END,
               fetched_ts = excluded.fetched_ts",
            params![doc.server_name, k.key_id, k.key, k.valid_until_ts, k.expired_ts, now],
        )?);
    }
    let text = serde_json::to_string(&doc.raw)?;
    stmts.push(db.stmt(
        "INSERT INTO server_key_documents (server_name, document, valid_until_ts, fetched_ts) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (server_name) DO UPDATE SET document = excluded.document, valid_until_ts = excluded.valid_until_ts,
           fetched_ts = excluded.fetched_ts
         WHERE excluded.valid_until_ts >= server_key_documents.valid_until_ts",
        params![doc.server_name, text, doc.valid_until_ts, now],
    )?);
    db.batch(stmts).await?;
    Ok(())
}

/// The newest stored key document of `server` and its `valid_until_ts`.
pub async fn document(db: &Db, server: &str) -> Result<Option<(Value, u64)>> {
    #[derive(Deserialize)]
    struct R {
        document: String,
        valid_until_ts: f64,
    }
    let row: Option<R> = db.first("SELECT document, valid_until_ts FROM server_key_documents WHERE server_name = ?", params![server]).await?;
    Ok(row.and_then(|r| serde_json::from_str(&r.document).ok().map(|d| (d, r.valid_until_ts as u64))))
}
