//! The resident server's templates for the membership handshakes (spec: server-server-api,
//! "Joining Rooms", "Knocking upon a room", "Leaving Rooms"): `make_join`, `make_knock`,
//! `make_leave` (`service::federation::templates`).

use ruma::ServerName;

use crate::core::federation::membership::Refusal;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::templates::{make_template, Handshake};

fn answer(r: std::result::Result<serde_json::Value, Refusal>) -> Response {
    match r {
        Ok(v) => Response::ok(v),
        Err(refusal) => {
            let (status, body) = refusal.response();
            Response::json(status, &body)
        }
    }
}

fn versions(req: &Request) -> Vec<&str> {
    req.query.iter().filter(|(k, _)| k == "ver").map(|(_, v)| v.as_str()).collect()
}

/// # `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`
pub async fn make_join_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, user_id: &str) -> Result<Response> {
    let ver = versions(req);
    Ok(answer(make_template(ctx, origin, room_id, user_id, Handshake::Join, Some(&ver)).await?))
}

/// # `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`
pub async fn make_knock_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, user_id: &str) -> Result<Response> {
    let ver = versions(req);
    Ok(answer(make_template(ctx, origin, room_id, user_id, Handshake::Knock, Some(&ver)).await?))
}

/// # `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`
pub async fn make_leave_route(ctx: &Ctx, _req: &Request, origin: &ServerName, room_id: &str, user_id: &str) -> Result<Response> {
    Ok(answer(make_template(ctx, origin, room_id, user_id, Handshake::Leave, None).await?))
}
