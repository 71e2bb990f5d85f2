//! The `room_typing` table: who is typing in each room, one stream.

use serde::Deserialize;

use crate::error::Result;
use crate::params;
use crate::store::db::Db;

pub async fn typing_since(db: &Db, user: &str, after: u64, up_to: u64) -> Result<Vec<(String, Vec<String>)>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
        user_ids: String,
    }
    let rows: Vec<R> = db
        .all(
            "SELECT room_id, user_ids FROM room_typing WHERE stream > ? AND stream <= ?
               AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ? AND membership = 'join')",
            params![after, up_to, user],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.room_id, serde_json::from_str(&r.user_ids).unwrap_or_default())).collect())
}

pub async fn put_typing(db: &Db, room_id: &str, users: &[String]) -> Result<()> {
    db.run(
        "INSERT INTO room_typing (room_id, user_ids, stream) VALUES (?, ?, (SELECT COALESCE(MAX(stream), 0) + 1 FROM room_typing))
         ON CONFLICT (room_id) DO UPDATE SET user_ids = excluded.user_ids, stream = excluded.stream",
        params![room_id, serde_json::to_string(users)?],
    )
    .await?;
    Ok(())
}

/// Who is typing now, as of `up_to`, in those of the given rooms the user is joined to and
/// where someone is (sliding sync: rooms the client receives for the first time). One
/// batch, a statement per chunk of rooms.
pub async fn typing_in_rooms(db: &Db, user: &str, rooms: &[String], up_to: u64) -> Result<Vec<(String, Vec<String>)>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
        user_ids: String,
    }
    let mut stmts = Vec::new();
    for chunk in rooms.chunks(super::MAX_PARAMS - 2) {
        let sql = format!(
            "SELECT room_id, user_ids FROM room_typing
             WHERE room_id IN ({}) AND stream <= ?{} AND user_ids != '[]'
               AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ?{} AND membership = 'join')",
            (1..=chunk.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "),
            chunk.len() + 1,
            chunk.len() + 2
        );
        let mut p: Vec<serde_json::Value> = chunk.iter().map(|r| r.as_str().into()).collect();
        p.extend(params![up_to, user]);
        stmts.push(db.stmt(&sql, p)?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    let rows = db.batch_rows(stmts).await?;
    Ok(rows
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_value::<R>(v).ok())
        .map(|r| (r.room_id, serde_json::from_str(&r.user_ids).unwrap_or_default()))
        .collect())
}
