//! `presence`: the user's and that of everyone sharing a joined room with them; and the
//! presence a sync itself sets (`set_presence`).

use crate::core::filter::Filter;
use crate::core::sync::{PresenceContent, PresenceEvent};
use crate::core::sync_token::SyncToken;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::federation::edu;
use crate::service::wakeups;
use crate::store::sync as sstore;

/// Presence changes in `(since, now]` (everything in an initial sync), as the filter allows.
pub async fn since(ctx: &Ctx, user: &str, f: &Filter, since: Option<&SyncToken>, now: &SyncToken) -> Result<Vec<PresenceEvent>> {
    let after = since.map_or(0, |s| s.presence);
    if since.is_some() && now.presence <= after {
        return Ok(vec![]);
    }
    let now_ts = now_ms();
    let rows = sstore::presence_since(&ctx.db, user, after, now.presence).await?;
    Ok(rows
        .into_iter()
        .map(|pr| PresenceEvent {
            sender: pr.user_id,
            content: PresenceContent {
                presence: pr.presence,
                last_active_ago: now_ts.saturating_sub(pr.last_active_ts as u64),
                currently_active: pr.currently_active != 0.0,
                status_msg: pr.status_msg,
            },
        })
        .filter(|e| f.presence.matches("m.presence", &e.sender, &serde_json::to_value(&e.content).unwrap_or_default()))
        .collect())
}

/// Sets the presence a sync asks for (`online` or `unavailable`); when others can see a
/// change, wakes the syncs of everyone sharing a room with the user and tells their servers
/// (and, while nothing changes, reminds those servers now and then).
pub async fn set_by_sync(ctx: &Ctx, user: &str, presence: &str) -> Result<()> {
    let old = sstore::get_presence(&ctx.db, user).await?;
    set_by_sync_over(ctx, user, presence, old).await?;
    Ok(())
}

/// [`set_by_sync`] over the stored row `old`, already read; whether the presence stream moved.
pub async fn set_by_sync_over(ctx: &Ctx, user: &str, presence: &str, old: Option<sstore::PresenceRow>) -> Result<bool> {
    let write = sstore::set_presence_over(&ctx.db, user, presence, None, old).await?;
    if write.changed {
        let users = sstore::users_sharing_rooms(&ctx.db, user).await?;
        wakeups::notify_users(&ctx.env, &ctx.config, users.clone()).await;
        edu::presence::send(ctx, user, Some(users)).await?;
    } else if write.refreshed {
        edu::presence::keep_alive(ctx, user).await?;
    }
    Ok(write.changed)
}
