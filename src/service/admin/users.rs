//! Account administration: deactivation (as the client API's), password resets, shadow bans.

use ruma::{RoomId, UserId};
use serde_json::json;

use crate::core::room::pdu::NewEvent;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::timeline::append_via_room;
use crate::store::{accounts, admin as store};

/// Deactivates a local account as `POST /account/deactivate` does: profile, devices, tokens,
/// keys and backups go, and the user leaves every room (and rejects pending invites).
pub async fn deactivate(ctx: &Ctx, user: &UserId) -> Result<()> {
    let devices: Vec<String> = accounts::list_devices(&ctx.db, user.as_str()).await?.into_iter().map(|d| d.device_id).collect();
    accounts::deactivate(&ctx.db, user.as_str()).await?;
    crate::store::e2ee::delete_all_keys(&ctx.db, user.as_str()).await?;
    crate::service::keys::forget_devices(&ctx.env, &ctx.db, &ctx.config, user.as_str(), &devices).await?;
    crate::store::backup::delete_all(&ctx.db, user.as_str()).await?;
    for membership in ["join", "invite", "knock"] {
        for room in crate::store::rooms::rooms_with_membership(&ctx.db, user.as_str(), membership).await? {
            let Ok(room_id) = RoomId::parse(&room) else { continue };
            if let Err(e) = leave(ctx, user, &room_id).await {
                crate::error::log_error(&format!("leaving {room} on deactivation: {e}"));
            }
        }
    }
    Ok(())
}

/// `user` leaves `room_id` (its own leave event, through the room's writer).
pub async fn leave(ctx: &Ctx, user: &UserId, room_id: &RoomId) -> Result<()> {
    let ev = NewEvent {
        kind: "m.room.member".into(),
        state_key: Some(user.to_string()),
        content: json!({ "membership": "leave" }),
        sender: user.to_owned(),
        redacts: None,
    };
    append_via_room(ctx, room_id, &[ev], None).await?;
    Ok(())
}

/// Sets a new password; with `logout`, every device and token of the user goes (Synapse's
/// default for the admin reset).
pub async fn set_password(ctx: &Ctx, user: &UserId, password: &str, logout: bool) -> Result<()> {
    if password.is_empty() || password.len() > 512 {
        return Err(crate::err!(InvalidParam, "The password must be 1 to 512 bytes"));
    }
    let hash = crate::service::password::hash(password, ctx.config.pbkdf2_iterations).await?;
    accounts::set_password(&ctx.db, user.as_str(), &hash).await?;
    if logout {
        let devices: Vec<String> = accounts::list_devices(&ctx.db, user.as_str()).await?.into_iter().map(|d| d.device_id).collect();
        crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, user.as_str(), &devices).await?;
        store::delete_all_devices(&ctx.db, user.as_str()).await?;
    }
    Ok(())
}

/// Whether `user`'s sends are dropped: a shadow-banned user's events are answered with an
/// event ID but never stored, so they reach nobody (Synapse's shadow ban).
pub async fn is_shadow_banned(ctx: &Ctx, user: &UserId) -> Result<bool> {
    store::is_shadow_banned(&ctx.db, user.as_str()).await
}
