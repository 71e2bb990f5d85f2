//! Typing notifications (spec: client-server-api, "Typing Notifications",
//! `modules/typing_notifications.md`). The room's `Room` Durable Object keeps who is typing
//! and for how long, and publishes changes to the typing stream; the room's other servers
//! get an `m.typing` EDU (`service::federation::edu::typing`).

use serde::Deserialize;
use serde_json::json;

use crate::api::auth::Authed;
use crate::api::params::room_id as parse_room_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::edu;
use crate::store::rooms;

#[derive(Deserialize)]
struct Body {
    typing: bool,
    timeout: Option<u64>,
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
pub async fn typing_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, user_id: &str) -> Result<Response> {
    let room = parse_room_id(room_id)?;
    crate::core::ids::parse_client_user_id(user_id)?;
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot set typing for another user"));
    }
    let body: Body = req.json()?;
    if rooms::membership(&ctx.db, room.as_str(), user_id).await?.as_deref() != Some("join") {
        return Err(err!(Forbidden, "You are not in this room"));
    }
    edu::typing::set(ctx, &room, &me.user_id, body.typing, body.timeout).await?;
    Ok(Response::ok(json!({})))
}
