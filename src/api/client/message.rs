//! Sending, redacting and reading room events (spec: client-server-api, "Room events",
//! "Redactions", "GET /messages", "GET /context").

use crate::core::json::JsonExt;
use std::collections::{HashMap, HashSet};

use ruma::room_version_rules::RoomVersionRules;
use ruma::RoomId;
use serde_json::{json, Value};

use crate::api::auth::{self, Authed};
use crate::api::params::{self, room_id as parse_room_id};
use crate::core::filter::RoomEventFilter;
use crate::core::room::pdu::NewEvent;
use crate::core::room::state::StateMap;
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::events::{check_can_read, check_can_read_known, filter_visible, filter_visible_in, to_client, to_client_known, Reader};
use crate::service::federation::room as federation_room;
use crate::service::relations::{bundle_known_thread_summaries, bundle_thread_summaries};
use crate::service::state;
use crate::service::timeline::{send_via_room, Txn};
use crate::store::graph;
use crate::store::rooms::{self, EventRow, PageBounds};

/// # `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
/// The same transaction ID from the same device returns the same event, stored once: the
/// room's `Room` object answers a repeat (from its recent transactions, or from D1 when the
/// batch finds the ID taken), so the send reads nothing from D1 on its way. The response
/// carries `X-Stratus-D1-Round-Trips`: this request's D1 calls plus those of the group
/// commit it was part of.
pub async fn send_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, kind: &str, txn_id: &str) -> Result<Response> {
    match send(ctx, req, me, room_id, kind, txn_id).await {
        Ok(r) => Ok(r),
        Err(e) => {
            if matches!(&e, crate::error::Error::Matrix(crate::error::ErrorKind::UnknownToken { .. }, _)) {
                crate::api::auth::revoked(me);
            }
            // A way out before the token reached the `Room` object: confirm it here (a
            // revoked token gets 401, not this request's other error).
            crate::api::auth::ensure_confirmed(ctx, me).await?;
            Err(e)
        }
    }
}

async fn send(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, kind: &str, txn_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let txn = Txn::new(me.user_id.as_str(), &me.device_id, &["send", room_id.as_str(), kind], txn_id);
    let mut content = req.json_value()?;
    // A token from the isolate's cache (the router read nothing): the `Room` object's batch
    // confirms it and checks the shadow-ban flag, so no read here.
    let cached = crate::api::auth::is_unconfirmed(me);
    // The message rate limit (a `RateLimiter` object; the transaction key makes a retry
    // free) and, for a token whose lookup did not read it, the shadow-ban flag (one D1 read)
    // are independent: asked at once.
    let banned = async {
        match me.shadow_banned() {
            Some(b) => Ok(b),
            None if cached => Ok(false),
            None => crate::service::admin::users::is_shadow_banned(ctx, &me.user_id).await,
        }
    };
    let once = format!("{}\u{1f}{}", txn.device_id, txn.key);
    let limit = crate::service::ratelimit::check_once(ctx, crate::core::ratelimit::Bucket::Message, me.user_id.as_str(), Some(&once));
    let (limited, banned) = futures_util::join!(limit, banned);
    limited?;
    // A shadow-banned sender's event is answered with an event ID but neither stored nor sent
    // (Synapse's shadow ban): it reaches nobody.
    if banned? {
        return Ok(Response::ok(json!({ "event_id": crate::core::crypto::decoy_event_id() })));
    }
    // Spec v1.18 (MSC4169): redactions may be sent here in every room version, with
    // `redacts` in the content; the event builder puts it where the room version wants it
    // (top level before v11).
    let redacts = if kind == "m.room.redaction" {
        match content.as_object_mut().and_then(|c| c.remove("redacts")) {
            Some(serde_json::Value::String(t)) => Some(params::event_id(&t)?),
            _ => return Err(err!(BadJson, "An m.room.redaction needs redacts (an event ID) in its content")),
        }
    } else {
        None
    };
    let ev = NewEvent { kind: kind.to_owned(), state_key: None, content, sender: me.user_id.clone(), redacts };
    let confirm = crate::api::auth::take_unconfirmed(me);
    sent(ctx, send_via_room(ctx, &room_id, &[ev], Some(txn), confirm).await?)
}

