//! Relations and threads (spec: client-server-api, "Relationships", "Threading"): the
//! `/relations` endpoints and `/threads`, and thread summaries bundled in `unsigned`.

use crate::core::json::JsonExt;
use std::collections::HashMap;

use serde_json::json;

use crate::api::auth::Authed;
use crate::api::params::{self, room_id as parse_room_id};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::events::{check_can_read, filter_visible, to_client, Reader};
use crate::service::relations::bundle_thread_summaries;
use crate::store::rooms::{self, EventRow};

/// # `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`
pub async fn relations_route(
    ctx: &Ctx,
    req: &Request,
    me: &Authed,
    room_id: &str,
    event_id: &str,
    rel_type: Option<&str>,
    event_type: Option<&str>,
) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await.map_err(|_| err!(NotFound, "Event not found"))?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let parent = rooms::get_event(&ctx.db, event_id).await?.filter(|r| r.room_id == room_id.as_str());
    let parent = parent.ok_or_else(|| err!(NotFound, "Event not found"))?;
    if filter_visible(ctx, &reader, room_id.as_str(), vec![parent]).await?.is_empty() {
        return Err(err!(NotFound, "Event not found"));
    }
    let backwards = match req.query("dir") {
        None | Some("b") => true,
        Some("f") => false,
        Some(_) => return Err(err!(InvalidParam, "dir must be b or f")),
    };
    let limit: u32 = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| err!(InvalidParam, "Invalid limit"))?,
        None => 50,
    };
    let limit = limit.clamp(1, 1000);
    let from = req.query("from").map(params::stream_token).transpose()?;
    let to = req.query("to").map(params::stream_token).transpose()?;
    let recurse = req.query("recurse") == Some("true");

    // With `recurse`, relations of relations too (up to 3 levels, as Synapse).
    let mut parents = vec![event_id.to_owned()];
    let mut all: Vec<EventRow> = Vec::new();
    let depth = if recurse { 3 } else { 1 };
    for _ in 0..depth {
        if parents.is_empty() {
            break;
        }
        let rows = rooms::related_events(&ctx.db, room_id.as_str(), &parents).await?;
        parents = rows.iter().map(|r| r.event_id.clone()).collect();
        all.extend(rows);
    }
    // The direct filter applies to the relation type and event type of each returned event.
    all.retain(|r| rel_type.is_none_or(|t| r.rel_type.as_deref() == Some(t)) && event_type.is_none_or(|t| r.kind == t));
    all.sort_by_key(|r| r.pos());
    if backwards {
        all.reverse();
    }
    all.retain(|r| {
        let s = r.pos();
        match (backwards, from, to) {
            (true, Some(f), _) if s > f => false,
            (true, _, Some(t)) if s <= t => false,
            (false, Some(f), _) if s <= f => false,
            (false, _, Some(t)) if s > t => false,
            _ => true,
        }
    });
    let more = all.len() > limit as usize;
    all.truncate(limit as usize);
    let visible = filter_visible(ctx, &reader, room_id.as_str(), all).await?;
    let next = visible.last().map(|r| if backwards { r.pos() - 1 } else { r.pos() });
    let mut chunk = to_client(ctx, &reader, &visible).await?;
    bundle_thread_summaries(ctx, &reader, &mut chunk).await?;
    let mut resp = json!({ "chunk": chunk });
    if more {
        if let Some(n) = next {
            resp.set("next_batch", json!(format!("s{n}")));
        }
    }
    if recurse {
        resp.set("recursion_depth", json!(depth));
    }
    Ok(Response::ok(resp))
}

/// # `GET /_matrix/client/v1/rooms/{roomId}/threads`
/// Thread roots by latest activity; `include=participated` keeps threads the user started
/// or replied to.
pub async fn threads_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let participated = match req.query("include") {
        None | Some("all") => false,
        Some("participated") => true,
        Some(_) => return Err(err!(InvalidParam, "include must be all or participated")),
    };
    let limit: u32 = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| err!(InvalidParam, "Invalid limit"))?,
        None => 20,
    };
    let limit = limit.clamp(1, 100);
    let before: u64 = match req.query("from") {
        Some(t) => t.strip_prefix('t').and_then(|n| n.parse().ok()).ok_or_else(|| err!(InvalidParam, "Invalid from token"))?,
        None => u64::MAX >> 12,
    };
    let participant = if participated { Some(me.user_id.as_str()) } else { None };
    let threads = rooms::threads(&ctx.db, room_id.as_str(), before, participant, limit + 1).await?;
    let more = threads.len() > limit as usize;
    let threads: Vec<rooms::ThreadRow> = threads.into_iter().take(limit as usize).collect();
    let ids: Vec<String> = threads.iter().map(|t| t.root.clone()).collect();
    let mut roots = rooms::get_events(&ctx.db, &ids).await?;
    let order: HashMap<String, usize> = ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    roots.retain(|r| r.room_id == room_id.as_str());
    roots.sort_by_key(|r| order.get(&r.event_id).copied().unwrap_or(usize::MAX));
    let visible = filter_visible(ctx, &reader, room_id.as_str(), roots).await?;
    let mut chunk = to_client(ctx, &reader, &visible).await?;
    bundle_thread_summaries(ctx, &reader, &mut chunk).await?;
    let mut resp = json!({ "chunk": chunk });
    if more {
        if let Some(t) = threads.last() {
            resp.set("next_batch", json!(format!("t{}", t.latest as u64)));
        }
    }
    Ok(Response::ok(resp))
}
