//! Creating rooms and listing the user's rooms (spec: client-server-api, "Rooms").

use serde_json::json;

use crate::api::auth::Authed;
use crate::core::room::create::CreateRoomRequest;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::rooms as room_service;
use crate::store::rooms;

/// # `POST /_matrix/client/v3/createRoom`
/// Presets, visibility, `initial_state`, invites, `is_direct`, `power_level_content_override`,
/// `creation_content`, `room_version`, `room_alias_name`.
pub async fn create_room_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body: CreateRoomRequest = req.json()?;
    let room_id = room_service::create_room(ctx, &me.user_id, body).await?;
    Ok(Response::ok(json!({ "room_id": room_id })))
}

/// # `GET /_matrix/client/v3/joined_rooms`
pub async fn joined_rooms_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let rooms = rooms::rooms_with_membership(&ctx.db, me.user_id.as_str(), "join").await?;
    Ok(Response::ok(json!({ "joined_rooms": rooms })))
}
