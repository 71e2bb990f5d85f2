//! The `presence` table, one stream, and who shares a room with whom (presence and
//! wake-ups go to them).

use serde::Deserialize;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// A user's presence written at the next presence stream position (local or remote).
const UPSERT: &str = "INSERT INTO presence (user_id, presence, status_msg, last_active_ts, currently_active, stream)
     VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(stream), 0) + 1 FROM presence))
     ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
       last_active_ts = excluded.last_active_ts, currently_active = excluded.currently_active, stream = excluded.stream";

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

const GET_PRESENCE: &str = "SELECT user_id, presence, status_msg, last_active_ts, currently_active FROM presence WHERE user_id = ?";

pub async fn get_presence(db: &Db, user: &str) -> Result<Option<PresenceRow>> {
    db.first(GET_PRESENCE, params![user]).await
}

/// [`get_presence`] as a statement for a batch; read its rows with [`presence_of`].
pub fn get_presence_stmt(db: &Db, user: &str) -> Result<worker::D1PreparedStatement> {
    db.stmt(GET_PRESENCE, params![user])
}

/// The row of [`get_presence_stmt`]'s statement.
pub fn presence_of(rows: Option<&Vec<serde_json::Value>>) -> Option<PresenceRow> {
    rows.and_then(|r| r.first()).and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Sets presence; returns whether anything others can see changed (only then does the
/// stream move). `status_msg: None` keeps the stored message.
pub async fn set_presence(db: &Db, user: &str, presence: &str, status_msg: Option<Option<&str>>) -> Result<bool> {
    Ok(set_presence_write(db, user, presence, status_msg).await?.changed)
}

/// What [`set_presence_write`] did.
pub struct PresenceWrite {
    /// Something others can see changed (the stream moved).
    pub changed: bool,
    /// Nothing visible changed but the steady-state last-active refresh was written (at
    /// most once a minute per online user).
    pub refreshed: bool,
}

/// [`set_presence`], also telling whether the last-active refresh happened (the moment to
/// consider re-announcing an unchanged presence to other servers).
pub async fn set_presence_write(db: &Db, user: &str, presence: &str, status_msg: Option<Option<&str>>) -> Result<PresenceWrite> {
    let old = get_presence(db, user).await?;
    set_presence_over(db, user, presence, status_msg, old).await
}

/// [`set_presence_write`] over the stored row `old`, already read (by a sync, in its snapshot).
pub async fn set_presence_over(
    db: &Db,
    user: &str,
    presence: &str,
    status_msg: Option<Option<&str>>,
    old: Option<PresenceRow>,
) -> Result<PresenceWrite> {
    let msg = match status_msg {
        Some(m) => m.map(str::to_owned),
        None => old.as_ref().and_then(|o| o.status_msg.clone()),
    };
    let active = presence == "online";
    let changed = old.as_ref().is_none_or(|o| o.presence != presence || o.status_msg != msg || (o.currently_active != 0.0) != active);
    if changed {
        db.run(UPSERT, params![user, presence, msg, now_ms(), active as i64]).await?;
    } else if active && old.as_ref().is_some_and(|o| now_ms().saturating_sub(o.last_active_ts as u64) > 60_000) {
        // Steady state (every sync of an online user): refresh last activity at most once a minute.
        db.run("UPDATE presence SET last_active_ts = ? WHERE user_id = ?", params![now_ms(), user]).await?;
        return Ok(PresenceWrite { changed: false, refreshed: true });
    }
    Ok(PresenceWrite { changed, refreshed: false })
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

/// Stores another server's report of one of its users' presence (`m.presence`), as of
/// `last_active_ts`; returns whether anything others can see changed (only then does the
/// stream move; a fresher last-active time alone is just recorded).
pub async fn put_remote_presence(
    db: &Db,
    user: &str,
    presence: &str,
    status_msg: Option<&str>,
    last_active_ts: u64,
    currently_active: bool,
) -> Result<bool> {
    let old = get_presence(db, user).await?;
    let changed = old
        .as_ref()
        .is_none_or(|o| o.presence != presence || o.status_msg.as_deref() != status_msg || (o.currently_active != 0.0) != currently_active);
    if changed {
        db.run(UPSERT, params![user, presence, status_msg, last_active_ts, currently_active as i64]).await?;
    } else {
        db.run("UPDATE presence SET last_active_ts = ? WHERE user_id = ?", params![last_active_ts, user]).await?;
    }
    Ok(changed)
}
