//! Pushers (spec: client-server-api, "Push Notifications", `pusher.yaml`): the writes of
//! `POST /pushers/set`. Reading them for delivery lives with the sync tables.

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

pub async fn delete(db: &Db, user: &str, app_id: &str, pushkey: &str) -> Result<()> {
    db.run("DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?", params![user, app_id, pushkey]).await?;
    Ok(())
}

/// A pusher as `POST /pushers/set` gives it.
pub struct NewPusher<'a> {
    pub user: &'a str,
    pub device: &'a str,
    pub app_id: &'a str,
    pub pushkey: &'a str,
    pub kind: &'a str,
    pub app_display_name: &'a str,
    pub device_display_name: &'a str,
    pub profile_tag: Option<&'a str>,
    pub lang: &'a str,
    /// The `data` object, as JSON text.
    pub data: &'a str,
}

/// Stores a pusher; unless `append`, other users' pushers with the same app ID and pushkey
/// go (one batch).
pub async fn set(db: &Db, p: &NewPusher<'_>, append: bool) -> Result<()> {
    let mut stmts = Vec::new();
    if !append {
        stmts.push(db.stmt("DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?", params![p.app_id, p.pushkey, p.user])?);
    }
    stmts.push(db.stmt(
        "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, access_token_device, created_ts)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind, app_display_name = excluded.app_display_name,
           device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data",
        params![p.user, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data, p.device, now_ms()],
    )?);
    db.batch(stmts).await?;
    Ok(())
}