/// The answer to a send: the event ID, and the D1 round trips it took.
fn sent(ctx: &Ctx, (ids, room_trips): (Vec<ruma::OwnedEventId>, u32)) -> Result<Response> {
    let id = ids.first().ok_or_else(|| crate::error::Error::internal("no event appended"))?;
    let mut resp = Response::ok(json!({ "event_id": id }));
    resp.headers.push(("X-Stratus-D1-Round-Trips".into(), (ctx.db.round_trips() + room_trips).to_string()));
    Ok(resp)
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, event_id: &str, txn_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let target = params::event_id(event_id)?;
    let txn = Txn::new(me.user_id.as_str(), &me.device_id, &["redact", room_id.as_str(), target.as_str()], txn_id);
    let body = req.json_value_or_empty()?;
    let mut content = json!({});
    if let Some(r) = body.get("reason") {
        if !r.is_string() {
            return Err(err!(BadJson, "reason must be a string"));
        }
        content.set("reason", r.clone());
    }
    let ev = NewEvent { kind: "m.room.redaction".into(), state_key: None, content, sender: me.user_id.clone(), redacts: Some(target) };
    sent(ctx, send_via_room(ctx, &room_id, &[ev], Some(txn), None).await?)
}

/// How many times one backwards `/messages` request may fetch history from another server.
const BACKFILL_FETCHES: u32 = 2;

fn limit_param(req: &Request, default: u32) -> Result<u32> {
    match req.query("limit") {
        Some(l) => Ok(l.parse::<u32>().map_err(|_| err!(InvalidParam, "limit must be a non-negative integer"))?.min(1000)),
        None => Ok(default),
    }
}

/// Which of `rows` (history stored at or after the join: no state of their own) have
/// `prev_events` we lack, neither in the timeline nor rejected: where older history is missing.
async fn gaps(ctx: &Ctx, rows: &[EventRow]) -> Result<HashSet<String>> {
    let mut prevs: Vec<(String, Vec<String>)> = Vec::new();
    for r in rows.iter().filter(|r| r.state_after.is_none()) {
        let Ok(p) = r.pdu() else { continue };
        prevs.push((r.event_id.clone(), p.prev_events.iter().map(|e| e.to_string()).collect()));
    }
    let all: Vec<String> = prevs.iter().flat_map(|(_, p)| p.iter().cloned()).collect::<HashSet<_>>().into_iter().collect();
    if all.is_empty() {
        return Ok(HashSet::new());
    }
    let mut have = rooms::in_timeline(&ctx.db, &all).await?;
    let lacking: Vec<&str> = all.iter().map(String::as_str).filter(|e| !have.contains(*e)).collect();
    if !lacking.is_empty() {
        have.extend(graph::rejected(&ctx.db, &lacking).await?);
    }
    Ok(prevs.into_iter().filter(|(_, p)| p.iter().any(|e| !have.contains(e))).map(|(id, _)| id).collect())
}

/// A first page already read (with the reader's visibility history covering it), for
/// [`paginate`] to start from instead of reading it.
struct FirstPage {
    rows: Vec<EventRow>,
    history: Vec<EventRow>,
}

/// The size of each page [`paginate`] reads while `got` events of `limit` are kept.
fn page_size(limit: u32, got: u32) -> u32 {
    (limit - got.min(limit)).clamp(20, 500)
}

/// The bounds `(after, up_to)` of the next page from position `pos`.
fn page_bounds(pos: i64, to: Option<i64>, backwards: bool) -> (i64, i64) {
    if backwards {
        (to.unwrap_or(i64::MIN >> 12), pos)
    } else {
        (pos, to.unwrap_or(i64::MAX >> 12))
    }
}

