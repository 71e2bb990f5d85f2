//! SQL of the admin API (migration 0017): user listing and flags, registration tokens, blocked
//! rooms, room deletions and their bounded purge steps, server-notice rooms, reports, media
//! listings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;
use crate::store::uia::SESSION_LIFETIME_MS;

// ---- users ----

#[derive(Debug, Deserialize)]
pub struct UserRow {
    pub user_id: String,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub is_admin: i64,
    pub deactivated: i64,
    pub shadow_banned: i64,
    pub created_ts: f64,
    pub has_password: i64,
}

const USER_COLUMNS: &str =
    "user_id, displayname, avatar_url, is_admin, deactivated, shadow_banned, created_ts, (password_hash IS NOT NULL) AS has_password";

pub async fn get_user(db: &Db, user_id: &str) -> Result<Option<UserRow>> {
    db.first(&format!("SELECT {USER_COLUMNS} FROM users WHERE user_id = ?"), params![user_id]).await
}

/// Filters of `GET /_synapse/admin/v2/users`.
pub struct UserFilter<'a> {
    /// Substring of the user ID or display name (case-insensitive).
    pub name: Option<&'a str>,
    /// Substring of the user ID.
    pub user_id: Option<&'a str>,
    pub deactivated: bool,
    pub admins: Option<bool>,
    /// A column of [`USER_ORDER`].
    pub order_by: &'a str,
    pub backwards: bool,
    pub from: u64,
    pub limit: u32,
}

/// The `order_by` values we sort on, and their columns.
pub const USER_ORDER: &[(&str, &str)] = &[
    ("name", "user_id"),
    ("displayname", "displayname"),
    ("creation_ts", "created_ts"),
    ("admin", "is_admin"),
    ("deactivated", "deactivated"),
    ("shadow_banned", "shadow_banned"),
    ("avatar_url", "avatar_url"),
];

/// A page of users and the total that match.
pub async fn list_users(db: &Db, f: &UserFilter<'_>) -> Result<(Vec<UserRow>, u64)> {
    let column = USER_ORDER.iter().find(|(k, _)| *k == f.order_by).map_or("user_id", |(_, c)| c);
    let dir = if f.backwards { "DESC" } else { "ASC" };
    let like = |s: Option<&str>| s.map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let filter = "(?1 IS NULL OR user_id LIKE ?1 ESCAPE '\\' OR displayname LIKE ?1 ESCAPE '\\')
         AND (?2 IS NULL OR user_id LIKE ?2 ESCAPE '\\')
         AND (?3 = 1 OR deactivated = 0)
         AND (?4 IS NULL OR is_admin = ?4)";
    let admins = f.admins.map(|a| a as i64);
    let (name, uid) = (like(f.name), like(f.user_id));
    let rows = db
        .batch_rows(vec![
            db.stmt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY {column} {dir}, user_id {dir} LIMIT ?5 OFFSET ?6"),
                params![name, uid, f.deactivated as i64, admins, f.limit, f.from],
            )?,
            db.stmt(&format!("SELECT COUNT(*) AS n FROM users WHERE {filter}"), params![name, uid, f.deactivated as i64, admins])?,
        ])
        .await?;
    let mut it = rows.into_iter();
    let users = it.next().unwrap_or_default().into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    let total = count_of(it.next());
    Ok((users, total))
}

fn count_of(rows: Option<Vec<Value>>) -> u64 {
    rows.and_then(|r| r.into_iter().next()).and_then(|v| v.get("n").and_then(Value::as_f64)).map_or(0, |n| n as u64)
}

pub async fn set_admin(db: &Db, user_id: &str, admin: bool) -> Result<()> {
    db.run("UPDATE users SET is_admin = ? WHERE user_id = ?", params![admin as i64, user_id]).await?;
    Ok(())
}

/// Reactivation: the flag only (the profile and devices deactivation removed stay removed).
pub async fn set_reactivated(db: &Db, user_id: &str) -> Result<()> {
    db.run("UPDATE users SET deactivated = 0 WHERE user_id = ?", params![user_id]).await?;
    Ok(())
}

pub async fn set_shadow_banned(db: &Db, user_id: &str, banned: bool) -> Result<bool> {
    Ok(db.run("UPDATE users SET shadow_banned = ? WHERE user_id = ?", params![banned as i64, user_id]).await? == 1)
}

