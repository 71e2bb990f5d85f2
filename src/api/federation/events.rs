//! Events another server reads (spec: server-server-api, "Retrieving events",
//! "Backfilling and retrieving missing events"). Every answer passes the room gate (room
//! known, ACL, the server was in the room) and the history-visibility rule for servers
//! (`service::federation::visibility`); an event the server may not see comes redacted.

use ruma::ServerName;
use serde::Deserialize;
use serde_json::json;

use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::visibility::{self as vis, MAX_EVENTS};

/// # `GET /_matrix/federation/v1/event/{eventId}`
/// A transaction with the one PDU.
pub async fn event_route(ctx: &Ctx, _req: &Request, origin: &ServerName, event_id: &str) -> Result<Response> {
    let row = crate::store::rooms::get_event(&ctx.db, event_id).await?.ok_or_else(|| err!(NotFound, "Event not found"))?;
    let room_id = row.room_id.clone();
    let rules = vis::gate(ctx, &room_id, origin).await?;
    let row = vis::event_in_room(ctx, &room_id, &row.event_id).await?;
    let pdus = vis::serve(ctx, &room_id, origin, &rules, vec![row]).await?;
    Ok(Response::ok(json!({ "origin": ctx.server_name(), "origin_server_ts": now_ms(), "pdus": pdus })))
}

/// # `GET /_matrix/federation/v1/backfill/{roomId}`
/// `v` (repeatable): the events to start from; `limit`: at most this many PDUs, the `v`
/// events included (capped at 100).
pub async fn backfill_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str) -> Result<Response> {
    let v = vis::parse_event_ids(req.query.iter().filter(|(k, _)| k == "v").map(|(_, v)| v.as_str()))?;
    if v.is_empty() {
        return Err(err!(MissingParam, "Missing v"));
    }
    let limit: usize = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| err!(InvalidParam, "limit must be a number"))?,
        None => return Err(err!(MissingParam, "Missing limit")),
    };
    let rules = vis::gate(ctx, room_id, origin).await?;
    let rows = vis::backfill(ctx, room_id, v, limit.min(MAX_EVENTS)).await?;
    let pdus = vis::serve(ctx, room_id, origin, &rules, rows).await?;
    Ok(Response::ok(json!({ "origin": ctx.server_name(), "origin_server_ts": now_ms(), "pdus": pdus })))
}

#[derive(Deserialize)]
struct MissingBody {
    #[serde(default)]
    earliest_events: Vec<String>,
    latest_events: Vec<String>,
    limit: Option<u64>,
    min_depth: Option<u64>,
}

/// # `POST /_matrix/federation/v1/get_missing_events/{roomId}`
/// The events before `latest_events` not reached through `earliest_events`, oldest first.
pub async fn get_missing_events_route(ctx: &Ctx, req: &Request, origin: &ServerName, room_id: &str) -> Result<Response> {
    let body: MissingBody = req.json()?;
    let latest = vis::parse_event_ids(body.latest_events.iter().map(String::as_str))?;
    let earliest = vis::parse_event_ids(body.earliest_events.iter().map(String::as_str))?;
    let limit = body.limit.unwrap_or(10).min(MAX_EVENTS as u64) as usize;
    let rules = vis::gate(ctx, room_id, origin).await?;
    let rows = vis::missing_events(ctx, room_id, latest, earliest, limit, body.min_depth.unwrap_or(0)).await?;
    let events = vis::serve(ctx, room_id, origin, &rules, rows).await?;
    Ok(Response::ok(json!({ "events": events })))
}
