//! Simplified sliding sync (MSC4186): one pass over the room list, the window's rooms and
//! the extensions, sharing the per-stream builders of `/sync` v3 (`service::sync`).
//!
//! [`compute`] reads the user's whole room list with its ordering and filter facts in one
//! batch (`store::sync::room_list`), applies the lists' filters and ranges and the room
//! subscriptions (`core::sliding`), decides per room what the connection still lacks
//! (`core::sliding::conn::plan_room`) and reads only those rooms ([`rooms::build`]). The
//! connection's memory lives in the user's `UserSync` Durable Object ([`load`], [`save`]).

pub mod extensions;
mod rooms;

use std::collections::{BTreeMap, HashMap};

use crate::api::auth::Authed;
use crate::core::sliding::conn::{after_send, plan_room, ConnState};
use crate::core::sliding::extensions::ExtensionsRequest;
use crate::core::sliding::list::{dm_rooms, in_server_list, order, select, tags_of, RoomEntry, Selection};
use crate::core::sliding::request::{subscriptions_after, SlidingRequest};
use crate::core::sliding::response::{ListResult, SlidingResponse};
use crate::ctx::Ctx;
use crate::durable_objects::protocol::{UserSyncProto, UserSyncRequest as Req, UserSyncResponse as Resp};
use crate::err;
use crate::error::Result;
use crate::service::objects::{call, unexpected};
use crate::store::sync::{self as sstore, ListFacts, ListRow, RoomList};
use extensions::Scope;
use rooms::Todo;

/// The outcome of one pass: the response (without `pos`), the connection state after it,
/// and whether it holds anything (a response with nothing keeps the `pos` it was given).
pub struct Outcome {
    pub response: SlidingResponse,
    pub next: ConnState,
    pub has_updates: bool,
}

fn entry(r: ListRow, dms: &std::collections::HashSet<String>) -> RoomEntry {
    RoomEntry {
        is_dm: dms.contains(&r.room_id),
        banned_never_joined: r.membership == "ban" && r.ever_joined == 0.0,
        room_id: r.room_id,
        membership: r.membership,
        membership_stream: r.stream.max(0.0) as u64,
        membership_sender: r.sender.unwrap_or_default(),
        last_bump: r.last_bump.map(|b| b.max(0.0) as u64),
        last_event: r.last_event.unwrap_or(0.0).max(0.0) as u64,
        is_encrypted: r.encrypted != 0.0,
        room_type: r.room_type,
        tags: vec![],
        parents: vec![],
    }
}

/// One pass: lists, subscriptions, the rooms the connection lacks, the extensions.
///
/// The reads a pass makes at once go out together (`Db::coalesced`): the room list, then
/// the window's rooms with the extensions, then what depends on those (lazy members,
/// redactions) — a D1 round trip per wave, not per read.
pub async fn compute(ctx: &Ctx, me: &Authed, req: &SlidingRequest, ext: &ExtensionsRequest, prev: Option<&ConnState>) -> Result<Outcome> {
    ctx.db.coalesced(pass(ctx, me, req, ext, prev)).await
}