/// Whether `user_id` is shadow-banned (one primary-key read).
pub async fn is_shadow_banned(db: &Db, user_id: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Row {
        shadow_banned: i64,
    }
    Ok(db.first::<Row>("SELECT shadow_banned FROM users WHERE user_id = ?", params![user_id]).await?.is_some_and(|r| r.shadow_banned != 0))
}

/// Every device and token of a user (the admin's password reset logs the user out).
pub async fn delete_all_devices(db: &Db, user_id: &str) -> Result<()> {
    db.batch(vec![
        db.stmt("DELETE FROM access_tokens WHERE user_id = ?", params![user_id])?,
        db.stmt("DELETE FROM refresh_tokens WHERE user_id = ?", params![user_id])?,
        db.stmt("DELETE FROM devices WHERE user_id = ?", params![user_id])?,
        db.stmt("UPDATE oauth_sessions SET revoked_ts = ? WHERE user_id = ? AND revoked_ts IS NULL", params![now_ms(), user_id])?,
    ])
    .await?;
    Ok(())
}

/// Rooms where `user_id`'s membership is `join`.
pub async fn joined_rooms(db: &Db, user_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    let rows: Vec<Row> =
        db.all("SELECT room_id FROM memberships WHERE user_id = ? AND membership = 'join' ORDER BY room_id", params![user_id]).await?;
    Ok(rows.into_iter().map(|r| r.room_id).collect())
}

// ---- registration tokens ----

#[derive(Debug, Deserialize, Serialize)]
pub struct RegToken {
    pub token: String,
    pub uses_allowed: Option<i64>,
    pub pending: i64,
    pub completed: i64,
    pub expiry_time: Option<i64>,
}

fn regtoken_select() -> String {
    // `pending`: the live UIA sessions holding a use of the token.
    format!(
        "SELECT token, uses_allowed, completed, expiry_time,
           (SELECT COUNT(*) FROM uia_sessions s WHERE s.registration_token = t.token AND s.created_ts > {}) AS pending
         FROM registration_tokens t",
        now_ms().saturating_sub(SESSION_LIFETIME_MS)
    )
}

pub async fn list_tokens(db: &Db) -> Result<Vec<RegToken>> {
    db.all(&format!("{} ORDER BY token", regtoken_select()), vec![]).await
}

pub async fn get_token(db: &Db, token: &str) -> Result<Option<RegToken>> {
    db.first(&format!("{} WHERE token = ?", regtoken_select()), params![token]).await
}

/// `Ok(false)` if the token exists already.
pub async fn create_token(db: &Db, token: &str, uses_allowed: Option<i64>, expiry_time: Option<i64>) -> Result<bool> {
    db.insert_unique("INSERT INTO registration_tokens (token, uses_allowed, expiry_time) VALUES (?, ?, ?)", params![token, uses_allowed, expiry_time])
        .await
}

/// Sets the fields given (`Some(None)`: no limit). `Ok(false)` if there is no such token.
pub async fn update_token(db: &Db, token: &str, uses_allowed: Option<Option<i64>>, expiry_time: Option<Option<i64>>) -> Result<bool> {
    let mut stmts = Vec::new();
    if let Some(u) = uses_allowed {
        stmts.push(db.stmt("UPDATE registration_tokens SET uses_allowed = ? WHERE token = ?", params![u, token])?);
    }
    if let Some(e) = expiry_time {
        stmts.push(db.stmt("UPDATE registration_tokens SET expiry_time = ? WHERE token = ?", params![e, token])?);
    }
    if stmts.is_empty() {
        return Ok(get_token(db, token).await?.is_some());
    }
    Ok(db.batch(stmts).await?.first().is_some_and(|n| *n == 1))
}

pub async fn delete_token(db: &Db, token: &str) -> Result<bool> {
    Ok(db.run("DELETE FROM registration_tokens WHERE token = ?", params![token]).await? == 1)
}

/// Whether `token` exists, is unexpired and has a use left (the validity endpoint; no use
/// is reserved).
pub async fn token_usable(db: &Db, token: &str) -> Result<bool> {
    Ok(get_token(db, token)
        .await?
        .is_some_and(|t| t.expiry_time.is_none_or(|e| e as u64 > now_ms()) && t.uses_allowed.is_none_or(|u| t.pending + t.completed < u)))
}

