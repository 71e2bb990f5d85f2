//! Smaller room APIs: jump to a date, room summaries (MSC3266, spec v1.15), reporting.

use crate::core::json::JsonExt;
use ruma::UserId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::{authenticate, Authed};
use crate::api::params::room_id as parse_room_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::directory::resolve_room;
use crate::service::events::{check_can_read, filter_visible, Reader};
use crate::service::summary;
use crate::store::rooms;

/// # `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
/// The closest visible event at or after (`dir=f`) or at or before (`dir=b`) `ts`.
pub async fn timestamp_to_event_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await?;
    let ts: u64 =
        req.query("ts").ok_or_else(|| err!(MissingParam, "ts is required"))?.parse().map_err(|_| err!(InvalidParam, "ts must be an integer"))?;
    let forward = match req.query("dir") {
        Some("f") => true,
        Some("b") => false,
        None => return Err(err!(MissingParam, "dir is required")),
        Some(_) => return Err(err!(InvalidParam, "dir must be f or b")),
    };
    let rows = rooms::events_near_ts(&ctx.db, room_id.as_str(), ts, forward).await?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let visible = filter_visible(ctx, &reader, room_id.as_str(), rows).await?;
    let ev = visible.first().ok_or_else(|| err!(NotFound, "No event found in that direction"))?;
    Ok(Response::ok(json!({ "event_id": ev.event_id, "origin_server_ts": ev.origin_server_ts as u64 })))
}

/// # `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}`
/// For members, invitees and knockers, for users in a room a restricted room admits, and
/// for anyone when the room is public, knockable or world-readable — also without
/// authentication, as the spec allows. The rule is shared with `GET /hierarchy`.
pub async fn room_summary_route(ctx: &Ctx, req: &Request, target: &str) -> Result<Response> {
    let me = if req.access_token().is_some() { Some(authenticate(ctx, req, false).await?) } else { None };
    let room_id = resolve_room(ctx, target).await?;
    let user: Option<&UserId> = me.as_ref().map(|m| &*m.user_id);
    let preview = summary::preview(ctx, room_id.as_str(), user).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    if !(preview.visible || preview.membership.as_deref() == Some("knock")) {
        return Err(err!(NotFound, "Room not found"));
    }
    let mut s = preview.summary;
    if let Some(m) = preview.membership {
        s.set("membership", json!(m));
    } else if me.is_some() {
        s.set("membership", json!("leave"));
    }
    Ok(Response::ok(s))
}

#[derive(Deserialize, Default)]
struct ReportBody {
    reason: Option<String>,
    score: Option<i64>,
}

async fn store_report(ctx: &Ctx, me: &Authed, room: Option<&str>, event: Option<&str>, user: Option<&str>, body: ReportBody) -> Result<()> {
    if body.reason.as_ref().is_some_and(|r| r.len() > 2000) {
        return Err(err!(InvalidParam, "reason too long"));
    }
    let report = rooms::Report {
        reporter: me.user_id.as_str(),
        room_id: room,
        event_id: event,
        user_id: user,
        reason: body.reason.as_deref(),
        score: body.score,
    };
    rooms::insert_report(&ctx.db, &report).await
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`
/// The reporter must be able to see the event.
pub async fn report_event_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, event_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let body: ReportBody = req.json()?;
    let not_found = || err!(NotFound, "Event not found");
    check_can_read(ctx, &me.user_id, room_id.as_str()).await.map_err(|_| not_found())?;
    let row = rooms::get_event(&ctx.db, event_id).await?.filter(|r| r.room_id == room_id.as_str()).ok_or_else(not_found)?;
    let reader = Reader { user_id: &me.user_id, device_id: None };
    if filter_visible(ctx, &reader, room_id.as_str(), vec![row]).await?.is_empty() {
        return Err(not_found());
    }
    store_report(ctx, me, Some(room_id.as_str()), Some(event_id), None, body).await?;
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/report`
pub async fn report_room_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let body: ReportBody = req.json()?;
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    store_report(ctx, me, Some(room_id.as_str()), None, None, body).await?;
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/users/{userId}/report`
pub async fn report_user_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let target = crate::core::ids::parse_client_user_id(user_id)?;
    let body: ReportBody = req.json()?;
    if target.server_name() == ctx.config.server_name && crate::store::accounts::get_user(&ctx.db, target.as_str()).await?.is_none() {
        return Err(err!(NotFound, "User not found"));
    }
    store_report(ctx, me, None, None, Some(target.as_str()), body).await?;
    Ok(Response::ok(json!({})))
}

#[derive(Deserialize)]
struct SearchBody {
    search_term: String,
    limit: Option<u32>,
}

/// # `POST /_matrix/client/v3/user_directory/search`
/// Users who share a room with the searcher or are in a public room — join rule `public`
/// or `world_readable` history (Synapse's default) — matched on user ID or display name.
pub async fn user_directory_search_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body: SearchBody = req.json()?;
    let limit = body.limit.unwrap_or(10).clamp(1, 100);
    let term = body.search_term.trim().to_lowercase();
    let rows = rooms::search_user_directory(&ctx.db, me.user_id.as_str(), &term, limit + 1).await?;
    let limited = rows.len() > limit as usize;
    let results: Vec<Value> = rows
        .into_iter()
        .take(limit as usize)
        .map(|u| {
            // Optional, not nullable (users.yaml): absent when unset.
            let mut r = json!({ "user_id": u.user_id });
            if let Some(d) = u.displayname {
                r.set("display_name", json!(d));
            }
            if let Some(a) = u.avatar_url {
                r.set("avatar_url", json!(a));
            }
            r
        })
        .collect();
    Ok(Response::ok(json!({ "results": results, "limited": limited })))
}
