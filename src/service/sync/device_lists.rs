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
    between_known(ctx, me, from, to, true).await
}

/// [`between`] when the caller already knows whether any member event in the user's rooms
/// may be among the room stream's new events (`member_events`, from a sync's snapshot):
/// without one, only a move of the device-list stream is read.
pub async fn between_known(ctx: &Ctx, me: &str, from: &SyncToken, to: &SyncToken, member_events: bool) -> Result<DeviceLists> {
    if to.device_lists <= from.device_lists && (to.rooms <= from.rooms || !member_events) {
        return Ok(DeviceLists::default());
    }
    let i = kstore::device_list_inputs(&ctx.db, me, from.device_lists, to.device_lists, from.rooms, to.rooms).await?;
    let (changed, left) = e2ee::device_list_changes(me, &i.key_changes, &i.membership_changes, &i.room_members, &i.sharing);
    Ok(DeviceLists { changed, left })
}