/// Reserves a use of `token` for the UIA session `session_id`, atomically: one statement sets
/// the session's token only while the token is unexpired and its completed uses plus the live
/// sessions holding it are below `uses_allowed`. True if the session holds the token (now or
/// from an earlier attempt of the same stage).
pub async fn reserve_token(db: &Db, session_id: &str, token: &str) -> Result<bool> {
    let now = now_ms();
    let live_since = now.saturating_sub(SESSION_LIFETIME_MS);
    let changed = db
        .run(
            "UPDATE uia_sessions SET registration_token = ?1
             WHERE session_id = ?2 AND registration_token IS NULL
               AND EXISTS (SELECT 1 FROM registration_tokens t WHERE t.token = ?1
                 AND (t.expiry_time IS NULL OR t.expiry_time > ?3)
                 AND (t.uses_allowed IS NULL OR t.completed
                      + (SELECT COUNT(*) FROM uia_sessions s WHERE s.registration_token = ?1 AND s.created_ts > ?4) < t.uses_allowed))",
            params![token, session_id, now, live_since],
        )
        .await?;
    if changed == 1 {
        return Ok(true);
    }
    #[derive(Deserialize)]
    struct Row {
        registration_token: Option<String>,
    }
    let held = db.first::<Row>("SELECT registration_token FROM uia_sessions WHERE session_id = ?", params![session_id]).await?;
    Ok(held.and_then(|r| r.registration_token).is_some_and(|t| t == token))
}

/// Ends a UIA session whose flow completed, in one batch with counting the registration token
/// use it held as completed (nothing when it held none).
pub async fn finish_uia_session(db: &Db, session_id: &str) -> Result<()> {
    db.batch(vec![
        db.stmt(
            "UPDATE registration_tokens SET completed = completed + 1
             WHERE token = (SELECT registration_token FROM uia_sessions WHERE session_id = ?)",
            params![session_id],
        )?,
        db.stmt("DELETE FROM uia_sessions WHERE session_id = ?", params![session_id])?,
    ])
    .await?;
    Ok(())
}

// ---- rooms ----

#[derive(Debug, Deserialize)]
pub struct RoomListRow {
    pub room_id: String,
    pub room_version: String,
    pub creator: String,
    pub is_public: i64,
    pub name: Option<String>,
    pub canonical_alias: Option<String>,
    pub topic: Option<String>,
    pub avatar: Option<String>,
    pub join_rules: Option<String>,
    pub guest_access: Option<String>,
    pub history_visibility: Option<String>,
    pub encryption: Option<String>,
    pub room_type: Option<String>,
    pub joined_members: f64,
    pub joined_local_members: f64,
    pub invited_members: f64,
    pub state_events: f64,
}

