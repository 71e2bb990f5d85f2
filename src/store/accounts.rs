//! Users, devices, failed-login records and admin nonces.

use serde::Deserialize;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Debug, Deserialize)]
pub struct User {
    pub user_id: String,
    pub password_hash: Option<String>,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub is_admin: i64,
    pub deactivated: i64,
}

pub async fn get_user(db: &Db, user_id: &str) -> Result<Option<User>> {
    db.first("SELECT user_id, password_hash, displayname, avatar_url, is_admin, deactivated FROM users WHERE user_id = ?", params![user_id]).await
}

/// Creates a user; `Ok(false)` if the ID is taken (the primary key is the atomic guard, so
/// two racing registrations cannot both win).
pub async fn create_user(db: &Db, user_id: &str, password_hash: &str, displayname: &str, is_admin: bool) -> Result<bool> {
    db.insert_unique(
        "INSERT INTO users (user_id, password_hash, displayname, is_admin, created_ts) VALUES (?, ?, ?, ?, ?)",
        params![user_id, password_hash, displayname, is_admin as i64, now_ms()],
    )
    .await
}

/// Replaces the stored hash only if it is still `old` (a rehash at login must not undo a
/// password change that landed meanwhile).
pub async fn rehash_password(db: &Db, user_id: &str, old: &str, new: &str) -> Result<()> {
    db.run("UPDATE users SET password_hash = ?1 WHERE user_id = ?2 AND password_hash = ?3", params![new, user_id, old]).await?;
    Ok(())
}

pub async fn set_password(db: &Db, user_id: &str, password_hash: &str) -> Result<()> {
    db.run("UPDATE users SET password_hash = ? WHERE user_id = ?", params![password_hash, user_id]).await?;
    Ok(())
}

pub async fn set_profile_field(db: &Db, user_id: &str, field: ProfileField, value: Option<&str>) -> Result<()> {
    let sql = match field {
        ProfileField::Displayname => "UPDATE users SET displayname = ? WHERE user_id = ?",
        ProfileField::AvatarUrl => "UPDATE users SET avatar_url = ? WHERE user_id = ?",
    };
    db.run(sql, params![value, user_id]).await?;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileField {
    Displayname,
    AvatarUrl,
}

/// Marks the account deactivated and removes its profile (custom fields too), devices and
/// tokens in one batch. The row stays so that the user ID is never reused.
pub async fn deactivate(db: &Db, user_id: &str) -> Result<()> {
    db.batch(vec![
        db.stmt(
            // The password hash stays: it lets login tell the right password ("deactivated")
            // from a wrong one (`M_FORBIDDEN`) without revealing the account's state to a
            // guesser. Nothing authenticates a deactivated account (`check_password`).
            "UPDATE users SET deactivated = 1, displayname = NULL, avatar_url = NULL WHERE user_id = ?",
            params![user_id],
        )?,
        db.stmt("DELETE FROM profile_fields WHERE user_id = ?", params![user_id])?,
        db.stmt("DELETE FROM access_tokens WHERE user_id = ?", params![user_id])?,
        db.stmt("DELETE FROM refresh_tokens WHERE user_id = ?", params![user_id])?,
        db.stmt("DELETE FROM devices WHERE user_id = ?", params![user_id])?,
        db.stmt("DELETE FROM login_tokens WHERE user_id = ?", params![user_id])?,
        db.stmt("UPDATE oauth_sessions SET revoked_ts = ? WHERE user_id = ? AND revoked_ts IS NULL", params![now_ms(), user_id])?,
        db.stmt("DELETE FROM oauth_browser_sessions WHERE user_id = ?", params![user_id])?,
    ])
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize, serde::Serialize)]
pub struct Device {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<i64>,
}

pub async fn list_devices(db: &Db, user_id: &str) -> Result<Vec<Device>> {
    db.all("SELECT device_id, display_name, last_seen_ip, last_seen_ts FROM devices WHERE user_id = ? ORDER BY created_ts", params![user_id]).await
}

pub async fn get_device(db: &Db, user_id: &str, device_id: &str) -> Result<Option<Device>> {
    db.first(
        "SELECT device_id, display_name, last_seen_ip, last_seen_ts FROM devices WHERE user_id = ? AND device_id = ?",
        params![user_id, device_id],
    )
    .await
}

