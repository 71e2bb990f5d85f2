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