/// One room's summary columns (the current state's content fields through `json_extract`).
fn room_select(server_suffix: &str) -> String {
    let state = |t: &str, path: &str| {
        format!(
            "(SELECT json_extract(e.json, '$.content.{path}') FROM current_state cs JOIN events e ON e.event_id = cs.event_id
              WHERE cs.room_id = r.room_id AND cs.type = '{t}' AND cs.state_key = '')"
        )
    };
    format!(
        "SELECT r.room_id, r.room_version, r.creator, r.is_public, r.created_ts,
           {name} AS name, {alias} AS canonical_alias, {topic} AS topic, {avatar} AS avatar, {jr} AS join_rules,
           {ga} AS guest_access, {hv} AS history_visibility, {enc} AS encryption, {rt} AS room_type,
           (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined_members,
           (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join' AND m.user_id LIKE '%:{server_suffix}') AS joined_local_members,
           (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'invite') AS invited_members,
           (SELECT COUNT(*) FROM current_state cs WHERE cs.room_id = r.room_id) AS state_events
         FROM rooms r",
        name = state("m.room.name", "name"),
        alias = state("m.room.canonical_alias", "alias"),
        topic = state("m.room.topic", "topic"),
        avatar = state("m.room.avatar", "url"),
        jr = state("m.room.join_rules", "join_rule"),
        ga = state("m.room.guest_access", "guest_access"),
        hv = state("m.room.history_visibility", "history_visibility"),
        enc = state("m.room.encryption", "algorithm"),
        rt = state("m.room.create", "type"),
    )
}

/// The `order_by` values of `GET /_synapse/admin/v1/rooms` and their columns.
pub const ROOM_ORDER: &[(&str, &str)] = &[
    ("name", "name"),
    ("canonical_alias", "canonical_alias"),
    ("joined_members", "joined_members"),
    ("joined_local_members", "joined_local_members"),
    ("version", "room_version"),
    ("creator", "creator"),
    ("encryption", "encryption"),
    ("public", "is_public"),
    ("join_rules", "join_rules"),
    ("guest_access", "guest_access"),
    ("history_visibility", "history_visibility"),
    ("state_events", "state_events"),
    ("room_id", "room_id"),
    ("size", "joined_members"),
];

/// Filters of `GET /_synapse/admin/v1/rooms`.
#[derive(Clone, Copy)]
pub struct RoomFilter<'a> {
    /// Substring of the name, canonical alias or room ID.
    pub search: Option<&'a str>,
    /// Only rooms nobody is joined to (true) or only the others (false).
    pub empty: Option<bool>,
    /// A key of [`ROOM_ORDER`].
    pub order_by: &'a str,
    pub backwards: bool,
    pub from: u64,
    pub limit: u32,
}

/// A page of rooms (default order: joined members, most first, like Synapse) and the total.
pub async fn list_rooms(db: &Db, server_name: &str, f: &RoomFilter<'_>) -> Result<(Vec<RoomListRow>, u64)> {
    let RoomFilter { search, empty, order_by, backwards, from, limit } = *f;
    let column = ROOM_ORDER.iter().find(|(k, _)| *k == order_by).map_or("joined_members", |(_, c)| c);
    // Synapse sorts sizes biggest first in the "forward" direction.
    let numeric = matches!(column, "joined_members" | "joined_local_members" | "state_events");
    let desc = numeric != backwards;
    let dir = if desc { "DESC" } else { "ASC" };
    let suffix = server_name.replace('\'', "");
    let term = search.map(|s| format!("%{}%", s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let filter = "(?1 IS NULL OR lower(COALESCE(name, '')) LIKE ?1 ESCAPE '\\' OR lower(COALESCE(canonical_alias, '')) LIKE ?1 ESCAPE '\\'
                   OR lower(room_id) LIKE ?1 ESCAPE '\\')
                  AND (?4 IS NULL OR (joined_members = 0) = ?4)";
    let inner = room_select(&suffix);
    let rows = db
        .batch_rows(vec![
            db.stmt(
                &format!("SELECT * FROM ({inner}) WHERE {filter} ORDER BY {column} {dir} NULLS LAST, room_id ASC LIMIT ?2 OFFSET ?3"),
                params![term, limit, from, empty.map(|e| e as i64)],
            )?,
            db.stmt(
                &format!("SELECT COUNT(*) AS n FROM ({inner}) WHERE {filter}"),
                params![term, Value::Null, Value::Null, empty.map(|e| e as i64)],
            )?,
        ])
        .await?;
    let mut it = rows.into_iter();
    let rooms = it.next().unwrap_or_default().into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    Ok((rooms, count_of(it.next())))
}

pub async fn room_details(db: &Db, server_name: &str, room_id: &str) -> Result<Option<RoomListRow>> {
    let inner = room_select(&server_name.replace('\'', ""));
    db.first(&format!("{inner} WHERE r.room_id = ?"), params![room_id]).await
}

/// Users whose current membership is `join` (any server).
pub async fn room_members(db: &Db, room_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let rows: Vec<Row> =
        db.all("SELECT user_id FROM memberships WHERE room_id = ? AND membership = 'join' ORDER BY user_id", params![room_id]).await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

/// Local users whose membership lets them leave (joined, invited, knocking).
pub async fn local_members_to_remove(db: &Db, room_id: &str, server_name: &str, limit: u32) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let rows: Vec<Row> = db
        .all(
            "SELECT user_id FROM memberships WHERE room_id = ? AND membership IN ('join', 'invite', 'knock') AND user_id LIKE ? ORDER BY user_id LIMIT ?",
            params![room_id, format!("%:{server_name}"), limit],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}

/// The current state events: `(event ID, PDU JSON)`.
pub async fn room_state_json(db: &Db, room_id: &str) -> Result<Vec<(String, String)>> {
    #[derive(Deserialize)]
    struct Row {
        event_id: String,
        json: String,
    }
    let rows: Vec<Row> = db
        .all(
            "SELECT e.event_id, e.json FROM current_state cs JOIN events e ON e.event_id = cs.event_id WHERE cs.room_id = ? ORDER BY cs.type, cs.state_key",
            params![room_id],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.event_id, r.json)).collect())
}

