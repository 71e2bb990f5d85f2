//! OAuth 2.0 storage: clients, sessions and refresh tokens in D1, authorization codes in KV
//! with a D1 single-use guard, browser sign-ins. Only hashes of secrets are stored.

use serde::Deserialize;

use crate::core::crypto::token_hash;
use crate::core::oauth::authorize::CodeGrant;
use crate::core::oauth::client::ClientMetadata;
use crate::core::oauth::refresh::RefreshState;
use crate::core::time::now_ms;
use crate::error::{Error, Result};
use crate::params;
use crate::store::db::Db;
use crate::store::{accounts, tokens};

/// Authorization codes expire after ten minutes (the design; RFC 6749 section 4.1.2).
pub const CODE_TTL_SECS: u64 = 600;

// ---- clients ----

/// Stores a client; registering the same metadata again is a no-op.
pub async fn create_client(db: &Db, client_id: &str, m: &ClientMetadata) -> Result<()> {
    db.run(
        "INSERT OR IGNORE INTO oauth_clients (client_id, metadata, created_ts) VALUES (?, ?, ?)",
        params![client_id, serde_json::to_string(m)?, now_ms()],
    )
    .await?;
    Ok(())
}

pub async fn get_client(db: &Db, client_id: &str) -> Result<Option<ClientMetadata>> {
    #[derive(Deserialize)]
    struct Row {
        metadata: String,
    }
    let row: Option<Row> = db.first("SELECT metadata FROM oauth_clients WHERE client_id = ?", params![client_id]).await?;
    row.map(|r| serde_json::from_str(&r.metadata).map_err(|e| Error::internal(format!("stored client: {e}")))).transpose()
}

// ---- authorization codes ----

fn code_key(code: &str) -> String {
    format!("oauth_code:{}", token_hash(code).replace('/', "_"))
}

pub async fn put_code(kv: &worker::KvStore, code: &str, grant: &CodeGrant) -> Result<()> {
    kv.put(&code_key(code), serde_json::to_string(grant)?)
        .map_err(|e| Error::internal(format!("KV put: {e}")))?
        .expiration_ttl(CODE_TTL_SECS)
        .execute()
        .await
        .map_err(|e| Error::internal(format!("KV put: {e}")))
}

pub enum CodeUse {
    /// This request won the code.
    Fresh(CodeGrant),
    /// The code was already exchanged, for this session.
    Replayed(String),
    Unknown,
}

/// Consumes a code. KV holds it for ten minutes; the D1 primary key on its hash decides
/// the one winner when token requests race (KV has no atomic read-and-delete).
pub async fn take_code(db: &Db, kv: &worker::KvStore, code: &str, session_id: &str) -> Result<CodeUse> {
    #[derive(Deserialize)]
    struct Used {
        session_id: String,
    }
    let key = code_key(code);
    let hash = token_hash(code);
    let stored = kv.get(&key).text().await.map_err(|e| Error::internal(format!("KV get: {e}")))?;
    let previous = || async {
        let row: Option<Used> = db.first("SELECT session_id FROM oauth_code_uses WHERE code_hash = ?", params![hash]).await?;
        Ok::<_, Error>(row.map(|r| CodeUse::Replayed(r.session_id)).unwrap_or(CodeUse::Unknown))
    };
    let Some(text) = stored else {
        return previous().await;
    };
    let now = now_ms();
    if !db.insert_unique("INSERT INTO oauth_code_uses (code_hash, session_id, used_ts) VALUES (?, ?, ?)", params![hash, session_id, now]).await? {
        return previous().await;
    }
    // Best effort: the guard row already makes the code useless.
    let _ = kv.delete(&key).await;
    let _ = db.run("DELETE FROM oauth_code_uses WHERE used_ts < ?", params![now.saturating_sub(CODE_TTL_SECS * 2000)]).await;
    let grant = serde_json::from_str(&text).map_err(|e| Error::internal(format!("stored code: {e}")))?;
    Ok(CodeUse::Fresh(grant))
}

// ---- sessions and refresh tokens ----

/// Starts a session for `grant` with its first refresh token, creating or reusing the
/// device. Tokens the device had before (legacy or OAuth) stop working: the device now
/// belongs to this session.
pub async fn start_session(
    db: &Db,
    session_id: &str,
    grant: &CodeGrant,
    refresh_token: &str,
    ip: Option<&str>,
    device_name: Option<&str>,
) -> Result<()> {
    let now = now_ms();
    let (u, d) = (grant.user_id.as_str(), grant.device_id.as_str());
    let mut stmts = tokens::revoke_device_tokens(db, u, d)?;
    stmts.push(accounts::upsert_device_stmt(db, u, d, device_name, ip)?);
    stmts.push(db.stmt(
        "INSERT INTO oauth_sessions (session_id, user_id, device_id, client_id, scope, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
        params![session_id, u, d, grant.client_id, grant.scope, now],
    )?);
    stmts.push(db.stmt(
        "INSERT INTO oauth_refresh_tokens (token_hash, session_id, created_ts) VALUES (?, ?, ?)",
        params![token_hash(refresh_token), session_id, now],
    )?);
    db.batch(stmts).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub user_id: String,
    pub device_id: String,
    pub client_id: String,
    pub scope: String,
    pub revoked_ts: Option<f64>,
    /// The device row still exists.
    pub device_present: Option<String>,
}

