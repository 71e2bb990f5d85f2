//! The resident server's side of joins, leaves and knocks from other servers (spec:
//! server-server-api, "Joining Rooms", "Leaving Rooms (Rejecting Invites)", "Knocking upon
//! a room"). The templates (`make_*`) are in `make.rs`; these accept the signed event.

use ruma::{RoomId, ServerName};
use serde_json::{json, Value};

use crate::core::federation::pdu::{incoming, to_wire};
use crate::core::room::pdu::Pdu;
use crate::core::room::{version_rules, STRIPPED_STATE_TYPES};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::{acl, room, sender, visibility};
use crate::store::rooms;

/// Checks the membership event a remote server asks us to accept and runs it through the
/// checks on receipt; returns it as stored.
async fn accept_membership(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, event_id: &str, membership: &str) -> Result<Pdu> {
    let room_id = RoomId::parse(room_id).map_err(|_| err!(InvalidParam, "Invalid room ID"))?;
    let row = rooms::get_room(&ctx.db, room_id.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?;
    acl::check(ctx, &room_id, origin).await?;
    let (_, rules) = version_rules(&row.room_version)?;
    let body = req.json_value()?;
    let pdu = incoming(&rules, &body, Some(&room_id))?;
    if pdu.event_id.as_str() != event_id {
        return Err(err!(BadJson, "The event ID does not match the event"));
    }
    let content = pdu.content_value();
    if pdu.kind.to_string() != "m.room.member" || content.get("membership").and_then(Value::as_str) != Some(membership) {
        return Err(err!(BadJson, "Not a {membership} event"));
    }
    if pdu.state_key.as_deref() != Some(pdu.sender.as_str()) || pdu.sender.server_name() != origin {
        return Err(err!(Forbidden, "The event must be the origin's user's own membership"));
    }
    let (results, _) = room::ingest(ctx, &room_id, origin, vec![body]).await?;
    match results.into_iter().find(|r| r.event_id == event_id) {
        Some(r) if r.accepted => {
            if let Err(e) = sender::send_on_behalf(&ctx.env, &ctx.db, &ctx.config, &pdu, origin.as_str()).await {
                worker::console_error!("forwarding {event_id} of {origin}: {e}");
            }
            Ok(pdu)
        }
        Some(r) => Err(err!(Forbidden, "{}", r.error.unwrap_or_else(|| "The event is not allowed by the room's current state".into()))),
        None => Err(err!(Forbidden, "The event was refused")),
    }
}

/// The room's state before an accepted event, as PDUs.
async fn state_before(ctx: &Ctx, room_id: &str, event_id: &str) -> Result<Vec<Pdu>> {
    let row = visibility::event_in_room(ctx, room_id, event_id).await?;
    let state = visibility::state_before(ctx, &row).await?;
    Ok(rooms::get_pdus(&ctx.db, &visibility::state_ids(&state)).await?.into_values().collect())
}

/// # `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`
/// Accepts a join and answers with the room's state before it and the auth chain.
pub async fn send_join_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, event_id: &str) -> Result<Response> {
    let pdu = accept_membership(ctx, req, origin, room_id, event_id, "join").await?;
    let state = state_before(ctx, room_id, event_id).await?;
    let mut start: Vec<_> = state.iter().map(|p| p.event_id.clone()).collect();
    start.push(pdu.event_id.clone());
    let chain: Vec<Pdu> = visibility::auth_chain(ctx, room_id, &start).await?.iter().map(|r| r.pdu()).collect::<Result<_>>()?;
    let mut servers: Vec<String> = state
        .iter()
        .filter(|p| p.kind.to_string() == "m.room.member" && p.content_value().get("membership").and_then(Value::as_str) == Some("join"))
        .filter_map(|p| p.state_key.as_deref().and_then(|k| ruma::UserId::parse(k).ok()).map(|u| u.server_name().to_string()))
        .collect();
    servers.push(origin.to_string());
    servers.sort();
    servers.dedup();
    Ok(Response::ok(json!({
        "origin": ctx.server_name(),
        "event": to_wire(&pdu),
        "state": state.iter().map(to_wire).collect::<Vec<_>>(),
        "auth_chain": chain.iter().map(to_wire).collect::<Vec<_>>(),
        "members_omitted": false,
        "servers_in_room": servers,
    })))
}

/// # `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`
pub async fn send_leave_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, event_id: &str) -> Result<Response> {
    accept_membership(ctx, req, origin, room_id, event_id, "leave").await?;
    Ok(Response::ok(json!({})))
}

/// # `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`
/// Answers with the stripped state a knocking user's client shows.
pub async fn send_knock_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str, event_id: &str) -> Result<Response> {
    accept_membership(ctx, req, origin, room_id, event_id, "knock").await?;
    let state = state_before(ctx, room_id, event_id).await?;
    let stripped: Vec<Value> = state.iter().filter(|p| STRIPPED_STATE_TYPES.contains(&p.kind.to_string().as_str())).map(Pdu::stripped).collect();
    Ok(Response::ok(json!({ "knock_room_state": stripped })))
}