pub async fn block_room(db: &Db, room_id: &str, by: &str) -> Result<()> {
    db.run("INSERT OR IGNORE INTO blocked_rooms (room_id, blocked_by, created_ts) VALUES (?, ?, ?)", params![room_id, by, now_ms()]).await?;
    Ok(())
}

pub async fn is_room_blocked(db: &Db, room_id: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct Row {
        #[allow(dead_code)]
        room_id: String,
    }
    Ok(db.first::<Row>("SELECT room_id FROM blocked_rooms WHERE room_id = ?", params![room_id]).await?.is_some())
}

#[derive(Debug, Deserialize)]
pub struct RoomDelete {
    pub delete_id: String,
    pub room_id: String,
    pub requester: String,
    pub block: i64,
    pub purge: i64,
    pub force_purge: i64,
    pub status: String,
    pub kicked_users: String,
    pub failed_to_kick_users: String,
    pub local_aliases: String,
    pub error: Option<String>,
}

const DELETE_COLUMNS: &str =
    "delete_id, room_id, requester, block, purge, force_purge, status, kicked_users, failed_to_kick_users, local_aliases, error";

pub async fn insert_delete(db: &Db, d: &RoomDelete) -> Result<()> {
    let now = now_ms();
    db.run(
        "INSERT INTO room_deletes (delete_id, room_id, requester, block, purge, force_purge, status, created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![d.delete_id, d.room_id, d.requester, d.block, d.purge, d.force_purge, d.status, now, now],
    )
    .await?;
    Ok(())
}

pub async fn get_delete(db: &Db, delete_id: &str) -> Result<Option<RoomDelete>> {
    db.first(&format!("SELECT {DELETE_COLUMNS} FROM room_deletes WHERE delete_id = ?"), params![delete_id]).await
}

pub async fn deletes_of_room(db: &Db, room_id: &str) -> Result<Vec<RoomDelete>> {
    db.all(&format!("SELECT {DELETE_COLUMNS} FROM room_deletes WHERE room_id = ? ORDER BY created_ts"), params![room_id]).await
}

/// Deletions not finished yet, oldest first (for a scheduled run to resume).
#[allow(dead_code)]
pub async fn unfinished_deletes(db: &Db, limit: u32) -> Result<Vec<RoomDelete>> {
    db.all(&format!("SELECT {DELETE_COLUMNS} FROM room_deletes WHERE status IN ('scheduled', 'active') ORDER BY created_ts LIMIT ?"), params![limit])
        .await
}

pub async fn update_delete(db: &Db, d: &RoomDelete) -> Result<()> {
    db.run(
        "UPDATE room_deletes SET status = ?, kicked_users = ?, failed_to_kick_users = ?, local_aliases = ?, error = ?, updated_ts = ? WHERE delete_id = ?",
        params![d.status, d.kicked_users, d.failed_to_kick_users, d.local_aliases, d.error, now_ms(), d.delete_id],
    )
    .await?;
    Ok(())
}

/// Removes the room from the directory and its local aliases (a delete without purge).
pub async fn unpublish_room(db: &Db, room_id: &str) -> Result<()> {
    db.batch(vec![
        db.stmt("UPDATE rooms SET is_public = 0 WHERE room_id = ?", params![room_id])?,
        db.stmt("DELETE FROM room_aliases WHERE room_id = ?", params![room_id])?,
    ])
    .await?;
    Ok(())
}

/// Rows deleted per table per purge step: a step is one D1 batch of bounded statements.
pub const PURGE_CHUNK: u32 = 500;