/// Pages through a room in one direction, keeping visible events that match the filter,
/// until `limit` or the end. Returns the events, the position reached, whether the end was
/// reached, and how many pages were read (`first` counts as one).
///
/// With `backfill` (backwards `/messages` in a room joined over federation), reaching an
/// event whose `prev_events` we lack fetches the history before it from a server in the
/// room (`service::federation::room::backfill`, at most two fetches per request); it is
/// stored below every position, so the pagination goes on over it.
#[allow(clippy::too_many_arguments)] // one call site per direction; a struct would only rename them
async fn paginate(
    ctx: &Ctx,
    reader: &Reader<'_>,
    room_id: &RoomId,
    from: i64,
    to: Option<i64>,
    backwards: bool,
    limit: u32,
    filter: &RoomEventFilter,
    mut backfill: u32,
    mut first: Option<FirstPage>,
) -> Result<(Vec<EventRow>, i64, bool, u32)> {
    let mut out = Vec::new();
    let mut pos = from;
    let mut exhausted = false;
    let mut pages = 0;
    // Bounded work per request: at most 10 pages of storage reads.
    for _ in 0..10 {
        if out.len() as u32 >= limit {
            break;
        }
        let batch = page_size(limit, out.len() as u32);
        let (after, up_to) = page_bounds(pos, to, backwards);
        if after >= up_to {
            exhausted = true;
            break;
        }
        pages += 1;
        let (rows, visible) = match first.take() {
            Some(FirstPage { rows, history }) => {
                let visible = filter_visible_in(&history, reader, rows.clone());
                (rows, visible)
            }
            None => {
                let rows = rooms::events_page(&ctx.db, room_id.as_str(), after, up_to, backwards, batch).await?;
                let visible = filter_visible(ctx, reader, room_id.as_str(), rows.clone()).await?;
                (rows, visible)
            }
        };
        let n = rows.len() as u32;
        let holes = if backwards && backfill > 0 { gaps(ctx, &rows).await? } else { HashSet::new() };
        let mut consumed_all = true;
        let mut fetched = false;
        for row in rows {
            if out.len() as u32 >= limit {
                consumed_all = false;
                break;
            }
            // The token just past this event, in the direction of travel.
            pos = if backwards { row.pos() - 1 } else { row.pos() };
            if visible.iter().any(|v| v.event_id == row.event_id) {
                let content: Value =
                    serde_json::from_str::<Value>(&row.json).map(|j| j.get("content").cloned().unwrap_or_default()).unwrap_or(Value::Null);
                if filter.matches(&row.kind, &row.sender, &content) {
                    out.push(row.clone());
                }
            }
            if holes.contains(&row.event_id) && backfill > 0 {
                // History is missing right before this event: fetch it, then read on from
                // here (what the fetch stored, and what it moved, lies below).
                backfill -= 1;
                let want = (limit.saturating_sub(out.len() as u32)).clamp(10, 100);
                match federation_room::backfill(ctx, room_id, std::slice::from_ref(&row.event_id), want).await {
                    Ok(ids) => fetched = !ids.is_empty(),
                    Err(e) => worker::console_warn!("backfill of {room_id} before {}: {e}", row.event_id),
                }
                consumed_all = false;
                break;
            }
        }
        if fetched {
            continue;
        }
        if consumed_all && n < batch {
            exhausted = true;
            break;
        }
    }
    Ok((out, pos, exhausted, pages))
}

