//! The scheduled clean-up's SQL (issue 18, [`crate::service::cleanup`]): what has expired,
//! deleted at most `limit` rows per table per run. Every statement deletes by `rowid IN
//! (SELECT … LIMIT ?)`, so a run is bounded and the next run simply continues: there is no
//! cursor to keep, the rows that went are the progress.

use serde::Deserialize;

use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// Rows deleted per table by one run, in [`TABLES`] order.
pub type Counts = Vec<(&'static str, usize)>;

/// What each statement deletes (its name in logs and in the test).
pub const TABLES: [&str; 10] = [
    "media_unused",
    "uia_sessions",
    "login_tokens",
    "login_failures",
    "admin_nonces",
    "oauth_sessions",
    "oauth_refresh_tokens",
    "oauth_code_uses",
    "oauth_browser_sessions",
    "federation_to_device_ids",
];

/// The ages after which things go (ms).
pub struct Ages {
    /// UIA sessions (`store::uia::SESSION_LIFETIME_MS`).
    pub uia_ms: u64,
    /// Failed-login records (the limiter's window).
    pub login_failures_ms: u64,
    /// Revoked OAuth sessions are kept this long after revocation (JWTs naming them have
    /// expired by then; a short grace keeps "revoked" distinguishable in logs).
    pub revoked_oauth_ms: u64,
}

/// Deletes up to `limit` expired rows of each table in one batch (one round trip).
pub async fn delete_expired(db: &Db, now: u64, ages: &Ages, limit: u32) -> Result<Counts> {
    let by_rowid = |table: &str, cond: &str| format!("DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {cond} LIMIT ?)");
    let stmts = vec![
        // Created media IDs whose upload never came (`POST /_matrix/media/v1/create`).
        db.stmt(&by_rowid("media", "uploaded_ts IS NULL AND unused_expires_ts IS NOT NULL AND unused_expires_ts < ?"), params![now, limit])?,
        db.stmt(&by_rowid("uia_sessions", "created_ts < ?"), params![now.saturating_sub(ages.uia_ms), limit])?,
        db.stmt(&by_rowid("login_tokens", "expires_ts < ?"), params![now, limit])?,
        db.stmt(&by_rowid("login_failures", "ts < ?"), params![now.saturating_sub(ages.login_failures_ms), limit])?,
        // Nonces are good for 10 minutes (`store::accounts::take_admin_nonce`).
        db.stmt(&by_rowid("admin_nonces", "created_ts < ?"), params![now.saturating_sub(600_000), limit])?,
        // Revoked sessions, and sessions whose device is gone (never usable again).
        db.stmt(
            &by_rowid(
                "oauth_sessions",
                "revoked_ts < ? OR NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = oauth_sessions.user_id AND d.device_id = oauth_sessions.device_id)",
            ),
            params![now.saturating_sub(ages.revoked_oauth_ms), limit],
        )?,
        // Refresh families of sessions that no longer exist (including those just deleted:
        // a batch's statements see each other's writes), and used tokens older than the
        // 30 days reuse detection keeps (`store::oauth::rotate_refresh`).
        db.stmt(
            &by_rowid(
                "oauth_refresh_tokens",
                "NOT EXISTS (SELECT 1 FROM oauth_sessions s WHERE s.session_id = oauth_refresh_tokens.session_id) OR (used_ts IS NOT NULL AND used_ts < ?)",
            ),
            params![now.saturating_sub(30 * 86_400_000), limit],
        )?,
        // Authorization codes live 600 s in KV; their single-use guard twice that.
        db.stmt(&by_rowid("oauth_code_uses", "used_ts < ?"), params![now.saturating_sub(1_200_000), limit])?,
        db.stmt(&by_rowid("oauth_browser_sessions", "expires_ts < ?"), params![now, limit])?,
        // Federation to-device message IDs: a week (`store::edus::claim_to_device_message`).
        db.stmt(&by_rowid("federation_to_device_ids", "received_ts < ?"), params![now.saturating_sub(7 * 86_400_000), limit])?,
    ];
    let changed = db.batch(stmts).await?;
    Ok(TABLES.iter().copied().zip(changed).collect())
}

/// Local users after `after` (in user ID order), up to `limit`, with their device IDs: the
/// to-device sweep walks the users a slice per run.
pub async fn users_with_devices(db: &Db, after: &str, limit: u32) -> Result<Vec<(String, Vec<String>)>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        devices: Option<String>,
    }
    let rows: Vec<Row> = db
        .all(
            "SELECT u.user_id, (SELECT json_group_array(d.device_id) FROM devices d WHERE d.user_id = u.user_id) AS devices
             FROM users u WHERE u.user_id > ? ORDER BY u.user_id LIMIT ?",
            params![after, limit],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.devices.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default())).collect())
}
