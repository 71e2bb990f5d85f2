//! The `receipts` table: read receipts, one stream.

use serde::Deserialize;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Debug, Deserialize, Clone)]
pub struct ReceiptRow {
    pub room_id: String,
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: f64,
}

/// Receipts in the user's joined rooms in `(after, up_to]`; private ones only the user's own.
pub async fn receipts_since(db: &Db, user: &str, after: u64, up_to: u64) -> Result<Vec<ReceiptRow>> {
    db.all(
        "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts
         WHERE stream > ?1 AND stream <= ?2
           AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ?3 AND membership = 'join')
           AND (receipt_type != 'm.read.private' OR user_id = ?3)",
        params![after, up_to, user],
    )
    .await
}

pub async fn put_receipt(db: &Db, room_id: &str, user: &str, kind: &str, thread_id: &str, event_id: &str, event_stream: u64) -> Result<()> {
    db.run(
        "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_stream, ts, stream)
         VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(stream), 0) + 1 FROM receipts))
         ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id,
           event_stream = excluded.event_stream, ts = excluded.ts, stream = excluded.stream
         WHERE excluded.event_stream > receipts.event_stream",
        params![room_id, user, kind, thread_id, event_id, event_stream, now_ms()],
    )
    .await?;
    Ok(())
}

/// The receipts of rooms a client receives for the first time (sliding sync), as of
/// `up_to`: in each of the given rooms the user is joined to, the `per_room` public
/// receipts on the latest events, and all of the user's own. One batch, a statement per
/// chunk of rooms.
pub async fn latest_receipts(db: &Db, user: &str, rooms: &[String], per_room: u32, up_to: u64) -> Result<Vec<ReceiptRow>> {
    let mut stmts = Vec::new();
    for chunk in rooms.chunks(super::MAX_PARAMS - 3) {
        let sql = format!(
            "WITH t(rid) AS (
               SELECT column1 FROM (VALUES {}) WHERE column1 IN (SELECT room_id FROM memberships WHERE user_id = ?1 AND membership = 'join'))
             SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM (
               SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.room_id ORDER BY r.event_stream DESC, r.stream DESC) AS rn
               FROM receipts r JOIN t ON r.room_id = t.rid
               WHERE r.stream <= ?2 AND r.receipt_type != 'm.read.private' AND r.user_id != ?1
             ) WHERE rn <= ?3
             UNION ALL
             SELECT r.room_id, r.user_id, r.receipt_type, r.thread_id, r.event_id, r.ts
             FROM receipts r JOIN t ON r.room_id = t.rid WHERE r.user_id = ?1 AND r.stream <= ?2",
            // ?1..?3 are the first three parameters; the room IDs follow as ?4, ?5, …
            (0..chunk.len()).map(|i| format!("(?{})", i + 4)).collect::<Vec<_>>().join(", ")
        );
        let mut p = params![user, up_to, per_room];
        p.extend(chunk.iter().map(|r| serde_json::Value::from(r.as_str())));
        stmts.push(db.stmt(&sql, p)?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    let rows = db.batch_rows(stmts).await?;
    Ok(rows.into_iter().flatten().filter_map(|v| serde_json::from_value(v).ok()).collect())
}