/// Statement creating a device or, if it exists, keeping it: a re-login with a known
/// `device_id` ignores `initial_device_display_name` (spec: `POST /login`).
pub fn upsert_device_stmt(
    db: &Db,
    user_id: &str,
    device_id: &str,
    display_name: Option<&str>,
    ip: Option<&str>,
) -> Result<worker::D1PreparedStatement> {
    let now = now_ms();
    db.stmt(
        "INSERT INTO devices (user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (user_id, device_id) DO UPDATE SET
           last_seen_ip = ?4, last_seen_ts = ?5",
        params![user_id, device_id, display_name, ip, now],
    )
}

pub async fn set_device_name(db: &Db, user_id: &str, device_id: &str, name: Option<&str>) -> Result<bool> {
    Ok(db.run("UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?", params![name, user_id, device_id]).await? > 0)
}

/// Statements deleting devices and everything that authenticates as them (run them in one
/// batch, so they go atomically).
pub fn delete_devices_stmts(db: &Db, user_id: &str, device_ids: &[String]) -> Result<Vec<worker::D1PreparedStatement>> {
    let mut stmts = Vec::new();
    for d in device_ids {
        stmts.push(db.stmt("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", params![user_id, d])?);
        stmts.push(db.stmt("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", params![user_id, d])?);
        stmts.push(db.stmt("DELETE FROM devices WHERE user_id = ? AND device_id = ?", params![user_id, d])?);
        // OAuth sessions of the device: its JWTs and refresh tokens die with it.
        stmts.push(db.stmt(
            "UPDATE oauth_sessions SET revoked_ts = ? WHERE user_id = ? AND device_id = ? AND revoked_ts IS NULL",
            params![now_ms(), user_id, d],
        )?);
    }
    Ok(stmts)
}

// ---- failed logins ----

/// Timestamps of the failures recorded for `keys` since `since`, per key.
/// `(key, ts, row id)` of each record for `keys` since `since`.
pub async fn login_failures(db: &Db, keys: &[String], since: u64) -> Result<Vec<(String, u64, i64)>> {
    #[derive(Deserialize)]
    struct Row {
        key: String,
        ts: f64,
        id: i64,
    }
    let mut out = Vec::new();
    for key in keys {
        let rows: Vec<Row> = db.all("SELECT key, ts, rowid AS id FROM login_failures WHERE key = ? AND ts > ?", params![key, since]).await?;
        out.extend(rows.into_iter().map(|r| (r.key, r.ts as u64, r.id)));
    }
    Ok(out)
}

/// Records a login attempt for each key (and drops records older than the window). Returns
/// the row IDs, so that a successful attempt can be taken back.
pub async fn record_login_attempt(db: &Db, keys: &[String], expire_before: u64) -> Result<Vec<i64>> {
    #[derive(Deserialize)]
    struct Id {
        id: i64,
    }
    let now = now_ms();
    let mut ids = Vec::new();
    for key in keys {
        db.run("DELETE FROM login_failures WHERE key = ? AND ts < ?", params![key, expire_before]).await?;
        if let Some(r) = db.first::<Id>("INSERT INTO login_failures (key, ts) VALUES (?, ?) RETURNING rowid AS id", params![key, now]).await? {
            ids.push(r.id);
        }
    }
    Ok(ids)
}

/// Takes back the records of a successful attempt.
pub async fn forget_login_attempt(db: &Db, ids: &[i64]) -> Result<()> {
    for id in ids {
        db.run("DELETE FROM login_failures WHERE rowid = ?", params![id]).await?;
    }
    Ok(())
}

// ---- admin nonces ----

pub async fn create_nonce(db: &Db, nonce: &str) -> Result<()> {
    let now = now_ms();
    db.batch(vec![
        db.stmt("DELETE FROM admin_nonces WHERE created_ts < ?", params![now.saturating_sub(600_000)])?,
        db.stmt("INSERT INTO admin_nonces (nonce, created_ts) VALUES (?, ?)", params![nonce, now])?,
    ])
    .await?;
    Ok(())
}

/// Consumes a nonce younger than `max_age_ms`; true only for the one caller that wins.
pub async fn consume_nonce(db: &Db, nonce: &str, max_age_ms: u64) -> Result<bool> {
    let changed = db
        .run("UPDATE admin_nonces SET used = 1 WHERE nonce = ? AND used = 0 AND created_ts > ?", params![nonce, now_ms().saturating_sub(max_age_ms)])
        .await?;
    Ok(changed == 1)
}
