//! `m.signing_key_update` from other servers (spec: server-server-api, "End-to-End
//! Encryption"): one of the origin's users has a new master and/or self-signing key.

use ruma::{ServerName, UserId};
use serde_json::Value;

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::service::keys;
use crate::store::remote_devices as rstore;

/// Applies one `m.signing_key_update` EDU from `origin`: the keys replace the cached ones and
/// our users who share a room with the user see them in `device_lists.changed`.
pub async fn receive(ctx: &Ctx, origin: &ServerName, content: &Value) -> Result<()> {
    let user = content.get("user_id").and_then(Value::as_str).ok_or_else(|| err!(BadJson, "user_id missing"))?;
    let id = UserId::parse(user).map_err(|_| err!(BadJson, "Invalid user_id"))?;
    if id.server_name() != origin {
        return Err(err!(Forbidden, "{origin} cannot speak for {user}"));
    }
    if !rstore::is_tracked(&ctx.db, ctx.server_name(), user).await? {
        return rstore::forget(&ctx.db, &[user.to_owned()]).await;
    }
    let about = |k: &&Value| k.get("user_id").and_then(Value::as_str) == Some(user);
    let master = content.get("master_key").filter(about);
    let self_signing = content.get("self_signing_key").filter(about);
    if master.is_some() || self_signing.is_some() {
        rstore::set_signing_keys(&ctx.db, user, master, self_signing).await?;
    }
    keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await
}
