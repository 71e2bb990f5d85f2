//! Server-side key backups in D1 (`migrations/0007_key_backup.sql`): backup versions and
//! their session keys.
//!
//! Every change to a version's keys is one `batch()` that also moves the version's `etag`
//! and `count`, computed in SQL from the rows as they are inside that batch (never from an
//! earlier read), so concurrent uploads from several devices keep both exact. Writes are
//! guarded by "this is still the current version" inside the same statements, so a backup
//! deleted or replaced between two requests never receives keys.

use serde::Deserialize;
use serde_json::Value;

use crate::core::backup::{KeyMeta, SessionKey};
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// The spec's keep-or-replace rule (`core::backup::should_replace`, the tested reference) in
/// SQL: `n` is the uploaded key, `k` the stored one.
macro_rules! better {
    ($n:literal, $k:literal) => {
        concat!(
            "(",
            $n,
            ".is_verified > ",
            $k,
            ".is_verified OR (",
            $n,
            ".is_verified = ",
            $k,
            ".is_verified AND (",
            $n,
            ".first_message_index < ",
            $k,
            ".first_message_index OR (",
            $n,
            ".first_message_index = ",
            $k,
            ".first_message_index AND ",
            $n,
            ".forwarded_count < ",
            $k,
            ".forwarded_count))))"
        )
    };
}

/// `?2` (with `?1` the user) is the user's current version: the highest not deleted.
const IS_CURRENT: &str = "?2 = (SELECT MAX(version) FROM backup_versions WHERE user_id = ?1 AND deleted = 0)";

fn num(v: Option<f64>) -> u64 {
    v.unwrap_or(0.0) as u64
}

/// A backup version as `GET /room_keys/version` describes it.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub version: i64,
    pub algorithm: String,
    pub auth_data: Value,
    pub etag: u64,
    pub count: u64,
}

#[derive(Deserialize)]
struct VersionRow {
    version: f64,
    algorithm: String,
    auth_data: String,
    etag: f64,
    count: f64,
}

impl From<VersionRow> for VersionInfo {
    fn from(r: VersionRow) -> Self {
        VersionInfo {
            version: r.version as i64,
            algorithm: r.algorithm,
            auth_data: serde_json::from_str(&r.auth_data).unwrap_or(Value::Object(Default::default())),
            etag: r.etag as u64,
            count: r.count as u64,
        }
    }
}

/// Creates the user's next version (one more than any version ever issued to them, deleted
/// or not), which becomes the current one. One statement, so two creations cannot collide.
pub async fn create_version(db: &Db, user: &str, algorithm: &str, auth_data: &Value) -> Result<i64> {
    #[derive(Deserialize)]
    struct R {
        version: f64,
    }
    let rows: Vec<R> = db
        .all(
            "INSERT INTO backup_versions (user_id, version, algorithm, auth_data)
             SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3 FROM backup_versions WHERE user_id = ?1
             RETURNING version",
            params![user, algorithm, auth_data.to_string()],
        )
        .await?;
    rows.first().map(|r| r.version as i64).ok_or_else(|| crate::error::Error::internal("backup version insert returned no row"))
}

/// A version that exists and is not deleted; `None` asks for the current one.
pub async fn get_version(db: &Db, user: &str, version: Option<i64>) -> Result<Option<VersionInfo>> {
    let row: Option<VersionRow> = match version {
        Some(v) => {
            db.first(
                "SELECT version, algorithm, auth_data, etag, count FROM backup_versions
                 WHERE user_id = ?1 AND version = ?2 AND deleted = 0",
                params![user, v],
            )
            .await?
        }
        None => {
            db.first(
                "SELECT version, algorithm, auth_data, etag, count FROM backup_versions
                 WHERE user_id = ?1 AND deleted = 0 ORDER BY version DESC LIMIT 1",
                params![user],
            )
            .await?
        }
    };
    Ok(row.map(VersionInfo::from))
}

/// Replaces a version's `auth_data` if the version exists and is not deleted and its
/// algorithm is `algorithm`. Returns whether it did.
pub async fn update_auth_data(db: &Db, user: &str, version: i64, algorithm: &str, auth_data: &Value) -> Result<bool> {
    let changed = db
        .run(
            "UPDATE backup_versions SET auth_data = ?4 WHERE user_id = ?1 AND version = ?2 AND deleted = 0 AND algorithm = ?3",
            params![user, version, algorithm, auth_data.to_string()],
        )
        .await?;
    Ok(changed > 0)
}