async fn pass(ctx: &Ctx, me: &Authed, req: &SlidingRequest, ext: &ExtensionsRequest, prev: Option<&ConnState>) -> Result<Outcome> {
    let user = me.user_id.as_str();
    let subscriptions = subscriptions_after(prev.map(|p| &p.subscriptions), req);
    let read = if req.lists.is_empty() && subscriptions.is_empty() {
        RoomList { token: sstore::positions(&ctx.db).await?, ..Default::default() }
    } else {
        let filters = || req.lists.values().map(|l| &l.filters);
        let mut spaces: Vec<String> = filters().filter_map(|f| f.spaces.clone()).flatten().collect();
        spaces.sort();
        spaces.dedup();
        let facts = ListFacts {
            tags: filters().any(|f| f.tags.is_some() || !f.not_tags.is_empty()),
            encryption: filters().any(|f| f.is_encrypted.is_some()),
            room_types: filters().any(|f| f.room_types.is_some() || !f.not_room_types.is_empty()),
            spaces: &spaces,
        };
        sstore::room_list(&ctx.db, user, facts).await?
    };
    let since = prev.and_then(ConnState::since);
    let now = read.token.max(&since.unwrap_or_default());
    let dms = dm_rooms(&read.direct);
    let mut all: Vec<RoomEntry> = read.rooms.into_iter().map(|r| entry(r, &dms)).collect();
    let tags: HashMap<&str, Vec<String>> = read.tags.iter().map(|(r, c)| (r.as_str(), tags_of(c))).collect();
    for e in all.iter_mut() {
        e.tags = tags.get(e.room_id.as_str()).cloned().unwrap_or_default();
        e.parents = read.children.iter().filter(|(_, child)| *child == e.room_id).map(|(space, _)| space.clone()).collect();
    }
    let by_id: HashMap<&str, &RoomEntry> = all.iter().map(|e| (e.room_id.as_str(), e)).collect();
    let sent_not_left = |room_id: &str| prev.and_then(|p| p.rooms.get(room_id)).is_some_and(|s| s.membership != "leave");
    let mut listed: Vec<RoomEntry> = all.iter().filter(|e| in_server_list(e, user, sent_not_left(&e.room_id))).cloned().collect();
    order(&mut listed);

    // Lists, then subscriptions (any room the user has a membership in).
    let Selection { configs, counts, windows, subscribed } = select(&listed, &req.lists, &subscriptions, |r| by_id.contains_key(r));

    // What each room needs, then the reads for all of them.
    let mut todo: BTreeMap<String, Todo> = BTreeMap::new();
    for (room_id, config) in configs {
        let Some(entry) = by_id.get(room_id.as_str()) else { continue };
        let sent = prev.and_then(|p| p.rooms.get(&room_id).and_then(|s| p.config_of(s).map(|c| (s, c))));
        if let Some(plan) = plan_room(entry, &config, sent, now.rooms, since.map(|s| s.rooms)) {
            let sent_config = sent.map(|(_, c)| c.clone());
            todo.insert(room_id, Todo { plan, entry, config, sent_config });
        }
    }
    // The rooms and the extensions in parallel; rooms sent afresh get their current
    // receipts, typing and room account data.
    let initial: Vec<String> = todo.iter().filter(|(_, t)| t.plan.initial).map(|(r, _)| r.clone()).collect();
    let scope = Scope { lists: &windows, subscriptions: &subscribed };
    let ext_out = extensions::compute(ctx, me, ext, since.as_ref(), &now, &scope, &initial);
    let (built, extensions) = futures_util::future::try_join(rooms::build(ctx, me, &todo), ext_out).await?;

    // The connection after this response: what each sent room now has.
    let mut next = prev.cloned().unwrap_or_default();
    next.token = now.encode();
    let mut rooms_out = BTreeMap::new();
    for (room_id, b) in built {
        let Some(t) = todo.get(&room_id) else { continue };
        if t.entry.self_left(user) {
            // Sent once with the leave; then out of the list (MSC4186, "Lists").
            next.rooms.remove(&room_id);
        } else {
            let config = next.intern(&t.config.required_state);
            let sent = after_send(next.rooms.get(&room_id), &t.entry.membership, config, t.plan.up_to, t.config.timeline_limit, b.limited);
            next.rooms.insert(room_id.clone(), sent);
        }
        rooms_out.insert(room_id, b.result);
    }
    next.lists = counts.clone();
    next.subscriptions = subscriptions;
    next.compact();

    // A change of subscriptions alone is worth a new pos: it is state the next request
    // relies on.
    let changed = prev.is_none_or(|p| p.lists != next.lists || p.subscriptions != next.subscriptions);
    let has_updates = changed || !rooms_out.is_empty() || !extensions.is_empty();
    let lists = counts.into_iter().map(|(k, count)| (k, ListResult { count })).collect();
    let response = SlidingResponse { pos: String::new(), txn_id: req.txn_id.clone(), lists, rooms: rooms_out, extensions };
    Ok(Outcome { response, next, has_updates })
}

/// A connection's state at `pos` and the user's wake-up counter, read before the stores are
/// looked at (see `api::client::sync`). An unknown `pos` is `M_UNKNOWN_POS`. (A new
/// connection has no state to load, and never waits.)
pub async fn load(ctx: &Ctx, me: &Authed, conn_id: &str, pos: &str) -> Result<(ConnState, String)> {
    let pos = pos.parse::<u64>().map_err(|_| err!(UnknownPos, "Unknown pos"))?;
    let req = Req::SlidingLoad { device_id: me.device_id.clone(), conn_id: conn_id.to_owned(), pos: Some(pos) };
    match call::<UserSyncProto>(&ctx.env, me.user_id.as_str(), &req).await? {
        Resp::SlidingLoaded { state: Some(s), v } => Ok((ConnState::parse(&s).ok_or_else(|| err!(UnknownPos, "Unknown pos"))?, v)),
        Resp::SlidingLoaded { state: None, .. } => Err(err!(UnknownPos, "Unknown pos")),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}

/// Stores the connection's state after a response; returns the response's `pos`. A new
/// connection (`fresh`) replaces whatever the `conn_id` had.
pub async fn save(ctx: &Ctx, me: &Authed, conn_id: &str, fresh: bool, state: &ConnState) -> Result<String> {
    let req = Req::SlidingSave { device_id: me.device_id.clone(), conn_id: conn_id.to_owned(), fresh, state: serde_json::to_string(state)? };
    match call::<UserSyncProto>(&ctx.env, me.user_id.as_str(), &req).await? {
        Resp::SlidingSaved { pos } => Ok(pos.to_string()),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}
