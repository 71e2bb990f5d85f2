//! Paused space-hierarchy walks: the state behind a `next_batch` of `GET /hierarchy`, in KV
//! for ten minutes (short-lived, like OAuth codes; see `store::oauth`).

use crate::core::spaces::HierarchySession;
use crate::error::{Error, Result};

/// How long a `next_batch` token stays usable.
const SESSION_TTL_SECS: u64 = 600;

fn key(token: &str) -> String {
    format!("hierarchy:{token}")
}

pub async fn put_session(kv: &worker::KvStore, token: &str, session: &HierarchySession) -> Result<()> {
    kv.put(&key(token), serde_json::to_string(session)?)
        .map_err(|e| Error::internal(format!("KV put: {e}")))?
        .expiration_ttl(SESSION_TTL_SECS)
        .execute()
        .await
        .map_err(|e| Error::internal(format!("KV put: {e}")))
}

/// The session of a token; `None` if unknown or expired (or not a token of ours).
pub async fn get_session(kv: &worker::KvStore, token: &str) -> Result<Option<HierarchySession>> {
    // Our tokens are short URL-safe strings; anything else is not worth a KV read.
    if token.is_empty() || token.len() > 128 || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Ok(None);
    }
    let text = kv.get(&key(token)).text().await.map_err(|e| Error::internal(format!("KV get: {e}")))?;
    // A session we cannot read back counts as expired.
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}