/// Deletes a version and all of its keys (the row stays, marked deleted, so the number is
/// never issued again). `false` if the user never had that version; deleting a deleted
/// version again succeeds.
pub async fn delete_version(db: &Db, user: &str, version: i64) -> Result<bool> {
    let changes = db
        .batch(vec![
            db.stmt("DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2", params![user, version])?,
            db.stmt(
                "UPDATE backup_versions SET deleted = 1, auth_data = '{}', count = 0, etag = etag + 1
                 WHERE user_id = ?1 AND version = ?2",
                params![user, version],
            )?,
        ])
        .await?;
    Ok(changes.get(1).copied().unwrap_or(0) > 0)
}

/// What a key upload found.
#[derive(Debug)]
pub enum PutOutcome {
    /// Stored (as the keep-or-replace rule decided); the version's new `etag` and `count`.
    Stored { etag: u64, count: u64 },
    /// The version exists but is not the current one (`M_WRONG_ROOM_KEYS_VERSION`).
    NotCurrent { current: i64 },
    /// No such version, or it was deleted (`M_NOT_FOUND`).
    NotFound,
}

/// `WITH n(...)` over the sessions in `?3`, a JSON array of
/// `[room_id, session_id, first_message_index, forwarded_count, is_verified, session_data]`:
/// one bound parameter carries a whole chunk, so even a large upload is a few statements.
const SESSIONS_CTE: &str = "WITH n(room_id, session_id, first_message_index, forwarded_count, is_verified, session_data) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]')
    FROM json_each(?3))";

/// The JSON text of one statement's sessions stays under this (D1 caps a value at 1 MB).
const CHUNK_BYTES: usize = 512 * 1024;

/// Splits the upload into chunks of JSON rows for [`SESSIONS_CTE`].
fn chunks(keys: &[SessionKey]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    let mut size = 0;
    for k in keys {
        let row = serde_json::json!([
            k.room_id,
            k.session_id,
            k.meta.first_message_index,
            k.meta.forwarded_count,
            k.meta.is_verified as i64,
            k.session_data.to_string()
        ])
        .to_string();
        if size + row.len() > CHUNK_BYTES && !rows.is_empty() {
            out.push(format!("[{}]", rows.join(",")));
            rows.clear();
            size = 0;
        }
        size += row.len() + 1;
        rows.push(row);
    }
    if !rows.is_empty() {
        out.push(format!("[{}]", rows.join(",")));
    }
    out
}

/// Stores uploaded keys in `version`, which must be the user's current version. For each
/// session the stored key is kept or replaced by the spec's rule, in SQL. Per chunk of
/// sessions, one statement first moves `count` (by the sessions not stored yet) and `etag`
/// (if any session is new or better), then one statement upserts the chunk; both only act
/// while `version` is current. The whole upload, however many chunks, is one batch.
pub async fn put_keys(db: &Db, user: &str, version: i64, keys: &[SessionKey]) -> Result<PutOutcome> {
    const MATCH: &str = "k.user_id = ?1 AND k.version = ?2 AND k.room_id = n.room_id AND k.session_id = n.session_id";
    let mut stmts = Vec::new();
    for chunk in chunks(keys) {
        let p = params![user, version, chunk];
        let cte = SESSIONS_CTE;
        let bump = format!(
            "{cte}
             UPDATE backup_versions SET
               count = count + (SELECT COUNT(*) FROM n WHERE NOT EXISTS (SELECT 1 FROM backup_keys k WHERE {MATCH})),
               etag = etag + EXISTS (SELECT 1 FROM n LEFT JOIN backup_keys k ON {MATCH}
                                     WHERE k.session_id IS NULL OR {better})
             WHERE user_id = ?1 AND version = ?2 AND {IS_CURRENT}",
            better = better!("n", "k"),
        );
        let upsert = format!(
            "{cte}
             INSERT INTO backup_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count,
                                      is_verified, session_data)
             SELECT ?1, ?2, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
             FROM n WHERE {IS_CURRENT}
             ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
               first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
               is_verified = excluded.is_verified, session_data = excluded.session_data
             WHERE {better}",
            better = better!("excluded", "backup_keys"),
        );
        stmts.push(db.stmt(&bump, p.clone())?);
        stmts.push(db.stmt(&upsert, p)?);
    }
    stmts.push(db.stmt(
        "SELECT (SELECT MAX(version) FROM backup_versions WHERE user_id = ?1 AND deleted = 0) AS current,
                etag, count
         FROM (SELECT 1) LEFT JOIN backup_versions ON user_id = ?1 AND version = ?2 AND deleted = 0",
        params![user, version],
    )?);
    let results = db.batch_rows(stmts).await?;
    #[derive(Deserialize)]
    struct R {
        current: Option<f64>,
        etag: Option<f64>,
        count: Option<f64>,
    }
    let last = results.last().and_then(|r| r.first()).cloned().unwrap_or(Value::Null);
    let r: R = serde_json::from_value(last)?;
    Ok(match (r.current, r.etag) {
        (Some(c), Some(_)) if c as i64 == version => PutOutcome::Stored { etag: num(r.etag), count: num(r.count) },
        (Some(c), Some(_)) => PutOutcome::NotCurrent { current: c as i64 },
        _ => PutOutcome::NotFound,
    })
}

