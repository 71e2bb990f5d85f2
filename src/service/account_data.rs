//! Writing account data: the store, then the user's syncs wake (every change moves the
//! account-data stream). Shared by the account-data, tag, receipt and push-rule endpoints.

use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::wakeups;
use crate::store::sync as sstore;

/// Writes account data (`room_id` empty for global) and wakes the user's syncs.
pub async fn put(ctx: &Ctx, user: &str, room_id: &str, kind: &str, content: &Value) -> Result<()> {
    sstore::put_account_data(&ctx.db, user, room_id, kind, content).await?;
    wakeups::notify_users(&ctx.env, &ctx.config, [user.to_owned()]).await;
    Ok(())
}
