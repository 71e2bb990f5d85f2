//! `device_lists` of `/sync` and `/keys/changes` (one function for both; the rule is
//! [`crate::core::e2ee::device_list_changes`]).

use crate::core::e2ee;
use crate::core::sync::DeviceLists;
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::e2ee as kstore;

/// Users whose device lists changed between two positions, and users no longer sharing a
/// room. Nothing is read when neither the device-list nor the room stream moved.
pub async fn between(ctx: &Ctx, me: &str, from: &SyncToken, to: &SyncToken) -> Result<DeviceLists> {
    if to.device_lists <= from.device_lists && to.rooms <= from.rooms {
        return Ok(DeviceLists::default());
    }
    let i = kstore::device_list_inputs(&ctx.db, me, from.device_lists, to.device_lists, from.rooms, to.rooms).await?;
    let (changed, left) = e2ee::device_list_changes(me, &i.key_changes, &i.membership_changes, &i.room_members, &i.sharing);
    Ok(DeviceLists { changed, left })
}
