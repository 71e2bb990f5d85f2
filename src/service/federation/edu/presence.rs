//! `m.presence` both ways (spec: server-server-api, "Presence"; schema
//! `definitions/event-schemas/m.presence.yaml`):
//! `{push: [{user_id, presence, status_msg?, last_active_ago, currently_active?}]}`.
//!
//! Out: a local user's presence change goes to every server with a member sharing a joined
//! room with them (presence is always on here: there is no setting that turns it off).
//! In: each update is accepted only for a user of the origin who shares a room with one of
//! our users (nobody here could see anyone else's), stored in the `presence` table as a
//! local user's is, so `/sync` and `GET /presence/{userId}/status` show it, and wakes the
//! local users sharing a room with them.

use ruma::{ServerName, UserId};
use serde_json::{json, Value};

use crate::core::federation::queue;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::federation::sender;
use crate::service::wakeups;
use crate::store::sync as sstore;

/// Updates looked at per EDU (Synapse sends at most a few hundred per transaction).
const MAX_UPDATES: usize = 500;

/// Sends a local user's current presence to the servers of everyone sharing a room with
/// them. `sharing`: those users (local and remote), when the caller has them.
pub async fn send(ctx: &Ctx, user_id: &str, sharing: Option<Vec<String>>) -> Result<()> {
    let sharing = match sharing {
        Some(s) => s,
        None => sstore::users_sharing_rooms(&ctx.db, user_id).await?,
    };
    let ours = ctx.config.server_name.as_str();
    let servers: Vec<&str> = sharing.iter().filter_map(|u| queue::server_of(u)).filter(|s| *s != ours).collect();
    if servers.is_empty() {
        return Ok(());
    }
    let Some(p) = sstore::get_presence(&ctx.db, user_id).await? else { return Ok(()) };
    let mut update = json!({
        "user_id": user_id,
        "presence": p.presence,
        "last_active_ago": now_ms().saturating_sub(p.last_active_ts as u64),
        "currently_active": p.currently_active != 0.0,
    });
    if let (Some(m), Some(u)) = (p.status_msg, update.as_object_mut()) {
        u.insert("status_msg".into(), json!(m));
    }
    let edu = json!({ "edu_type": "m.presence", "content": { "push": [update] } });
    sender::send_edu(&ctx.env, &ctx.config, servers, &edu).await;
    Ok(())
}

/// Applies one `m.presence` EDU from `origin`. An update that is not acceptable is skipped
/// (logged) and the others still apply.
pub async fn receive(ctx: &Ctx, origin: &ServerName, content: &Value) -> Result<()> {
    let Some(push) = content.get("push").and_then(Value::as_array) else { return Ok(()) };
    for update in push.iter().take(MAX_UPDATES) {
        let Some(user) = update.get("user_id").and_then(Value::as_str) else { continue };
        if !UserId::parse(user).is_ok_and(|u| u.server_name() == origin) {
            worker::console_warn!("m.presence from {origin} for {user}, not its user: dropped");
            continue;
        }
        let Some(presence) = update.get("presence").and_then(Value::as_str).filter(|p| matches!(*p, "online" | "offline" | "unavailable")) else {
            continue;
        };
        let sharing = sstore::users_sharing_rooms(&ctx.db, user).await?;
        let ours = ctx.config.server_name.as_str();
        if !sharing.iter().any(|u| u != user && queue::server_of(u) == Some(ours)) {
            continue;
        }
        let ago = update.get("last_active_ago").and_then(Value::as_u64).unwrap_or(0);
        let status_msg = update.get("status_msg").and_then(Value::as_str);
        let currently_active = update.get("currently_active").and_then(Value::as_bool).unwrap_or(false);
        if sstore::put_remote_presence(&ctx.db, user, presence, status_msg, now_ms().saturating_sub(ago), currently_active).await? {
            wakeups::notify_users(&ctx.env, &ctx.config, sharing).await;
        }
    }
    Ok(())
}
