//! Push actions (unread counts, `/notifications`) and pushers.

use crate::core::json::JsonExt;
use serde::Deserialize;
use serde_json::Value;

use super::{num, MAX_PARAMS};
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

// ---- unread counts and notifications ----

/// The unread counts of every joined room: `(room_id, thread_id, notifications, highlights)`.
const UNREAD_SELECT: &str = "SELECT p.room_id AS room_id, p.thread_id AS thread_id, COUNT(*) AS n, SUM(p.highlight) AS h";
const UNREAD_SQL: &str = "push_actions p
     JOIN memberships m ON m.room_id = p.room_id AND m.user_id = ?1 AND m.membership = 'join'
     WHERE p.user_id = ?1
       AND p.stream > m.stream
       AND p.stream > COALESCE((SELECT MAX(r.event_stream) FROM receipts r
           WHERE r.room_id = p.room_id AND r.user_id = ?1 AND r.receipt_type IN ('m.read', 'm.read.private')
             AND (r.thread_id = '' OR r.thread_id = p.thread_id)), 0)";

/// `(room_id, thread_id, notifications, highlights)` after the user's read receipts, for
/// every joined room with any. A read receipt (unthreaded, or of the event's thread) covers
/// everything up to its event; nothing from before the user's join counts (their invite).
pub async fn unread_counts(db: &Db, user: &str) -> Result<Vec<(String, String, u64, u64)>> {
    let rows: Vec<Value> = db.all(&format!("{UNREAD_SELECT} FROM {UNREAD_SQL} GROUP BY p.room_id, p.thread_id"), params![user]).await?;
    Ok(unread_of(&rows))
}

/// [`unread_counts`] as a statement for a snapshot batch, gated on the room or receipt stream
/// having moved past `(rooms, receipts)` (a one-row gate joined first, evaluated once: two
/// index seeks that find nothing when idle, so an idle poll reads no push action). The
/// caller knows from the batch's positions whether it ran ([`unread_of`] reads its rows).
pub(crate) fn unread_counts_gated_stmt(db: &Db, user: &str, rooms: u64, receipts: u64) -> Result<worker::D1PreparedStatement> {
    db.stmt(
        &format!(
            "{UNREAD_SELECT} FROM (SELECT 1 WHERE EXISTS (SELECT 1 FROM events WHERE stream > ?2) OR EXISTS (SELECT 1 FROM receipts WHERE stream > ?3))
               CROSS JOIN {UNREAD_SQL} GROUP BY p.room_id, p.thread_id"
        ),
        params![user, rooms, receipts],
    )
}

pub(crate) fn unread_of(rows: &[Value]) -> Vec<(String, String, u64, u64)> {
    rows.iter()
        .map(|r| (r["room_id"].as_str().unwrap_or("").to_owned(), r["thread_id"].as_str().unwrap_or("main").to_owned(), num(&r["n"]), num(&r["h"])))
        .collect()
}

/// [`unread_counts`] for the given rooms only (a sliding sync window: the cost follows the
/// window, not the account), one batch.
pub async fn unread_counts_in(db: &Db, user: &str, rooms: &[String]) -> Result<Vec<(String, String, u64, u64)>> {
    let mut stmts = Vec::new();
    for chunk in rooms.chunks(MAX_PARAMS - 1) {
        let sql = format!(
            "SELECT p.room_id AS room_id, p.thread_id AS thread_id, COUNT(*) AS n, SUM(p.highlight) AS h FROM push_actions p
             JOIN memberships m ON m.room_id = p.room_id AND m.user_id = ?1 AND m.membership = 'join'
             WHERE p.user_id = ?1 AND p.room_id IN ({})
               AND p.stream > m.stream
               AND p.stream > COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                   WHERE r.room_id = p.room_id AND r.user_id = ?1 AND r.receipt_type IN ('m.read', 'm.read.private')
                     AND (r.thread_id = '' OR r.thread_id = p.thread_id)), 0)
             GROUP BY p.room_id, p.thread_id",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut p = params![user];
        p.extend(chunk.iter().map(|r| Value::String(r.clone())));
        stmts.push(db.stmt(&sql, p)?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    Ok(db
        .batch_rows(stmts)
        .await?
        .iter()
        .flatten()
        .map(|r| (r["room_id"].as_str().unwrap_or("").to_owned(), r["thread_id"].as_str().unwrap_or("main").to_owned(), num(&r["n"]), num(&r["h"])))
        .collect())
}

#[derive(Debug, Deserialize, Clone)]
pub struct NotificationRow {
    pub event_id: String,
    pub room_id: String,
    pub stream: f64,
    pub actions: String,
    pub ts: f64,
    pub json: String,
    pub read: f64,
}

/// `/notifications`: newest first, before stream position `before`.
pub async fn notifications(db: &Db, user: &str, before: u64, limit: u32, only_highlight: bool) -> Result<Vec<NotificationRow>> {
    db.all(
        "SELECT p.event_id, p.room_id, p.stream, p.highlight, p.actions, p.ts, e.json,
           (p.stream <= COALESCE((SELECT MAX(r.event_stream) FROM receipts r WHERE r.room_id = p.room_id AND r.user_id = ?1
              AND r.receipt_type IN ('m.read', 'm.read.private') AND (r.thread_id = '' OR r.thread_id = p.thread_id)), 0)) AS read
         FROM push_actions p JOIN events e ON e.event_id = p.event_id
         WHERE p.user_id = ?1 AND p.stream < ?2 AND (?3 = 0 OR p.highlight = 1)
         ORDER BY p.stream DESC LIMIT ?4",
        params![user, before, only_highlight as i64, limit],
    )
    .await
}

// ---- pushers ----

#[derive(Debug, Deserialize, Clone)]
pub struct PusherRow {
    pub user_id: String,
    pub app_id: String,
    pub pushkey: String,
    pub kind: String,
    pub app_display_name: String,
    pub device_display_name: String,
    pub profile_tag: Option<String>,
    pub lang: String,
    pub data: String,
}

impl PusherRow {
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "app_id": self.app_id, "pushkey": self.pushkey, "kind": self.kind,
            "app_display_name": self.app_display_name, "device_display_name": self.device_display_name,
            "lang": self.lang, "data": serde_json::from_str::<Value>(&self.data).unwrap_or(Value::Null),
        });
        if let Some(t) = &self.profile_tag {
            v.set("profile_tag", t.clone().into());
        }
        v
    }
}

const PUSHER_COLUMNS: &str = "user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data";

pub async fn pushers_of(db: &Db, users: &[String]) -> Result<Vec<PusherRow>> {
    let mut out = Vec::new();
    for chunk in users.chunks(MAX_PARAMS) {
        let sql = format!("SELECT {PUSHER_COLUMNS} FROM pushers WHERE user_id IN ({})", vec!["?"; chunk.len()].join(","));
        out.extend(db.all::<PusherRow>(&sql, chunk.iter().map(|u| Value::String(u.clone())).collect()).await?);
    }
    Ok(out)
}
