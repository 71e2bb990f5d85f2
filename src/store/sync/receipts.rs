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
