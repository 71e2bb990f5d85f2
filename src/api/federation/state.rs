//! The state of a room at an event and auth chains (spec: server-server-api, "Retrieving
//! events" `/state`, `/state_ids`; "Retrieving event authorisation information"
//! `/event_auth`). The room gate applies (room known, ACL, the server was in the room); the
//! event asked about must be one the server may see. State and auth events are what the
//! other server needs to check the room's graph, so they are served whole.

use ruma::ServerName;
use serde_json::json;

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::visibility as vis;
use crate::store::rooms::EventRow;

/// The event named by `event_id`, in the room, visible to `origin`.
async fn visible_event(ctx: &Ctx, origin: &ServerName, room_id: &str, event_id: &str) -> Result<EventRow> {
    let row = vis::event_in_room(ctx, room_id, event_id).await?;
    if !vis::visible_to(ctx, room_id, origin, std::slice::from_ref(&row)).await?.first().copied().unwrap_or(false) {
        return Err(err!(Forbidden, "Your server may not see this event"));
    }
    Ok(row)
}

/// The state before the event and the auth chain of that state.
async fn state_and_chain(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str) -> Result<(Vec<EventRow>, Vec<EventRow>)> {
    let event_id = req.query("event_id").ok_or_else(|| err!(MissingParam, "Missing event_id"))?;
    vis::gate(ctx, room_id, origin).await?;
    let row = visible_event(ctx, origin, room_id, event_id).await?;
    let state = vis::state_before(ctx, &row).await?;
    let ids = vis::state_ids(&state);
    let strs: Vec<String> = ids.iter().map(|e| e.to_string()).collect();
    let state_rows: Vec<EventRow> = crate::store::rooms::get_events(&ctx.db, &strs).await?.into_iter().filter(vis::servable).collect();
    let chain = vis::auth_chain(ctx, room_id, &ids).await?;
    Ok((state_rows, chain))
}

fn pdus(rows: Vec<EventRow>) -> Result<Vec<serde_json::Value>> {
    rows.iter().map(|r| Ok(serde_json::to_value(&r.pdu()?.json)?)).collect()
}

/// # `GET /_matrix/federation/v1/state/{roomId}`
pub async fn state_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str) -> Result<Response> {
    let (state, chain) = state_and_chain(ctx, req, origin, room_id).await?;
    Ok(Response::ok(json!({ "pdus": pdus(state)?, "auth_chain": pdus(chain)? })))
}

/// # `GET /_matrix/federation/v1/state_ids/{roomId}`
pub async fn state_ids_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str) -> Result<Response> {
    let (state, chain) = state_and_chain(ctx, req, origin, room_id).await?;
    let ids = |rows: &[EventRow]| rows.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>();
    Ok(Response::ok(json!({ "pdu_ids": ids(&state), "auth_chain_ids": ids(&chain) })))
}

/// # `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`
pub async fn event_auth_route(ctx: &Ctx, _req: &Request, origin: &ServerName, room_id: &str, event_id: &str) -> Result<Response> {
    vis::gate(ctx, room_id, origin).await?;
    let row = visible_event(ctx, origin, room_id, event_id).await?;
    let chain = vis::auth_chain(ctx, room_id, &[row.pdu()?.event_id]).await?;
    Ok(Response::ok(json!({ "auth_chain": pdus(chain)? })))
}
