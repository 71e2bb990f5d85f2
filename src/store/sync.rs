//! Storage for `/sync` and the per-user and ephemeral streams: filters, account data,
//! receipts, typing, presence, push actions, pushers. Every read a sync makes covers all of
//! the user's rooms in one statement (or one per chunk of rooms), never one per room.

use serde::Deserialize;
use serde_json::Value;

use crate::core::sync_token::SyncToken;
use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;
use crate::store::rooms::{EventRow, EVENT_COLUMNS};

/// D1 allows 100 bound parameters per statement.
const MAX_PARAMS: usize = 90;

fn num(v: &Value) -> u64 {
    v.as_f64().unwrap_or(0.0) as u64
}

/// One of the user's memberships.
#[derive(Debug, Deserialize, Clone)]
pub struct MembershipRow {
    pub room_id: String,
    pub membership: String,
    pub event_id: String,
    pub stream: f64,
    pub forgotten: f64,
}

impl MembershipRow {
    pub fn stream(&self) -> u64 {
        self.stream as u64
    }
}

/// The current position of every stream and the user's memberships, read in one batch (one
/// snapshot), so no membership is newer than the room position. With `since` (an
/// incremental sync), also the rooms the user is *newly* joined to since that position.
pub async fn snapshot(db: &Db, user: &str, since: Option<u64>) -> Result<(SyncToken, Vec<MembershipRow>, Vec<String>)> {
    let mut stmts = vec![
        db.stmt(
            "SELECT (SELECT COALESCE(MAX(stream), 0) FROM events) AS ev,
                    (SELECT COALESCE(MAX(stream), 0) FROM account_data) AS ad,
                    (SELECT COALESCE(MAX(stream), 0) FROM receipts) AS rc,
                    (SELECT COALESCE(MAX(stream), 0) FROM room_typing) AS ty,
                    (SELECT COALESCE(MAX(stream), 0) FROM presence) AS pr,
                    (SELECT COALESCE(MAX(stream), 0) FROM device_list_changes) AS dl",
            vec![],
        )?,
        db.stmt("SELECT room_id, membership, event_id, stream, forgotten FROM memberships WHERE user_id = ?", params![user])?,
    ];
    if let Some(since) = since {
        // Synapse's rule: joined now, and either not joined at `since` or with a non-join
        // membership of the user since then (left and came back).
        stmts.push(db.stmt(
            "SELECT m.room_id AS room_id FROM memberships m
             WHERE m.user_id = ?1 AND m.membership = 'join' AND m.stream > ?2
               AND (EXISTS (SELECT 1 FROM events e WHERE e.room_id = m.room_id AND e.type = 'm.room.member'
                              AND e.state_key = ?1 AND e.stream > ?2 AND e.membership != 'join')
                    OR COALESCE((SELECT e.membership FROM events e WHERE e.room_id = m.room_id AND e.type = 'm.room.member'
                                   AND e.state_key = ?1 AND e.stream <= ?2 ORDER BY e.stream DESC LIMIT 1), '') != 'join')",
            params![user, since],
        )?);
    }
    let rows = db.batch_rows(stmts).await?;
    let p = rows.first().and_then(|r| r.first()).cloned().unwrap_or(Value::Null);
    let token = SyncToken {
        rooms: num(&p["ev"]),
        account_data: num(&p["ad"]),
        receipts: num(&p["rc"]),
        typing: num(&p["ty"]),
        presence: num(&p["pr"]),
        device_lists: num(&p["dl"]),
        ..Default::default()
    };
    let members = rows.get(1).map(|r| r.iter().filter_map(|v| serde_json::from_value::<MembershipRow>(v.clone()).ok()).collect()).unwrap_or_default();
    let newly_joined = rows.get(2).map(|r| r.iter().filter_map(|v| v["room_id"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    Ok((token, members, newly_joined))
}

/// Rooms the user has any membership in that have events in `(after, up_to]`.
pub async fn rooms_with_events(db: &Db, user: &str, after: u64, up_to: u64) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
    }
    Ok(db
        .all::<R>(
            "SELECT DISTINCT room_id FROM events WHERE stream > ? AND stream <= ?
               AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ?)",
            params![after, up_to, user],
        )
        .await?
        .into_iter()
        .map(|r| r.room_id)
        .collect())
}

/// A stream range of one room: `(room_id, after, up_to]`.
#[derive(Clone, Debug)]
pub struct Range {
    pub room_id: String,
    pub after: u64,
    pub up_to: u64,
}

fn values_clause(n: usize, width: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; n].join(", ")
}

