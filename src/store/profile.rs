//! Custom profile fields (table `profile_fields`; `displayname` and `avatar_url` are in
//! `users`, see [`crate::store::accounts`]). Values are stored as JSON text.

use serde::Deserialize;

use crate::core::profile::MAX_PROFILE_BYTES;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

#[derive(Deserialize)]
pub struct FieldRow {
    pub key: String,
    pub value: String,
}

/// All custom fields of a user, by key.
pub async fn fields(db: &Db, user_id: &str) -> Result<Vec<FieldRow>> {
    db.all("SELECT key, value FROM profile_fields WHERE user_id = ? ORDER BY key", params![user_id]).await
}

/// One custom field's JSON text.
pub async fn field(db: &Db, user_id: &str, key: &str) -> Result<Option<String>> {
    Ok(db.first::<FieldRow>("SELECT key, value FROM profile_fields WHERE user_id = ? AND key = ?", params![user_id, key]).await?.map(|r| r.value))
}

/// Sets a custom field unless the profile would then exceed 64 KiB; `Ok(false)` if it would.
/// `base_bytes` is the size of everything but the other custom fields (braces, the new
/// member, display name and avatar, see [`crate::core::profile::profile_bytes`]); the
/// statement adds the other fields' members itself, so that two concurrent writes cannot
/// both slip under the limit.
pub async fn set_field_within_limit(db: &Db, user_id: &str, key: &str, value_json: &str, base_bytes: usize) -> Result<bool> {
    let changed = db
        .run(
            "INSERT INTO profile_fields (user_id, key, value)
             SELECT ?1, ?2, ?3
             WHERE ?4 + (SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) + 4), 0)
                         FROM profile_fields WHERE user_id = ?1 AND key <> ?2) <= ?5
             ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value",
            params![user_id, key, value_json, base_bytes, MAX_PROFILE_BYTES],
        )
        .await?;
    Ok(changed > 0)
}

/// Removes a custom field (no error if it was not set).
pub async fn delete_field(db: &Db, user_id: &str, key: &str) -> Result<()> {
    db.run("DELETE FROM profile_fields WHERE user_id = ? AND key = ?", params![user_id, key]).await?;
    Ok(())
}
