//! Account lifecycle rules shared by the client API and the admin API: deactivation and
//! leaving a room in the user's own name.

use ruma::{RoomId, UserId};
use serde_json::json;

use crate::core::room::pdu::NewEvent;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::timeline::append_via_room;
use crate::store::accounts;

/// Deactivates a local account (`POST /account/deactivate`, the admin API's deactivation): profile, devices, tokens,
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