/// The last `per_room` events of each range, ascending by stream (callers fetch one more
/// than the timeline limit to learn whether it is `limited`). One query per 30 rooms.
pub async fn timeline_windows(db: &Db, ranges: &[Range], per_room: u32) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in ranges.chunks((MAX_PARAMS - 1) / 3) {
        let sql = format!(
            "WITH t(rid, lo, hi) AS (VALUES {})
             SELECT * FROM (
               SELECT {EVENT_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY room_id ORDER BY stream DESC) AS rn
               FROM events JOIN t ON room_id = t.rid AND stream > t.lo AND stream <= t.hi
             ) WHERE rn <= ? ORDER BY stream ASC",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for r in chunk {
            p.extend(params![r.room_id, r.after, r.up_to]);
        }
        p.push(per_room.into());
        out.extend(db.all::<EventRow>(&sql, p).await?);
    }
    Ok(out)
}

/// For each range, the latest state event of every `(type, state_key)` written in it: the
/// state delta over the range (local rooms are linear, so this is the resolved state).
/// With `after = 0` it is the full state at `up_to`.
pub async fn state_deltas(db: &Db, ranges: &[Range]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in ranges.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "WITH t(rid, lo, hi) AS (VALUES {})
             SELECT {EVENT_COLUMNS}, MAX(stream) AS last FROM events JOIN t ON room_id = t.rid AND stream > t.lo AND stream <= t.hi
             WHERE state_key IS NOT NULL GROUP BY room_id, type, state_key",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for r in chunk {
            p.extend(params![r.room_id, r.after, r.up_to]);
        }
        out.extend(db.all::<EventRow>(&sql, p).await?);
    }
    Ok(out)
}

/// The member event of each `(room, user)` as of stream position `at` (lazy loading).
pub async fn members_at(db: &Db, items: &[(String, String, u64)]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in items.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "WITH t(rid, uid, hi) AS (VALUES {})
             SELECT {EVENT_COLUMNS}, MAX(stream) AS last FROM events JOIN t
               ON room_id = t.rid AND type = 'm.room.member' AND state_key = t.uid AND stream <= t.hi
             GROUP BY room_id, state_key",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for (r, u, at) in chunk {
            p.extend(params![r, u, at]);
        }
        out.extend(db.all::<EventRow>(&sql, p).await?);
    }
    Ok(out)
}

/// The stripped state of the rooms the user is invited to or knocking on (spec:
/// "Stripped state"): the room's create, join rules, name, avatar, alias, encryption and
/// topic, and the user's own member event. One query.
pub async fn stripped_state(db: &Db, user: &str) -> Result<Vec<EventRow>> {
    db.all(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE event_id IN (
               SELECT c.event_id FROM current_state c
               WHERE c.room_id IN (SELECT room_id FROM memberships WHERE user_id = ?1 AND membership IN ('invite', 'knock'))
                 AND (c.type IN ('m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar',
                                 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic')
                      OR (c.type = 'm.room.member' AND c.state_key = ?1)))"
        ),
        params![user],
    )
    .await
}

/// Joined and invited member counts and up to 5 heroes per joined room of the user.
pub async fn summaries(db: &Db, user: &str) -> Result<Vec<Value>> {
    db.all(
        "SELECT room_id, user_id, membership, rn, n FROM (
           SELECT m.room_id, m.user_id, m.membership,
                  ROW_NUMBER() OVER (PARTITION BY m.room_id, m.membership ORDER BY m.stream) AS rn,
                  COUNT(*) OVER (PARTITION BY m.room_id, m.membership) AS n
           FROM memberships m
           WHERE m.room_id IN (SELECT room_id FROM memberships WHERE user_id = ? AND membership = 'join')
             AND m.membership IN ('join', 'invite')
         ) WHERE rn <= 6",
        params![user],
    )
    .await
}

// ---- account data ----

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

/// `m.push_rules` of several users (those who have stored any).
pub async fn push_rules_of(db: &Db, users: &[String]) -> Result<Vec<(String, Value)>> {
    #[derive(Deserialize)]
    struct R {
        user_id: String,
        content: String,
    }
    let mut out = Vec::new();
    for chunk in users.chunks(MAX_PARAMS) {
        let sql = format!(
            "SELECT user_id, content FROM account_data WHERE room_id = '' AND type = 'm.push_rules' AND user_id IN ({})",
            vec!["?"; chunk.len()].join(",")
        );
        let rows: Vec<R> = db.all(&sql, chunk.iter().map(|u| Value::String(u.clone())).collect()).await?;
        out.extend(rows.into_iter().filter_map(|r| Some((r.user_id, serde_json::from_str(&r.content).ok()?))));
    }
    Ok(out)
}

// ---- filters ----

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

// ---- receipts ----

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

// ---- typing ----

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

