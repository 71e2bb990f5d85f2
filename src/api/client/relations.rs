//! Relations and threads (spec: client-server-api, "Relationships", "Threading"): the
//! `/relations` endpoints and `/threads`, and thread summaries bundled in `unsigned`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::client::message::parse_token;
use crate::api::client::rooms::parse_room_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::params;
use crate::service::events::{check_can_read, filter_visible, to_client, Reader};
use crate::store::rooms::{self, EventRow, EVENT_COLUMNS};

/// Adds `unsigned.m.relations.m.thread` to thread roots among `events` (client format).
pub async fn bundle_thread_summaries(ctx: &Ctx, reader: &Reader<'_>, events: &mut [Value]) -> Result<()> {
    let ids: Vec<String> = events.iter().filter_map(|e| e["event_id"].as_str().map(str::to_owned)).collect();
    if ids.is_empty() {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct Summary {
        relates_to: String,
        count: f64,
        latest: f64,
        mine: f64,
    }
    let mut summaries: HashMap<String, Summary> = HashMap::new();
    for chunk in ids.chunks(80) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut p = params![reader.user_id.as_str()];
        p.extend(chunk.iter().map(|s| json!(s)));
        let rows: Vec<Summary> = ctx
            .db
            .all(
                &format!(
                    "SELECT relates_to, COUNT(*) AS count, MAX(stream) AS latest, SUM(sender = ?) AS mine
                     FROM events WHERE rel_type = 'm.thread' AND relates_to IN ({marks}) GROUP BY relates_to"
                ),
                p,
            )
            .await?;
        summaries.extend(rows.into_iter().map(|s| (s.relates_to.clone(), s)));
    }
    if summaries.is_empty() {
        return Ok(());
    }
    let latest_streams: Vec<f64> = summaries.values().map(|s| s.latest).collect();
    let mut latest_rows: HashMap<String, Value> = HashMap::new();
    for s in latest_streams {
        if let Some(row) = ctx.db.first::<EventRow>(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?"), params![s]).await? {
            let root = row.relates_to.clone().unwrap_or_default();
            if let Some(ev) = to_client(ctx, reader, &[row]).await?.into_iter().next() {
                latest_rows.insert(root, ev);
            }
        }
    }
    for ev in events.iter_mut() {
        let Some(id) = ev["event_id"].as_str().map(str::to_owned) else { continue };
        let Some(s) = summaries.get(&id) else { continue };
        let root_sender_is_me = ev["sender"].as_str() == Some(reader.user_id.as_str());
        ev["unsigned"]["m.relations"]["m.thread"] = json!({
            "latest_event": latest_rows.get(&id).cloned().unwrap_or(Value::Null),
            "count": s.count as u64,
            "current_user_participated": s.mine > 0.0 || root_sender_is_me,
        });
    }
    Ok(())
}

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
    let from = req.query("from").map(parse_token).transpose()?;
    let to = req.query("to").map(parse_token).transpose()?;
    let recurse = req.query("recurse") == Some("true");

    // With `recurse`, relations of relations too (up to 3 levels, as Synapse).
    let mut parents = vec![event_id.to_owned()];
    let mut all: Vec<EventRow> = Vec::new();
    let depth = if recurse { 3 } else { 1 };
    for _ in 0..depth {
        if parents.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for chunk in parents.chunks(80) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut p: Vec<Value> = vec![json!(room_id.as_str())];
            p.extend(chunk.iter().map(|s| json!(s)));
            let rows: Vec<EventRow> =
                ctx.db.all(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND relates_to IN ({marks})"), p).await?;
            next.extend(rows.iter().map(|r| r.event_id.clone()));
            all.extend(rows);
        }
        parents = next;
    }
    // The direct filter applies to the relation type and event type of each returned event.
    all.retain(|r| rel_type.is_none_or(|t| r.rel_type.as_deref() == Some(t)) && event_type.is_none_or(|t| r.kind == t));
    all.sort_by_key(|r| r.stream());
    if backwards {
        all.reverse();
    }
    all.retain(|r| {
        let s = r.stream();
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
    let next = visible.last().map(|r| if backwards { r.stream() - 1 } else { r.stream() });
    let mut chunk = to_client(ctx, &reader, &visible).await?;
    bundle_thread_summaries(ctx, &reader, &mut chunk).await?;
    let mut resp = json!({ "chunk": chunk });
    if more {
        if let Some(n) = next {
            resp["next_batch"] = json!(format!("s{n}"));
        }
    }
    if recurse {
        resp["recursion_depth"] = json!(depth);
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
    #[derive(Deserialize)]
    struct T {
        root: String,
        latest: f64,
    }
    let sql = if participated {
        "SELECT e.relates_to AS root, MAX(e.stream) AS latest FROM events e
         WHERE e.room_id = ?1 AND e.rel_type = 'm.thread'
         GROUP BY e.relates_to
         HAVING MAX(e.stream) < ?2 AND (SUM(e.sender = ?3) > 0 OR
           (SELECT sender FROM events r WHERE r.event_id = e.relates_to) = ?3)
         ORDER BY latest DESC LIMIT ?4"
    } else {
        "SELECT e.relates_to AS root, MAX(e.stream) AS latest FROM events e
         WHERE e.room_id = ?1 AND e.rel_type = 'm.thread' AND ?3 = ?3
         GROUP BY e.relates_to HAVING MAX(e.stream) < ?2 ORDER BY latest DESC LIMIT ?4"
    };
    let threads: Vec<T> = ctx.db.all(sql, params![room_id.as_str(), before, me.user_id.as_str(), limit + 1]).await?;
    let more = threads.len() > limit as usize;
    let threads: Vec<T> = threads.into_iter().take(limit as usize).collect();
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
            resp["next_batch"] = json!(format!("t{}", t.latest as u64));
        }
    }
    Ok(Response::ok(resp))
}
