//! Access tokens, refresh tokens (with rotation) and `m.login.token` login tokens.
//! Only SHA-256 hashes of tokens are stored.

use serde::Deserialize;
use worker::D1PreparedStatement;

use crate::core::crypto::{ct_eq, random_token, token_hash};
use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Debug, Clone, Deserialize)]
pub struct AccessToken {
    pub token_hash: String,
    pub user_id: String,
    pub device_id: String,
    pub expires_ts: Option<f64>,
    pub refresh_hash: Option<String>,
    pub used: i64,
    /// The user's shadow-ban flag, read with the token (its row's primary key) so that
    /// `send` needs no read of its own for it.
    #[serde(default)]
    pub shadow_banned: i64,
}

/// Finds the stored token for a presented bearer token (with the user's shadow-ban flag).
pub async fn lookup_access(db: &Db, token: &str) -> Result<Option<AccessToken>> {
    let hash = token_hash(token);
    let row: Option<AccessToken> = db
        .first(
            "SELECT t.token_hash, t.user_id, t.device_id, t.expires_ts, t.refresh_hash, t.used,
                    COALESCE((SELECT u.shadow_banned FROM users u WHERE u.user_id = t.user_id), 0) AS shadow_banned
             FROM access_tokens t WHERE t.token_hash = ?",
            params![hash],
        )
        .await?;
    // The index lookup is by hash; compare again in constant time for good measure.
    Ok(row.filter(|r| ct_eq(r.token_hash.as_bytes(), hash.as_bytes())))
}

/// The statement that finds whether the token with this hash still exists (revocation,
/// logout and deactivation delete the row): one row `{ok: 1}` or none. Cheap (primary key),
/// and meant to ride in the batch a request makes anyway.
pub fn exists_stmt(db: &Db, token_hash: &str) -> Result<D1PreparedStatement> {
    db.stmt("SELECT 1 AS ok FROM access_tokens WHERE token_hash = ?", params![token_hash])
}

/// A statement for a writer's batch that fails the whole batch (SQLite's `json()` on text that
/// is not JSON raises an error, and a D1 batch is one transaction) unless the token with this
/// hash still exists and `user_id` is not shadow-banned: a send with a token from the isolate's
/// cache is confirmed by the batch that writes it, with no round trip of its own. After a
/// failure, [`check_stmt`] tells which of the two it was.
pub fn guard_stmt(db: &Db, token_hash: &str, user_id: &str) -> Result<D1PreparedStatement> {
    db.stmt(
        "SELECT json(CASE WHEN EXISTS (SELECT 1 FROM access_tokens WHERE token_hash = ?1)
           AND NOT EXISTS (SELECT 1 FROM users WHERE user_id = ?2 AND shadow_banned != 0) THEN '1' ELSE 'token guard' END) AS ok",
        params![token_hash, user_id],
    )
}

/// What [`guard_stmt`] checks, as a row: `ok` (1, or null when the token is gone) and `banned`.
pub fn check_stmt(db: &Db, token_hash: &str, user_id: &str) -> Result<D1PreparedStatement> {
    db.stmt(
        "SELECT (SELECT 1 FROM access_tokens WHERE token_hash = ?1) AS ok,
                COALESCE((SELECT shadow_banned FROM users WHERE user_id = ?2), 0) AS banned",
        params![token_hash, user_id],
    )
}

/// First use of an access token that came from a refresh: the refresh token it replaced is
/// no longer needed by the client, so it dies now (spec: "Refreshing access tokens").
pub async fn mark_used(db: &Db, t: &AccessToken) -> Result<()> {
    let mut stmts = vec![db.stmt("UPDATE access_tokens SET used = 1 WHERE token_hash = ?", params![t.token_hash])?];
    if let Some(r) = &t.refresh_hash {
        stmts.push(db.stmt("DELETE FROM refresh_tokens WHERE next_hash = ?", params![r])?);
    }
    db.batch(stmts).await?;
    Ok(())
}

/// Tokens handed to a client.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// Statements that issue a new access token (and refresh token if `refreshable`) for a device.
pub fn issue(db: &Db, user_id: &str, device_id: &str, refreshable: bool, lifetime_ms: u64) -> Result<(Vec<D1PreparedStatement>, Issued)> {
    let now = now_ms();
    let access = random_token("syt");
    let mut stmts = Vec::new();
    let (refresh, expires_ts, refresh_hash) = if refreshable {
        let r = random_token("syr");
        let rh = token_hash(&r);
        stmts.push(db.stmt(
            "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
            params![rh, user_id, device_id, now],
        )?);
        (Some(r), Some(now + lifetime_ms), Some(rh))
    } else {
        (None, None, None)
    };
    stmts.push(db.stmt(
        "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts, refresh_hash) VALUES (?, ?, ?, ?, ?, ?)",
        params![token_hash(&access), user_id, device_id, now, expires_ts, refresh_hash],
    )?);
    Ok((stmts, Issued { access_token: access, refresh_token: refresh, expires_in_ms: refreshable.then_some(lifetime_ms) }))
}