impl Session {
    /// Not revoked, and its device has not been deleted.
    pub fn is_active(&self) -> bool {
        self.revoked_ts.is_none() && self.device_present.is_some()
    }
}

const SESSION_SELECT: &str = "SELECT s.session_id, s.user_id, s.device_id, s.client_id, s.scope, s.revoked_ts, d.device_id AS device_present
     FROM oauth_sessions s LEFT JOIN devices d ON d.user_id = s.user_id AND d.device_id = s.device_id";

/// The session behind an access token: one indexed read per authenticated request, so a
/// revoked session or a deleted device stops its access tokens at once.
pub async fn get_session(db: &Db, session_id: &str) -> Result<Option<Session>> {
    db.first(&format!("{SESSION_SELECT} WHERE s.session_id = ?"), params![session_id]).await
}

/// A refresh token's state and its session.
pub async fn refresh_lookup(db: &Db, refresh_token: &str) -> Result<Option<(RefreshState, Session)>> {
    #[derive(Deserialize)]
    struct Row {
        session_id: String,
        used_ts: Option<f64>,
    }
    let Some(row) =
        db.first::<Row>("SELECT session_id, used_ts FROM oauth_refresh_tokens WHERE token_hash = ?", params![token_hash(refresh_token)]).await?
    else {
        return Ok(None);
    };
    let Some(s) = get_session(db, &row.session_id).await? else { return Ok(None) };
    let state = RefreshState { client_id: s.client_id.clone(), used: row.used_ts.is_some(), session_revoked: !s.is_active() };
    Ok(Some((state, s)))
}

/// Uses up a refresh token and stores its successor. `false` if another request used it
/// first (the conditional update is the atomic step).
pub async fn rotate_refresh(db: &Db, session_id: &str, old: &str, new: &str) -> Result<bool> {
    let now = now_ms();
    let changed =
        db.run("UPDATE oauth_refresh_tokens SET used_ts = ? WHERE token_hash = ? AND used_ts IS NULL", params![now, token_hash(old)]).await?;
    if changed != 1 {
        return Ok(false);
    }
    db.batch(vec![
        db.stmt("INSERT INTO oauth_refresh_tokens (token_hash, session_id, created_ts) VALUES (?, ?, ?)", params![token_hash(new), session_id, now])?,
        // Only the newest token and the used ones (for reuse detection) matter; keep the
        // chain short.
        db.stmt(
            "DELETE FROM oauth_refresh_tokens WHERE session_id = ? AND used_ts IS NOT NULL AND used_ts < ?",
            params![session_id, now.saturating_sub(30 * 86_400_000)],
        )?,
    ])
    .await?;
    Ok(true)
}

/// Revokes a session: its refresh tokens and access tokens stop working.
pub async fn revoke_session(db: &Db, session_id: &str) -> Result<()> {
    db.run("UPDATE oauth_sessions SET revoked_ts = ? WHERE session_id = ? AND revoked_ts IS NULL", params![now_ms(), session_id]).await?;
    Ok(())
}

/// The session of a refresh token, for revocation.
pub async fn session_of_refresh(db: &Db, refresh_token: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        session_id: String,
    }
    Ok(db
        .first::<Row>("SELECT session_id FROM oauth_refresh_tokens WHERE token_hash = ?", params![token_hash(refresh_token)])
        .await?
        .map(|r| r.session_id))
}

// ---- browser sign-ins ----

pub const BROWSER_SESSION_SECS: u64 = 12 * 3600;

pub async fn create_browser_session(db: &Db, token: &str, user_id: &str) -> Result<()> {
    let now = now_ms();
    db.batch(vec![
        db.stmt("DELETE FROM oauth_browser_sessions WHERE expires_ts < ?", params![now])?,
        db.stmt(
            "INSERT INTO oauth_browser_sessions (token_hash, user_id, created_ts, expires_ts) VALUES (?, ?, ?, ?)",
            params![token_hash(token), user_id, now, now + BROWSER_SESSION_SECS * 1000],
        )?,
    ])
    .await?;
    Ok(())
}

/// The user signed in with this browser cookie, if the sign-in is alive and the account
/// is not deactivated.
pub async fn browser_session_user(db: &Db, token: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let row: Option<Row> = db
        .first(
            "SELECT b.user_id FROM oauth_browser_sessions b JOIN users u ON u.user_id = b.user_id
             WHERE b.token_hash = ? AND b.expires_ts > ? AND u.deactivated = 0",
            params![token_hash(token), now_ms()],
        )
        .await?;
    Ok(row.map(|r| r.user_id))
}

pub async fn delete_browser_session(db: &Db, token: &str) -> Result<()> {
    db.run("DELETE FROM oauth_browser_sessions WHERE token_hash = ?", params![token_hash(token)]).await?;
    Ok(())
}
