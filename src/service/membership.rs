//! Rules about member events that several endpoints share: the profile an invite, join or
//! knock carries, and invite blocking (spec v1.18, "Invite permission", MSC4380).

use crate::core::json::JsonExt;
use ruma::UserId;
use serde_json::{json, Value};

use crate::core::room::pdu::NewEvent;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::store::{accounts, sync as sstore};

/// The account data event by which a user blocks invites.
pub const INVITE_PERMISSION_CONFIG: &str = "m.invite_permission_config";

/// Fills `displayname` and `avatar_url` of a join, invite or knock member event from the
/// profile of its target, when the target is a local user who has them (the spec lets a
/// member event carry them; Synapse fills them the same way, so clients show the name of
/// an invited user rather than their ID).
pub async fn add_profile(ctx: &Ctx, ev: &mut NewEvent, target: &UserId) -> Result<()> {
    if target.server_name() != ctx.config.server_name {
        return Ok(());
    }
    if let Some(u) = accounts::get_user(&ctx.db, target.as_str()).await? {
        if let Some(d) = u.displayname {
            ev.content.set("displayname", json!(d));
        }
        if let Some(a) = u.avatar_url {
            ev.content.set("avatar_url", json!(a));
        }
    }
    Ok(())
}

/// Whether the config content blocks all invites: `default_action` is `block`.
pub fn blocks_invites(config: Option<&Value>) -> bool {
    config.and_then(|c| c.get("default_action")).and_then(Value::as_str) == Some("block")
}

/// Whether a local user blocks invites (their `m.invite_permission_config` account data).
pub async fn invites_blocked(ctx: &Ctx, user: &UserId) -> Result<bool> {
    if user.server_name() != ctx.config.server_name {
        return Ok(false);
    }
    let config = sstore::get_account_data(&ctx.db, user.as_str(), "", INVITE_PERMISSION_CONFIG).await?;
    Ok(blocks_invites(config.as_ref()))
}

/// `403 M_INVITE_BLOCKED` when the user blocks invites (spec: "Invite permission", server
/// behaviour: `/invite`, `createRoom` and `PUT /state/m.room.member`).
pub async fn check_invite_allowed(ctx: &Ctx, user: &UserId) -> Result<()> {
    if invites_blocked(ctx, user).await? {
        return Err(err!(InviteBlocked, "{user} does not accept invites"));
    }
    Ok(())
}