/// The tables a purge empties of a room (all with an index starting at `room_id`).
const PURGE_TABLES: &[&str] = &[
    "current_state",
    "memberships",
    "room_aliases",
    "receipts",
    "room_typing",
    "push_actions",
    "outliers",
    "rejected_events",
    "remote_invites",
    "state_resets",
    "state_groups",
    "account_data",
    // Sliding sync's recency facts (migration 0016).
    "room_bump",
];

/// One bounded purge step: up to [`PURGE_CHUNK`] rows of each of the room's tables (events
/// last, oldest first), in one batch. Returns how many rows went; when nothing is left the
/// room's row goes too (and 0 is returned).
pub async fn purge_step(db: &Db, room_id: &str) -> Result<u64> {
    let mut stmts = Vec::with_capacity(PURGE_TABLES.len() + 1);
    for t in PURGE_TABLES {
        stmts.push(
            db.stmt(&format!("DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE room_id = ? LIMIT ?)"), params![room_id, PURGE_CHUNK])?,
        );
    }
    stmts.push(db.stmt(
        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE room_id = ? ORDER BY stream LIMIT ?)",
        params![room_id, PURGE_CHUNK],
    )?);
    let deleted: u64 = db.batch(stmts).await?.into_iter().map(|n| n as u64).sum();
    if deleted == 0 {
        db.run("DELETE FROM rooms WHERE room_id = ?", params![room_id]).await?;
    }
    Ok(deleted)
}

// ---- server notices ----

pub async fn notice_room(db: &Db, user_id: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
    }
    Ok(db.first::<Row>("SELECT room_id FROM server_notice_rooms WHERE user_id = ?", params![user_id]).await?.map(|r| r.room_id))
}

pub async fn set_notice_room(db: &Db, user_id: &str, room_id: &str) -> Result<()> {
    db.run("INSERT OR REPLACE INTO server_notice_rooms (user_id, room_id) VALUES (?, ?)", params![user_id, room_id]).await?;
    Ok(())
}

// ---- event reports ----

#[derive(Debug, Deserialize)]
pub struct ReportRow {
    pub id: i64,
    pub reporter: String,
    pub room_id: Option<String>,
    pub event_id: Option<String>,
    pub reason: Option<String>,
    pub score: Option<i64>,
    pub created_ts: f64,
    pub room_name: Option<String>,
    pub canonical_alias: Option<String>,
    pub sender: Option<String>,
    pub event_json: Option<String>,
}

const REPORT_SELECT: &str = "SELECT r.id, r.reporter, r.room_id, r.event_id, r.reason, r.score, r.created_ts,
    (SELECT json_extract(e.json, '$.content.name') FROM current_state cs JOIN events e ON e.event_id = cs.event_id
      WHERE cs.room_id = r.room_id AND cs.type = 'm.room.name' AND cs.state_key = '') AS room_name,
    (SELECT json_extract(e.json, '$.content.alias') FROM current_state cs JOIN events e ON e.event_id = cs.event_id
      WHERE cs.room_id = r.room_id AND cs.type = 'm.room.canonical_alias' AND cs.state_key = '') AS canonical_alias,
    (SELECT e.sender FROM events e WHERE e.event_id = r.event_id) AS sender,
    (SELECT e.json FROM events e WHERE e.event_id = r.event_id) AS event_json
  FROM reports r";

/// Event reports (reports naming an event), newest first unless `forwards`; with the total.
pub async fn list_event_reports(
    db: &Db,
    room_id: Option<&str>,
    user_id: Option<&str>,
    forwards: bool,
    from: u64,
    limit: u32,
) -> Result<(Vec<ReportRow>, u64)> {
    let filter = "r.event_id IS NOT NULL AND (?1 IS NULL OR r.room_id = ?1) AND (?2 IS NULL OR r.reporter = ?2)";
    let dir = if forwards { "ASC" } else { "DESC" };
    let rows = db
        .batch_rows(vec![
            db.stmt(
                &format!("{REPORT_SELECT} WHERE {filter} ORDER BY r.created_ts {dir}, r.id {dir} LIMIT ?3 OFFSET ?4"),
                params![room_id, user_id, limit, from],
            )?,
            db.stmt(&format!("SELECT COUNT(*) AS n FROM reports r WHERE {filter}"), params![room_id, user_id])?,
        ])
        .await?;
    let mut it = rows.into_iter();
    let reports = it.next().unwrap_or_default().into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    Ok((reports, count_of(it.next())))
}

