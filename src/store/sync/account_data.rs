//! The `account_data` table: global and per-room account data, one stream.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Debug, Deserialize, Clone)]
pub struct AccountDataRow {
    pub room_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

pub async fn account_data_since(db: &Db, user: &str, after: u64, up_to: u64) -> Result<Vec<AccountDataRow>> {
    db.all("SELECT room_id, type, content FROM account_data WHERE user_id = ? AND stream > ? AND stream <= ?", params![user, after, up_to]).await
}

pub async fn get_account_data(db: &Db, user: &str, room_id: &str, kind: &str) -> Result<Option<Value>> {
    #[derive(Deserialize)]
    struct R {
        content: String,
    }
    Ok(db
        .first::<R>("SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?", params![user, room_id, kind])
        .await?
        .and_then(|r| serde_json::from_str(&r.content).ok()))
}

pub fn put_account_data_stmt(db: &Db, user: &str, room_id: &str, kind: &str, content: &Value) -> Result<worker::D1PreparedStatement> {
    db.stmt(
        "INSERT INTO account_data (user_id, room_id, type, content, stream)
         VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(stream), 0) + 1 FROM account_data))
         ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream = excluded.stream",
        params![user, room_id, kind, content.to_string()],
    )
}

pub async fn put_account_data(db: &Db, user: &str, room_id: &str, kind: &str, content: &Value) -> Result<()> {
    db.batch(vec![put_account_data_stmt(db, user, room_id, kind, content)?]).await?;
    Ok(())
}

/// All the user's account data of the given rooms as of `up_to` (sliding sync: rooms the
/// client receives for the first time on a connection). One batch, a statement per chunk
/// of rooms.
pub async fn room_account_data(db: &Db, user: &str, rooms: &[String], up_to: u64) -> Result<Vec<AccountDataRow>> {
    let mut stmts = Vec::new();
    for chunk in rooms.chunks(super::MAX_PARAMS - 2) {
        let sql = format!(
            "WITH t(rid) AS (VALUES {}) SELECT room_id, type, content FROM account_data JOIN t ON room_id = t.rid
             WHERE user_id = ? AND stream <= ?",
            super::values_clause(chunk.len(), 1)
        );
        let mut p: Vec<serde_json::Value> = chunk.iter().map(|r| r.as_str().into()).collect();
        p.extend(params![user, up_to]);
        stmts.push(db.stmt(&sql, p)?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    let rows = db.batch_rows(stmts).await?;
    Ok(rows.into_iter().flatten().filter_map(|v| serde_json::from_value(v).ok()).collect())
}