/// Statements that remove every token of a device (a re-login with the same device ID),
/// legacy tokens and OAuth sessions alike.
pub fn revoke_device_tokens(db: &Db, user_id: &str, device_id: &str) -> Result<Vec<D1PreparedStatement>> {
    Ok(vec![
        db.stmt("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", params![user_id, device_id])?,
        db.stmt("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", params![user_id, device_id])?,
        db.stmt(
            "UPDATE oauth_sessions SET revoked_ts = ? WHERE user_id = ? AND device_id = ? AND revoked_ts IS NULL",
            params![now_ms(), user_id, device_id],
        )?,
    ])
}

#[derive(Debug, Deserialize)]
struct RefreshRow {
    user_id: String,
    device_id: String,
}

/// Rotates a refresh token: a new access and refresh token replace it. The presented token
/// stays usable until the new pair is used (so a lost response is not fatal), and any pair
/// issued earlier from the same token is dropped. `None` for an unknown token.
pub async fn refresh(db: &Db, refresh_token: &str, lifetime_ms: u64) -> Result<Option<(String, Issued)>> {
    let rh = token_hash(refresh_token);
    let Some(row) = db.first::<RefreshRow>("SELECT user_id, device_id FROM refresh_tokens WHERE token_hash = ?", params![rh]).await? else {
        return Ok(None);
    };
    let (mut stmts, issued) = issue(db, &row.user_id, &row.device_id, true, lifetime_ms)?;
    let new_rh = token_hash(issued.refresh_token.as_deref().expect("refreshable"));
    // Record where the new token came from. Any other token rotated from the same parent
    // (an earlier unused rotation, or a racing request) dies in this same batch: batches run
    // one at a time, so after N racing refreshes exactly the last session is alive.
    stmts.push(db.stmt("UPDATE refresh_tokens SET parent_hash = ? WHERE token_hash = ?", params![rh, new_rh])?);
    stmts.push(db.stmt(
        "DELETE FROM access_tokens WHERE refresh_hash IN
           (SELECT token_hash FROM refresh_tokens WHERE parent_hash = ? AND token_hash != ?)",
        params![rh, new_rh],
    )?);
    stmts.push(db.stmt("DELETE FROM refresh_tokens WHERE parent_hash = ? AND token_hash != ?", params![rh, new_rh])?);
    // The access token issued with the presented refresh token, and the presented token's own
    // parent (using this token proves the client has it).
    stmts.push(db.stmt("DELETE FROM access_tokens WHERE refresh_hash = ?", params![rh])?);
    stmts.push(db.stmt("DELETE FROM refresh_tokens WHERE next_hash = ?", params![rh])?);
    stmts.push(db.stmt("UPDATE refresh_tokens SET next_hash = ? WHERE token_hash = ?", params![new_rh, rh])?);
    // If the presented token was itself deleted meanwhile (its family was replaced by a
    // racing request), undo: the new tokens must not outlive it.
    stmts.push(db.stmt(
        "DELETE FROM access_tokens WHERE refresh_hash = ?1 AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ?2)",
        params![new_rh, rh],
    )?);
    stmts.push(db.stmt(
        "DELETE FROM refresh_tokens WHERE token_hash = ?1 AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ?2)",
        params![new_rh, rh],
    )?);
    db.batch(stmts).await?;
    Ok(Some((row.user_id, issued)))
}

// ---- m.login.token ----

pub async fn create_login_token(db: &Db, user_id: &str, lifetime_ms: u64) -> Result<String> {
    let token = random_token("syl");
    let now = now_ms();
    db.batch(vec![
        db.stmt("DELETE FROM login_tokens WHERE expires_ts < ?", params![now])?,
        db.stmt(
            "INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)",
            params![token_hash(&token), user_id, now + lifetime_ms],
        )?,
    ])
    .await?;
    Ok(token)
}

/// Consumes a login token atomically (`DELETE … RETURNING`): only one caller gets the user.
pub async fn consume_login_token(db: &Db, token: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
        expires_ts: f64,
    }
    let row: Option<Row> =
        db.first("DELETE FROM login_tokens WHERE token_hash = ? RETURNING user_id, expires_ts", params![token_hash(token)]).await?;
    Ok(row.filter(|r| r.expires_ts as u64 > now_ms()).map(|r| r.user_id))
}

/// Deletes every access token of the user (tokens of device rows that no longer exist).
pub async fn delete_all_access_tokens(db: &Db, user_id: &str) -> Result<()> {
    db.run("DELETE FROM access_tokens WHERE user_id = ?", params![user_id]).await?;
    Ok(())
}