pub async fn get_event_report(db: &Db, id: i64) -> Result<Option<ReportRow>> {
    db.first(&format!("{REPORT_SELECT} WHERE r.id = ? AND r.event_id IS NOT NULL"), params![id]).await
}

pub async fn delete_report(db: &Db, id: i64) -> Result<bool> {
    Ok(db.run("DELETE FROM reports WHERE id = ?", params![id]).await? == 1)
}

// ---- media ----

#[derive(Debug, Deserialize)]
pub struct MediaRow {
    pub media_id: String,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: Option<f64>,
    pub created_ts: f64,
    pub quarantined: i64,
}

/// A user's uploads (newest first unless `oldest_first`) and their count.
pub async fn user_media(db: &Db, user_id: &str, oldest_first: bool, from: u64, limit: u32) -> Result<(Vec<MediaRow>, u64)> {
    let dir = if oldest_first { "ASC" } else { "DESC" };
    let rows = db
        .batch_rows(vec![
            db.stmt(
                &format!(
                    "SELECT media_id, content_type, filename, size, created_ts, quarantined FROM media WHERE user_id = ?
                     ORDER BY created_ts {dir}, media_id {dir} LIMIT ? OFFSET ?"
                ),
                params![user_id, limit, from],
            )?,
            db.stmt("SELECT COUNT(*) AS n FROM media WHERE user_id = ?", params![user_id])?,
        ])
        .await?;
    let mut it = rows.into_iter();
    let media = it.next().unwrap_or_default().into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    Ok((media, count_of(it.next())))
}

/// Deletes a media row; returns its content hash when it was the last row using that content
/// (so the caller deletes the R2 object), `Ok(None)` otherwise. `Err` never for a missing row:
/// `found` says whether there was one.
pub async fn delete_media_row(db: &Db, media_id: &str) -> Result<(bool, Option<String>)> {
    #[derive(Deserialize)]
    struct Row {
        sha256: Option<String>,
    }
    let Some(row) = db.first::<Row>("DELETE FROM media WHERE media_id = ? RETURNING sha256", params![media_id]).await? else {
        return Ok((false, None));
    };
    let Some(sha) = row.sha256 else { return Ok((true, None)) };
    #[derive(Deserialize)]
    struct N {
        n: f64,
    }
    let still = db.first::<N>("SELECT COUNT(*) AS n FROM media WHERE sha256 = ?", params![sha]).await?.map_or(0.0, |n| n.n);
    Ok((true, (still == 0.0).then_some(sha)))
}

/// The JSON of a room's events that may carry media (messages, stickers, avatars), oldest
/// first, at most `limit`.
pub async fn room_media_event_json(db: &Db, room_id: &str, limit: u32) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        json: String,
    }
    let rows: Vec<Row> = db
        .all(
            "SELECT json FROM events WHERE room_id = ? AND type IN ('m.room.message', 'm.sticker', 'm.room.avatar', 'm.room.member')
               AND json LIKE '%mxc://%' ORDER BY stream LIMIT ?",
            params![room_id, limit],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.json).collect())
}

/// Creates a system user (no password) unless it exists.
pub async fn ensure_system_user(db: &Db, user_id: &str, displayname: &str) -> Result<()> {
    db.run(
        "INSERT OR IGNORE INTO users (user_id, password_hash, displayname, is_admin, created_ts) VALUES (?, NULL, ?, 0, ?)",
        params![user_id, displayname, now_ms()],
    )
    .await?;
    Ok(())
}

/// Creates an account for the admin API (`password_hash` `None`: no password login).
/// `Ok(false)` if the ID is taken (the primary key is the guard).
pub async fn create_user(db: &Db, user_id: &str, password_hash: Option<&str>, displayname: &str, is_admin: bool) -> Result<bool> {
    db.insert_unique(
        "INSERT INTO users (user_id, password_hash, displayname, is_admin, created_ts) VALUES (?, ?, ?, ?, ?)",
        params![user_id, password_hash, displayname, is_admin as i64, now_ms()],
    )
    .await
}
