//! The remote media cache (table `remote_media`, migrations/0014_remote_media.sql): which
//! content hash (R2 key, shared with local media) holds `mxc://<server>/<media_id>`.

use serde::Deserialize;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Debug, Deserialize)]
pub struct RemoteMedia {
    pub sha256: String,
    pub content_type: String,
    pub filename: Option<String>,
    pub size: f64,
    pub cached_ts: f64,
    pub quarantined: i64,
}

pub async fn get(db: &Db, server_name: &str, media_id: &str) -> Result<Option<RemoteMedia>> {
    db.first(
        "SELECT sha256, content_type, filename, size, cached_ts, quarantined FROM remote_media WHERE server_name = ? AND media_id = ?",
        params![server_name, media_id],
    )
    .await
}

/// Records fetched content. Two concurrent fetches of one item both store their bytes (R2 is
/// content-addressed, so that is harmless) and the first row stays: the cache ends with one
/// row pointing at content that exists.
pub async fn insert(db: &Db, server_name: &str, media_id: &str, sha256: &str, content_type: &str, filename: Option<&str>, size: u64) -> Result<()> {
    db.run(
        "INSERT INTO remote_media (server_name, media_id, sha256, content_type, filename, size, cached_ts) VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (server_name, media_id) DO NOTHING",
        params![server_name, media_id, sha256, content_type, filename, size, now_ms()],
    )
    .await?;
    Ok(())
}

/// Quarantines (or releases) cached remote media; `false` when it is not cached.
pub async fn set_quarantined(db: &Db, server_name: &str, media_id: &str, quarantined: bool) -> Result<bool> {
    let n = db
        .run("UPDATE remote_media SET quarantined = ? WHERE server_name = ? AND media_id = ?", params![quarantined as i64, server_name, media_id])
        .await?;
    Ok(n == 1)
}