/// Member events of the senders, for lazy-loading filters: each sender's member event in
/// the state at their latest event in the chunk (the name shown next to what they said).
async fn lazy_members(ctx: &Ctx, reader: &Reader<'_>, events: &[EventRow]) -> Result<Vec<Value>> {
    let mut latest: HashMap<&str, &EventRow> = HashMap::new();
    for e in events {
        let l = latest.entry(e.sender.as_str()).or_insert(e);
        if e.pos() > l.pos() {
            *l = e;
        }
    }
    // Events between state changes share their state group: each group is loaded once, all
    // of them in one batch (an event without one has no state of its own: nothing).
    let mut names: Vec<&str> = latest.values().filter_map(|r| r.state_after.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    let groups: HashMap<&str, StateMap> = names.iter().copied().zip(rooms::load_state_groups(&ctx.db, &names).await?).collect();
    let mut ids = Vec::new();
    for (sender, row) in latest {
        let map = row.state_after.as_deref().and_then(|g| groups.get(g));
        if let Some(e) = map.and_then(|m| m.get(&("m.room.member".to_owned(), sender.to_owned()))) {
            ids.push(e.to_string());
        }
    }
    let mut rows = rooms::get_events(&ctx.db, &ids).await?;
    rows.sort_by_key(EventRow::pos);
    to_client(ctx, reader, &rows).await
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/messages`
/// Both directions, with filters; tokens are stable stream positions (`s<N>`), so paging
/// through hundreds of events loses and repeats nothing.
///
/// One D1 round trip when the first page is enough (`store::rooms::messages_snapshot`: the
/// room, the reader's membership, the page, its history visibility, redactions and thread
/// summaries in one batch); the response carries `X-Stratus-D1-Round-Trips`. The caller's
/// token may come from the isolate's cache unconfirmed: its check rides in that batch, and
/// every other way out confirms it here, so a revoked token only ever gets `M_UNKNOWN_TOKEN`.
pub async fn messages_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let out = messages(ctx, req, me, room_id).await;
    auth::ensure_confirmed(ctx, me).await?;
    let mut resp = out?;
    resp.headers.push(("X-Stratus-D1-Round-Trips".into(), ctx.db.round_trips().to_string()));
    Ok(resp)
}

async fn messages(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let backwards = match req.query("dir") {
        Some("b") => true,
        Some("f") => false,
        Some(_) => return Err(err!(InvalidParam, "dir must be b or f")),
        None => return Err(err!(MissingParam, "dir is required")),
    };
    let filter = RoomEventFilter::from_param(req.query("filter")).map_err(|e| err!(BadJson, "{e}"))?;
    let limit = filter.limit.unwrap_or(limit_param(req, 10)?).min(1000);
    let from = req.query("from").map(params::stream_token).transpose()?;
    let to = req.query("to").map(params::stream_token).transpose()?;
    // Backwards without `from`: from the newest event, which the batch reads (the page's
    // upper bound is then open; in one snapshot that is the same page).
    let newest = from.is_none() && backwards;
    let (after, up_to) = page_bounds(from.unwrap_or(if backwards { i64::MAX >> 12 } else { 0 }), to, backwards);
    let bounds = PageBounds { room_id: room_id.as_str(), after, up_to, backwards, limit: page_size(limit, 0) };
    let confirm = auth::confirm_stmt(ctx, me)?;
    let confirms = confirm.is_some();
    let (lead, snap) = rooms::messages_snapshot(&ctx.db, confirm.into_iter().collect(), me.user_id.as_str(), bounds, newest).await?;
    if confirms {
        auth::confirm_rows(me, lead.first())?;
    }
    check_can_read_known(ctx, room_id.as_str(), snap.room.is_some(), snap.membership.is_some()).await?;
    let from = from.unwrap_or_else(|| snap.max_stream.map_or(0, |m| m as i64));
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let backfill = if backwards { BACKFILL_FETCHES } else { 0 };
    let first = FirstPage { rows: snap.page, history: snap.history };
    let (rows, end, exhausted, pages) = paginate(ctx, &reader, &room_id, from, to, backwards, limit, &filter, backfill, Some(first)).await?;
    let chunk = if pages <= 1 {
        // Every event comes from the batch's page, whose redactions and threads it read.
        let rules: HashMap<String, RoomVersionRules> =
            snap.room.iter().filter_map(|r| version_rules(&r.room_version).ok()).map(|(_, r)| (room_id.to_string(), r)).collect();
        let redactions = snap.redactions.into_iter().map(|r| (r.event_id.clone(), r)).collect();
        let mut chunk = to_client_known(ctx, &reader, &rows, redactions, rules).await?;
        bundle_known_thread_summaries(ctx, &reader, &mut chunk, snap.summaries, snap.thread_latest).await?;
        chunk
    } else {
        let mut chunk = to_client(ctx, &reader, &rows).await?;
        bundle_thread_summaries(ctx, &reader, &mut chunk).await?;
        chunk
    };
    let mut resp = json!({ "start": format!("s{from}"), "chunk": chunk });
    // No `end` once there is nothing more in this direction (spec).
    if !exhausted {
        resp.set("end", json!(format!("s{end}")));
    }
    if filter.lazy_load_members {
        resp.set("state", json!(lazy_members(ctx, &reader, &rows).await?));
    }
    Ok(Response::ok(resp))
}

async fn visible_event(ctx: &Ctx, reader: &Reader<'_>, room_id: &RoomId, event_id: &str) -> Result<EventRow> {
    let row = rooms::get_event(&ctx.db, event_id).await?.filter(|r| r.room_id == room_id.as_str());
    let Some(row) = row else {
        return Err(err!(NotFound, "Event not found"));
    };
    let visible = filter_visible(ctx, reader, room_id.as_str(), vec![row]).await?;
    visible.into_iter().next().ok_or_else(|| err!(NotFound, "Event not found"))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`
pub async fn get_event_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str, event_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    params::event_id(event_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await.map_err(|_| err!(NotFound, "Event not found"))?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let row = visible_event(ctx, &reader, &room_id, event_id).await?;
    let mut ev = to_client(ctx, &reader, &[row]).await?;
    bundle_thread_summaries(ctx, &reader, &mut ev).await?;
    Ok(Response::ok(ev.into_iter().next().unwrap_or(Value::Null)))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
/// Events around one event, and the room state at the last event returned.
pub async fn context_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, event_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    params::event_id(event_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await.map_err(|_| err!(NotFound, "Event not found"))?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let row = visible_event(ctx, &reader, &room_id, event_id).await?;
    let filter = RoomEventFilter::from_param(req.query("filter")).map_err(|e| err!(BadJson, "{e}"))?;
    let limit = filter.limit.unwrap_or(limit_param(req, 10)?);
    let before_n = limit / 2;
    let after_n = limit - before_n;
    let s = row.pos();
    let (before, start, _, _) = paginate(ctx, &reader, &room_id, s - 1, None, true, before_n, &filter, 0, None).await?;
    let (after, end, _, _) = paginate(ctx, &reader, &room_id, s, None, false, after_n, &filter, 0, None).await?;
    let last = after.last().unwrap_or(&row);
    let map = state::after_event(&ctx.db, last).await?;
    let ids: Vec<String> = if filter.lazy_load_members {
        let senders: std::collections::HashSet<&str> =
            before.iter().chain(after.iter()).chain(std::iter::once(&row)).map(|r| r.sender.as_str()).collect();
        map.iter().filter(|((t, k), _)| t != "m.room.member" || senders.contains(k.as_str())).map(|(_, e)| e.to_string()).collect()
    } else {
        map.values().map(|e| e.to_string()).collect()
    };
    let state_rows = rooms::get_events(&ctx.db, &ids).await?;
    Ok(Response::ok(json!({
        "event": to_client(ctx, &reader, std::slice::from_ref(&row)).await?.into_iter().next(),
        "events_before": to_client(ctx, &reader, &before).await?,
        "events_after": to_client(ctx, &reader, &after).await?,
        "start": format!("s{start}"),
        "end": format!("s{end}"),
        "state": to_client(ctx, &reader, &state_rows).await?,
    })))
}
