//! Server notices (Synapse's `POST /_synapse/admin/v1/send_server_notice`): each user has a
//! room with the system user `@_server:<server>` ([`NOTICES_LOCALPART`]), created on demand
//! (the user is invited), where the notices are sent.

use ruma::{OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::{json, Value};

use crate::core::admin::NOTICES_LOCALPART;
use crate::core::room::create::CreateRoomRequest;
use crate::core::room::pdu::NewEvent;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::service::timeline::append_via_room;
use crate::store::{admin as store, rooms};

/// The system user that sends notices (created on first use, no password: nobody logs in).
pub async fn system_user(ctx: &Ctx) -> Result<OwnedUserId> {
    let user = UserId::parse(format!("@{NOTICES_LOCALPART}:{}", ctx.server_name())).map_err(|e| Error::internal(format!("notices user: {e}")))?;
    store::ensure_system_user(&ctx.db, user.as_str(), "Server Notices").await?;
    Ok(user)
}

/// Sends `content` (an `m.room.message` content) to `user` in their notices room.
pub async fn send(ctx: &Ctx, user: &UserId, content: Value) -> Result<OwnedEventId> {
    let system = system_user(ctx).await?;
    let room_id = match store::notice_room(&ctx.db, user.as_str()).await? {
        // Still usable: the user has not left or rejected it.
        Some(r) if matches!(rooms::membership(&ctx.db, &r, user.as_str()).await?.as_deref(), Some("join") | Some("invite")) => {
            RoomId::parse(&r).map_err(|e| Error::internal(format!("notice room: {e}")))?
        }
        _ => {
            let body: CreateRoomRequest = serde_json::from_value(json!({
                "preset": "private_chat",
                "name": "Server Notices",
                "invite": [user.as_str()],
                "is_direct": false,
                // Only the server speaks here.
                "power_level_content_override": { "events_default": 100 },
            }))?;
            let room_id = crate::service::rooms::create_room(ctx, &system, body).await?;
            store::set_notice_room(&ctx.db, user.as_str(), room_id.as_str()).await?;
            room_id
        }
    };
    let ev = NewEvent { kind: "m.room.message".into(), state_key: None, content, sender: system, redacts: None };
    let ids = append_via_room(ctx, &room_id, &[ev], None).await?;
    ids.into_iter().next().ok_or_else(|| Error::internal("no event appended"))
}
