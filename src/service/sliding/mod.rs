//! Simplified sliding sync (MSC4186): one pass over the room list, the window's rooms and
//! the extensions, sharing the per-stream builders of `/sync` v3 (`service::sync`).
//!
//! [`compute`] reads the user's whole room list with its ordering and filter facts in one
//! batch (`store::sync::room_list`), applies the lists' filters and ranges and the room
//! subscriptions (`core::sliding`), decides per room what the connection still lacks
//! (`core::sliding::conn::plan_room`) and reads only those rooms ([`rooms::build`]). The
//! connection's memory lives in the user's `UserSync` Durable Object ([`load`], [`save`]).

pub mod ext_standin;
pub mod extensions;
mod rooms;

use std::collections::{BTreeMap, HashMap};

use crate::api::auth::Authed;
use crate::core::sliding::conn::{after_send, plan_room, ConnState};
use crate::core::sliding::ext_standin::ExtensionsRequest;
use crate::core::sliding::list::{dm_rooms, in_server_list, matches, order, window, RoomEntry};
use crate::core::sliding::request::{RoomConfig, SlidingRequest};
use crate::core::sliding::response::{ListResult, SlidingResponse};
use crate::ctx::Ctx;
use crate::durable_objects::protocol::{UserSyncProto, UserSyncRequest as Req, UserSyncResponse as Resp};
use crate::err;
use crate::error::Result;
use crate::service::objects::{call, unexpected};
use crate::store::sync::{self as sstore, ListRow};
use ext_standin::Scope;
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
        room_id: r.room_id,
        membership: r.membership,
        membership_stream: r.stream.max(0.0) as u64,
        membership_sender: r.sender.unwrap_or_default(),
        last_bump: r.last_bump.map(|b| b.max(0.0) as u64),
        last_event: r.last_event.unwrap_or(0.0).max(0.0) as u64,
        is_encrypted: r.encrypted != 0.0,
        room_type: r.room_type,
    }
}

/// One pass: lists, subscriptions, the rooms the connection lacks, the extensions.
pub async fn compute(ctx: &Ctx, me: &Authed, req: &SlidingRequest, ext: &ExtensionsRequest, prev: Option<&ConnState>) -> Result<Outcome> {
    let user = me.user_id.as_str();
    let (now, rows, direct) = sstore::room_list(&ctx.db, user).await?;
    let since = prev.and_then(ConnState::since);
    let now = now.max(&since.unwrap_or_default());
    let dms = dm_rooms(&direct);
    let all: Vec<RoomEntry> = rows.into_iter().map(|r| entry(r, &dms)).collect();
    let by_id: HashMap<&str, &RoomEntry> = all.iter().map(|e| (e.room_id.as_str(), e)).collect();
    let sent_not_left = |room_id: &str| prev.and_then(|p| p.rooms.get(room_id)).is_some_and(|s| s.membership != "leave");
    let mut listed: Vec<RoomEntry> = all.iter().filter(|e| in_server_list(e, user, sent_not_left(&e.room_id))).cloned().collect();
    order(&mut listed);

    // Lists, then subscriptions (any room the user has a membership in): each room's
    // combined config (MSC4186, "Combining room configs").
    let mut configs: BTreeMap<String, RoomConfig> = BTreeMap::new();
    let mut lists = BTreeMap::new();
    let mut windows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, l) in &req.lists {
        let filtered: Vec<&RoomEntry> = listed.iter().filter(|e| matches(&l.filters, e)).collect();
        let win: Vec<String> = window(&filtered, l.ranges.as_deref()).into_iter().map(str::to_owned).collect();
        for room_id in &win {
            configs.entry(room_id.clone()).or_default().merge(&l.room);
        }
        lists.insert(name.clone(), ListResult { count: filtered.len() as u64 });
        windows.insert(name.clone(), win);
    }
    let mut subscribed = Vec::new();
    for (room_id, c) in &req.subscriptions {
        if by_id.contains_key(room_id.as_str()) {
            configs.entry(room_id.clone()).or_default().merge(c);
            subscribed.push(room_id.clone());
        }
    }

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
    let built = rooms::build(ctx, me, &todo).await?;

    let scope = Scope { lists: &windows, subscriptions: &subscribed };
    let extensions = ext_standin::compute(ctx, me, ext, since.as_ref(), &now, &scope).await?;

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
    next.lists = lists.iter().map(|(k, v)| (k.clone(), v.count)).collect();
    next.compact();

    let has_updates = prev.is_none_or(|p| p.lists != next.lists) || !rooms_out.is_empty() || !extensions.is_empty();
    let response = SlidingResponse { pos: String::new(), txn_id: req.txn_id.clone(), lists, rooms: rooms_out, extensions };
    Ok(Outcome { response, next, has_updates })
}

/// A connection's state at `pos` (`None`: a new connection) and the user's wake-up counter,
/// read before the stores are looked at (see `api::client::sync`). An unknown `pos` is
/// `M_UNKNOWN_POS`.
pub async fn load(ctx: &Ctx, me: &Authed, conn_id: &str, pos: Option<&str>) -> Result<(Option<ConnState>, String)> {
    let pos = match pos {
        Some(p) => Some(p.parse::<u64>().map_err(|_| err!(UnknownPos, "Unknown pos"))?),
        None => None,
    };
    let req = Req::SlidingLoad { device_id: me.device_id.clone(), conn_id: conn_id.to_owned(), pos };
    match call::<UserSyncProto>(&ctx.env, me.user_id.as_str(), &req).await? {
        Resp::SlidingLoaded { state, v } => {
            let state = match (pos, state) {
                (None, _) => None,
                (Some(_), Some(s)) => Some(ConnState::parse(&s).ok_or_else(|| err!(UnknownPos, "Unknown pos"))?),
                (Some(_), None) => return Err(err!(UnknownPos, "Unknown pos")),
            };
            Ok((state, v))
        }
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
