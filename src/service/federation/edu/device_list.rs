//! `m.device_list_update` from other servers (spec: server-server-api, "Device Management"):
//! one device of one of the origin's users changed. We keep the device lists of remote users
//! who share a room with one of our users; an update whose `prev_id`s we have all seen
//! applies to the cache, one after a gap (a `prev_id` newer than the last `stream_id` we
//! know) makes us fetch the whole list again (`/user/devices`, in the background). Either
//! way our users who share a room with the user see them in `device_lists.changed`.

use ruma::{ServerName, UserId};
use serde_json::Value;

use crate::core::federation::device_list::{update_action, UpdateAction};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::service::{e2ee, keys};
use crate::store::remote_devices::{self as rstore, RemoteDevice};

/// A stream ID as servers send them (Synapse: integers; strings are read too).
fn stream_id(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Applies one `m.device_list_update` EDU from `origin`.
pub async fn receive(ctx: &Ctx, origin: &ServerName, content: &Value) -> Result<()> {
    let user = content.get("user_id").and_then(Value::as_str).ok_or_else(|| err!(BadJson, "user_id missing"))?;
    let id = UserId::parse(user).map_err(|_| err!(BadJson, "Invalid user_id"))?;
    if id.server_name() != origin {
        return Err(err!(Forbidden, "{origin} cannot speak for {user}"));
    }
    let device_id = content.get("device_id").and_then(Value::as_str).ok_or_else(|| err!(BadJson, "device_id missing"))?;
    let sid = content.get("stream_id").and_then(stream_id).ok_or_else(|| err!(BadJson, "stream_id missing"))?;
    if !rstore::is_tracked(&ctx.db, ctx.server_name(), user).await? {
        // Nobody here shares a room with them: whatever we kept will not be kept up to date.
        return rstore::forget(&ctx.db, &[user.to_owned()]).await;
    }
    let prev: Vec<i64> = content.get("prev_id").and_then(Value::as_array).into_iter().flatten().filter_map(stream_id).collect();
    match update_action(rstore::position(&ctx.db, user).await?, sid, &prev) {
        UpdateAction::Skip => Ok(()),
        UpdateAction::Apply => {
            let device = RemoteDevice {
                device_id: device_id.to_owned(),
                keys: e2ee::remote_device_keys(content.get("keys"), user, device_id),
                display_name: content.get("device_display_name").and_then(Value::as_str).map(str::to_owned),
            };
            let deleted = content.get("deleted").and_then(Value::as_bool).unwrap_or(false);
            rstore::apply_update(&ctx.db, user, sid, &device, deleted).await?;
            keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await
        }
        UpdateAction::Resync => {
            // The cache is not used until the resync.
            rstore::mark_stale(&ctx.db, user).await?;
            keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await?;
            resync_later(ctx, user);
            Ok(())
        }
        // Not cached: our users' clients are told, and their next `/keys/query` fetches the list.
        UpdateAction::Notify => keys::device_list_changed(&ctx.env, &ctx.db, &ctx.config, user).await,
    }
}

/// Resyncs a user's device list after the response (or now, where there is no `waitUntil`).
fn resync_later(ctx: &Ctx, user: &str) {
    let user = user.to_owned();
    let Some(w) = &ctx.wctx else {
        return;
    };
    let env = ctx.env.clone();
    w.wait_until(async move {
        let result = match Ctx::new(env, None) {
            Ok(ctx) => e2ee::resync(&ctx, &user).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            worker::console_warn!("device list resync of {user}: {e}");
        }
    });
}
