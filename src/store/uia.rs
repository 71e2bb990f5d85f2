//! User-interactive auth sessions in D1.

use serde::Deserialize;

use crate::core::crypto::random_alpha;
use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// Sessions older than this are forgotten.
pub const SESSION_LIFETIME_MS: u64 = 30 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub operation: String,
    pub user_id: Option<String>,
    pub completed: String,
}

impl Session {
    pub fn completed(&self) -> Vec<String> {
        serde_json::from_str(&self.completed).unwrap_or_default()
    }
}

pub async fn create(db: &Db, operation: &str, user_id: Option<&str>) -> Result<String> {
    let id = random_alpha(24);
    let now = now_ms();
    db.batch(vec![
        db.stmt("DELETE FROM uia_sessions WHERE created_ts < ?", params![now.saturating_sub(SESSION_LIFETIME_MS)])?,
        db.stmt("INSERT INTO uia_sessions (session_id, operation, user_id, created_ts) VALUES (?, ?, ?, ?)", params![id, operation, user_id, now])?,
    ])
    .await?;
    Ok(id)
}

pub async fn get(db: &Db, session_id: &str) -> Result<Option<Session>> {
    db.first(
        "SELECT session_id, operation, user_id, completed FROM uia_sessions WHERE session_id = ? AND created_ts > ?",
        params![session_id, now_ms().saturating_sub(SESSION_LIFETIME_MS)],
    )
    .await
}

pub async fn set_completed(db: &Db, session_id: &str, completed: &[String]) -> Result<()> {
    db.run("UPDATE uia_sessions SET completed = ? WHERE session_id = ?", params![serde_json::to_string(completed)?, session_id]).await?;
    Ok(())
}

// A completed session is ended by `store::admin::finish_uia_session`, which also counts the
// registration token use it held (migration 0017).
