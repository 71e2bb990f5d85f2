//! `m.typing` both ways (spec: server-server-api, "Typing Notifications"; schema
//! `definitions/event-schemas/m.typing.yaml`): `{room_id, user_id, typing}`.
//!
//! Out: a local member's change goes to the room's `Room` Durable Object (which keeps the
//! typing set and its timeouts) and then to every other server with a joined member.
//! In: accepted only for a user of the origin who is joined to the room, and applied
//! through the same `Room` object. The EDU carries no timeout; as Synapse does, a remote
//! user stops typing after [`REMOTE_TYPING_MS`] unless their server says so again (Synapse
//! repeats a still-typing user every 40 s, so a shorter expiry would flicker).

use ruma::{RoomId, ServerName, UserId};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::durable_objects::protocol::{RoomProto, RoomRequest};
use crate::err;
use crate::error::Result;
use crate::service::federation::sender;
use crate::service::objects::call;
use crate::store::{rooms, servers};

/// How long a remote user's typing lasts without news (Synapse's `FEDERATION_TIMEOUT` for
/// typing).
pub const REMOTE_TYPING_MS: u64 = 60_000;

/// A local member starts (`typing`, for `timeout` ms) or stops typing in a room they are
/// joined to (the caller checked): recorded by the room's object, then sent to the room's
/// other servers.
pub async fn set(ctx: &Ctx, room_id: &RoomId, user_id: &UserId, typing: bool, timeout: Option<u64>) -> Result<()> {
    let request = RoomRequest::Typing { room_id: room_id.to_string(), user_id: user_id.to_string(), typing, timeout };
    call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await?;
    let joined = servers::joined_servers(&ctx.db, room_id.as_str()).await?;
    let edu = json!({ "edu_type": "m.typing", "content": { "room_id": room_id, "user_id": user_id, "typing": typing } });
    sender::send_edu(&ctx.env, &ctx.config, joined.iter().map(String::as_str), &edu).await;
    Ok(())
}

/// Applies one `m.typing` EDU from `origin`.
pub async fn receive(ctx: &Ctx, origin: &ServerName, content: &Value) -> Result<()> {
    let room_id =
        content.get("room_id").and_then(Value::as_str).and_then(|r| RoomId::parse(r).ok()).ok_or_else(|| err!(BadJson, "no valid room_id"))?;
    let user_id =
        content.get("user_id").and_then(Value::as_str).and_then(|u| UserId::parse(u).ok()).ok_or_else(|| err!(BadJson, "no valid user_id"))?;
    let typing = content.get("typing").and_then(Value::as_bool).ok_or_else(|| err!(BadJson, "no typing flag"))?;
    if user_id.server_name() != origin {
        return Err(err!(Forbidden, "{user_id} is not a user of {origin}"));
    }
    if rooms::membership(&ctx.db, room_id.as_str(), user_id.as_str()).await?.as_deref() != Some("join") {
        return Err(err!(Forbidden, "{user_id} is not joined to {room_id}"));
    }
    let request = RoomRequest::Typing { room_id: room_id.to_string(), user_id: user_id.to_string(), typing, timeout: Some(REMOTE_TYPING_MS) };
    call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await?;
    Ok(())
}