// ---- presence ----

#[derive(Debug, Deserialize, Clone)]
pub struct PresenceRow {
    pub user_id: String,
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ts: f64,
    pub currently_active: f64,
}

/// Presence of the user and of everyone who shares a joined room with them.
pub async fn presence_since(db: &Db, user: &str, after: u64, up_to: u64) -> Result<Vec<PresenceRow>> {
    db.all(
        "SELECT user_id, presence, status_msg, last_active_ts, currently_active FROM presence
         WHERE stream > ?1 AND stream <= ?2 AND (user_id = ?3 OR user_id IN (
           SELECT m2.user_id FROM memberships m1 JOIN memberships m2 ON m2.room_id = m1.room_id
           WHERE m1.user_id = ?3 AND m1.membership = 'join' AND m2.membership = 'join'))",
        params![after, up_to, user],
    )
    .await
}

pub async fn get_presence(db: &Db, user: &str) -> Result<Option<PresenceRow>> {
    db.first("SELECT user_id, presence, status_msg, last_active_ts, currently_active FROM presence WHERE user_id = ?", params![user]).await
}

/// Sets presence; returns whether anything others can see changed (only then does the
/// stream move). `status_msg: None` keeps the stored message.
pub async fn set_presence(db: &Db, user: &str, presence: &str, status_msg: Option<Option<&str>>) -> Result<bool> {
    let old = get_presence(db, user).await?;
    let msg = match status_msg {
        Some(m) => m.map(str::to_owned),
        None => old.as_ref().and_then(|o| o.status_msg.clone()),
    };
    let active = presence == "online";
    let changed = old.as_ref().is_none_or(|o| o.presence != presence || o.status_msg != msg || (o.currently_active != 0.0) != active);
    if changed {
        db.run(
            "INSERT INTO presence (user_id, presence, status_msg, last_active_ts, currently_active, stream)
             VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(stream), 0) + 1 FROM presence))
             ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
               last_active_ts = excluded.last_active_ts, currently_active = excluded.currently_active, stream = excluded.stream",
            params![user, presence, msg, now_ms(), active as i64],
        )
        .await?;
    } else if active && old.as_ref().is_some_and(|o| now_ms().saturating_sub(o.last_active_ts as u64) > 60_000) {
        // Steady state (every sync of an online user): refresh last activity at most once a minute.
        db.run("UPDATE presence SET last_active_ts = ? WHERE user_id = ?", params![now_ms(), user]).await?;
    }
    Ok(changed)
}

/// Local users who share a joined room with `user` (and `user`).
pub async fn users_sharing_rooms(db: &Db, user: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        user_id: String,
    }
    let mut v: Vec<String> = db
        .all::<R>(
            "SELECT DISTINCT m2.user_id FROM memberships m1 JOIN memberships m2 ON m2.room_id = m1.room_id
             WHERE m1.user_id = ? AND m1.membership = 'join' AND m2.membership = 'join'",
            params![user],
        )
        .await?
        .into_iter()
        .map(|r| r.user_id)
        .collect();
    if !v.iter().any(|u| u == user) {
        v.push(user.to_owned());
    }
    Ok(v)
}

// ---- unread counts and notifications ----

/// `(room_id, thread_id, notifications, highlights)` after the user's read receipts, for
/// every joined room with any. A read receipt (unthreaded, or of the event's thread) covers
/// everything up to its event; nothing from before the user's join counts (their invite).
pub async fn unread_counts(db: &Db, user: &str) -> Result<Vec<(String, String, u64, u64)>> {
    let rows: Vec<Value> = db
        .all(
            "SELECT p.room_id AS room_id, p.thread_id AS thread_id, COUNT(*) AS n, SUM(p.highlight) AS h FROM push_actions p
             JOIN memberships m ON m.room_id = p.room_id AND m.user_id = ?1 AND m.membership = 'join'
             WHERE p.user_id = ?1
               AND p.stream > m.stream
               AND p.stream > COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                   WHERE r.room_id = p.room_id AND r.user_id = ?1 AND r.receipt_type IN ('m.read', 'm.read.private')
                     AND (r.thread_id = '' OR r.thread_id = p.thread_id)), 0)
             GROUP BY p.room_id, p.thread_id",
            params![user],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r["room_id"].as_str().unwrap_or("").to_owned(), r["thread_id"].as_str().unwrap_or("main").to_owned(), num(&r["n"]), num(&r["h"])))
        .collect())
}

#[derive(Debug, Deserialize, Clone)]
pub struct NotificationRow {
    pub event_id: String,
    pub room_id: String,
    pub stream: f64,
    pub highlight: f64,
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
            v["profile_tag"] = t.clone().into();
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
