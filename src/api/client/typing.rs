//! Typing notifications (spec: client-server-api, "Typing Notifications",
//! `modules/typing_notifications.md`). The room's `Room` Durable Object keeps who is typing
//! and for how long, and publishes changes to the typing stream.

use serde::Deserialize;
use serde_json::json;

use crate::api::auth::Authed;
use crate::api::params::room_id as parse_room_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
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
    let fail = |e: worker::Error| Error::internal(format!("Room object: {e}"));
    let ns = ctx.env.durable_object("ROOM").map_err(fail)?;
    let stub = ns.id_from_name(room.as_str()).map_err(fail)?.get_stub().map_err(fail)?;
    let payload = json!({ "room_id": room, "user_id": user_id, "typing": body.typing, "timeout": body.timeout });
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post).with_body(Some(wasm_bindgen::JsValue::from_str(&payload.to_string())));
    let r = worker::Request::new_with_init("https://room/typing", &init).map_err(fail)?;
    let mut resp = stub.fetch_with_request(r).await.map_err(fail)?;
    if resp.status_code() != 200 {
        let j: serde_json::Value = resp.json().await.map_err(fail)?;
        return Err(Error::from_response(resp.status_code(), &j));
    }
    Ok(Response::ok(json!({})))
}
