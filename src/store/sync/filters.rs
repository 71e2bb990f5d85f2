//! The `filters` table: stored sync filters, numbered per user.

use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::params;
use crate::store::db::Db;

pub async fn put_filter(db: &Db, user: &str, json: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct R {
        filter_id: f64,
    }
    let rows: Vec<R> = db
        .all(
            "INSERT INTO filters (user_id, filter_id, json)
             VALUES (?1, (SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?1), ?2) RETURNING filter_id",
            params![user, json],
        )
        .await?;
    Ok(rows.first().map(|r| r.filter_id as u64).unwrap_or(0))
}

pub async fn get_filter(db: &Db, user: &str, id: u64) -> Result<Option<Value>> {
    #[derive(Deserialize)]
    struct R {
        json: String,
    }
    Ok(db
        .first::<R>("SELECT json FROM filters WHERE user_id = ? AND filter_id = ?", params![user, id])
        .await?
        .and_then(|r| serde_json::from_str(&r.json).ok()))
}