/// Which keys of a version a read or delete addresses.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    All,
    Room(&'a str),
    Session(&'a str, &'a str),
}

impl Scope<'_> {
    /// The filter on `backup_keys` (user `?1`, version `?2`) and its extra parameters.
    fn filter(&self) -> (&'static str, Vec<Value>) {
        match self {
            Scope::All => ("user_id = ?1 AND version = ?2", vec![]),
            Scope::Room(r) => ("user_id = ?1 AND version = ?2 AND room_id = ?3", params![r]),
            Scope::Session(r, s) => ("user_id = ?1 AND version = ?2 AND room_id = ?3 AND session_id = ?4", params![r, s]),
        }
    }
}

/// One stored key.
#[derive(Debug, Deserialize)]
pub struct KeyRow {
    pub room_id: String,
    pub session_id: String,
    first_message_index: f64,
    forwarded_count: f64,
    is_verified: f64,
    session_data: String,
}

impl KeyRow {
    pub fn meta(&self) -> KeyMeta {
        KeyMeta {
            is_verified: self.is_verified != 0.0,
            first_message_index: self.first_message_index as u64,
            forwarded_count: self.forwarded_count as u64,
        }
    }

    pub fn session_data(&self) -> Value {
        serde_json::from_str(&self.session_data).unwrap_or(Value::Object(Default::default()))
    }
}

/// The keys of a version in `scope`; `None` if the version does not exist or was deleted.
/// The version check and the read are one batch (one snapshot).
pub async fn get_keys(db: &Db, user: &str, version: i64, scope: Scope<'_>) -> Result<Option<Vec<KeyRow>>> {
    let (filter, extra) = scope.filter();
    let mut p = params![user, version];
    p.extend(extra);
    let rows = db
        .batch_rows(vec![
            db.stmt("SELECT 1 AS found FROM backup_versions WHERE user_id = ?1 AND version = ?2 AND deleted = 0", params![user, version])?,
            db.stmt(
                &format!(
                    "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
                     FROM backup_keys WHERE {filter}"
                ),
                p,
            )?,
        ])
        .await?;
    if rows.first().is_none_or(|r| r.is_empty()) {
        return Ok(None);
    }
    let keys = rows.into_iter().nth(1).unwrap_or_default();
    Ok(Some(keys.into_iter().map(serde_json::from_value).collect::<Result<Vec<KeyRow>, _>>()?))
}

/// Deletes the keys of a version in `scope` (any version that exists, current or not),
/// moving `count` down and `etag` on if anything was deleted, in one batch. Returns the
/// version's new `(etag, count)`, or `None` if the version does not exist or was deleted.
pub async fn delete_keys(db: &Db, user: &str, version: i64, scope: Scope<'_>) -> Result<Option<(u64, u64)>> {
    let (filter, extra) = scope.filter();
    let mut p = params![user, version];
    p.extend(extra);
    let results = db
        .batch_rows(vec![
            db.stmt(
                &format!(
                    "UPDATE backup_versions SET
                       count = count - (SELECT COUNT(*) FROM backup_keys WHERE {filter}),
                       etag = etag + EXISTS (SELECT 1 FROM backup_keys WHERE {filter})
                     WHERE user_id = ?1 AND version = ?2 AND deleted = 0"
                ),
                p.clone(),
            )?,
            db.stmt(&format!("DELETE FROM backup_keys WHERE {filter}"), p)?,
            db.stmt("SELECT etag, count FROM backup_versions WHERE user_id = ?1 AND version = ?2 AND deleted = 0", params![user, version])?,
        ])
        .await?;
    #[derive(Deserialize)]
    struct R {
        etag: f64,
        count: f64,
    }
    match results.get(2).and_then(|r| r.first()) {
        None => Ok(None),
        Some(v) => {
            let r: R = serde_json::from_value(v.clone())?;
            Ok(Some((r.etag as u64, r.count as u64)))
        }
    }
}

/// Removes every backup of a user (account deactivation).
pub async fn delete_all(db: &Db, user: &str) -> Result<()> {
    db.batch(vec![
        db.stmt("DELETE FROM backup_keys WHERE user_id = ?1", params![user])?,
        db.stmt("UPDATE backup_versions SET deleted = 1, auth_data = '{}', count = 0 WHERE user_id = ?1", params![user])?,
    ])
    .await?;
    Ok(())
}
