//! Invites from other servers (spec: server-server-api, "Inviting to a room"; the v2 API).

use ruma::ServerName;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{parse_json, Request, Response};
use crate::service::federation::invites::{receive, InviteBody};

/// # `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
/// The invite with this server's signature added; it then shows in the invitee's `/sync`.
pub async fn invite_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, event_id: &str) -> Result<Response> {
    let body: InviteBody = parse_json(req.json_value()?)?;
    match receive(ctx, origin, room_id, event_id, body).await? {
        Ok(v) => Ok(Response::ok(v)),
        Err(refusal) => {
            let (status, body) = refusal.response();
            Ok(Response::json(status, &body))
        }
    }
}
