//! `/sync` (spec: client-server-api, "Syncing"; OpenAPI `sync.yaml`) and filters
//! (`filter.yaml`).
//!
//! The `since` token carries one position per stream ([`SyncToken`]). A sync reads every
//! stream's current position and the user's memberships in one D1 batch (one snapshot), then
//! reads each stream over `(since, now]` with one statement covering all rooms (room event
//! windows and state deltas in chunks of 30 rooms): its cost does not grow by a query per
//! room per stream. State deltas use the event stream directly: local rooms are linear, so
//! the latest state event of each key up to a position is the state at that position.
//!
//! Long-polling: with `timeout`, a sync that finds nothing waits on the user's `UserSync`
//! Durable Object, having read its change counter *before* checking the stores, so a
//! change committed in between wakes it at once (no lost wake-up). A sync that finds
//! nothing returns after the timeout with the same `next_batch` it was given.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::api::auth::Authed;
use crate::core::filter::{apply_event_fields, Filter};
use crate::core::room::visibility::HistoryVisibility;
use crate::core::sync_token::SyncToken;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::events::{filter_visible, to_client, Reader};
use crate::service::notify;
use crate::store::rooms::EventRow;
use crate::store::sync::{self as sstore, Range};

/// Long-poll waits are capped (clients ask for 30 s).
const MAX_TIMEOUT_MS: u64 = 60_000;

/// Loads the `filter` parameter: a stored filter ID or inline JSON.
pub async fn load_filter(ctx: &Ctx, me: &Authed, param: Option<&str>) -> Result<Filter> {
    let Some(p) = param else { return Ok(Filter::default()) };
    let v: Value = if p.trim_start().starts_with('{') {
        serde_json::from_str(p).map_err(|_| err!(BadJson, "filter is not valid JSON"))?
    } else {
        let id: u64 = p.parse().map_err(|_| err!(InvalidParam, "Unknown filter ID"))?;
        sstore::get_filter(&ctx.db, me.user_id.as_str(), id).await?.ok_or_else(|| err!(NotFound, "No such filter"))?
    };
    Filter::parse(&v).map_err(|e| err!(BadJson, "{e}"))
}

struct Params {
    since: Option<SyncToken>,
    full_state: bool,
    state_after: bool,
    filter: Filter,
}

/// # `GET /_matrix/client/v3/sync`
/// The response carries `X-Stratus-D1-Round-Trips`: the D1 calls this request made.
pub async fn sync_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let mut resp = sync_inner(ctx, req, me).await?;
    resp.headers.push(("X-Stratus-D1-Round-Trips".into(), ctx.db.round_trips().to_string()));
    Ok(resp)
}

async fn sync_inner(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let since = match req.query("since") {
        Some(s) => Some(SyncToken::decode(s).ok_or_else(|| err!(InvalidParam, "Invalid since token"))?),
        None => None,
    };
    let timeout = match req.query("timeout") {
        Some(t) => t.parse::<u64>().map_err(|_| err!(InvalidParam, "timeout must be an integer"))?.min(MAX_TIMEOUT_MS),
        None => 0,
    };
    let flag = |k: &str| req.query(k).is_some_and(|v| v == "true" || v == "1");
    let p = Params {
        since,
        full_state: flag("full_state"),
        state_after: flag("use_state_after") || flag("org.matrix.msc4222.use_state_after"),
        filter: load_filter(ctx, me, req.query("filter")).await?,
    };
    // set_presence (spec: omitted means online; `offline` means "don't touch").
    match req.query("set_presence").unwrap_or("online") {
        "offline" => {}
        s @ ("online" | "unavailable") => {
            if sstore::set_presence(&ctx.db, me.user_id.as_str(), s, None).await? {
                let users = sstore::users_sharing_rooms(&ctx.db, me.user_id.as_str()).await?;
                notify::notify_users(&ctx.env, &ctx.config, users).await;
            }
        }
        _ => return Err(err!(InvalidParam, "set_presence must be online, offline or unavailable")),
    }

    let deadline = now_ms() + timeout;
    let waits = p.since.is_some() && timeout > 0 && !p.full_state;
    // Read the wake-up counter before looking, so nothing committed after the look is missed;
    // after a wake-up, the counter the wake-up reported plays that part.
    let mut seen = if waits { Some(notify::sync_version(&ctx.env, me.user_id.as_str()).await?) } else { None };
    for _ in 0..20 {
        let (body, found) = compute(ctx, me, &p).await?;
        let now = now_ms();
        let Some(v) = seen.take().filter(|_| !found && now < deadline) else {
            return Ok(Response::ok(body));
        };
        match notify::wait(&ctx.env, me.user_id.as_str(), &v, deadline - now).await? {
            Some(next) => seen = Some(next),
            // Timed out with nothing new: the same positions back.
            None => return Ok(Response::ok(body)),
        }
    }
    let (body, _) = compute(ctx, me, &p).await?;
    Ok(Response::ok(body))
}

/// Per room: what the response will hold.
#[derive(Default)]
struct RoomOut {
    membership: String,
    range: Option<Range>,
    /// Whole state, not a delta (initial sync, `full_state`, newly joined).
    full: bool,
    timeline: Vec<EventRow>,
    limited: bool,
    prev_batch: u64,
    state: Vec<EventRow>,
    ephemeral: Vec<Value>,
    account_data: Vec<Value>,
    my_membership_stream: u64,
}

/// The state is the state at the start of the timeline: when history visibility hid the
/// timeline's first events, their state changes (a newly joined user's own invite, the
/// room's changes before the join) belong to the state section instead.
fn hidden_prefix_into_state(state: &mut Vec<EventRow>, all: &[EventRow], kept: &[EventRow]) {
    let start = kept.first().map(|e| e.stream()).unwrap_or(u64::MAX);
    for e in all.iter().filter(|e| e.stream() < start && e.state_key.is_some()) {
        state.retain(|s| !(s.kind == e.kind && s.state_key == e.state_key));
        state.push(e.clone());
    }
}

/// One pass over every stream. Returns the response and whether it holds anything.
async fn compute(ctx: &Ctx, me: &Authed, p: &Params) -> Result<(Value, bool)> {
    let user = me.user_id.as_str();
    let (now, memberships, newly_joined) = sstore::snapshot(&ctx.db, user, p.since.map(|s| s.rooms)).await?;
    let newly_joined: HashSet<String> = newly_joined.into_iter().collect();
    let initial = p.since.is_none();
    let since = p.since.unwrap_or_default();
    let f = &p.filter;
    let limit = f.timeline_limit();

    // A stream whose position has not moved since the token is not read at all.
    let active: HashSet<String> = if initial || now.rooms <= since.rooms {
        HashSet::new()
    } else {
        sstore::rooms_with_events(&ctx.db, user, since.rooms, now.rooms).await?.into_iter().collect()
    };

    let mut rooms: BTreeMap<String, RoomOut> = BTreeMap::new();
    let mut invites = Vec::new();
    let mut knocks = Vec::new();
    // Invites to a user who blocks them are not served (spec v1.18, "Invite permission");
    // they come back if the user stops blocking. Read only when there is an invite.
    let invites_blocked =
        memberships.iter().any(|m| m.membership == "invite") && crate::service::membership::invites_blocked(ctx, &me.user_id).await?;
    for m in &memberships {
        if !f.room.room_allowed(&m.room_id) {
            continue;
        }
        let changed = initial || m.stream() > since.rooms;
        let (range, full) = match m.membership.as_str() {
            "join" => {
                // A room joined since the token (from invite, knock, leave or nothing, or
                // left and rejoined) comes as in an initial sync of it (Synapse does the
                // same): full state and its recent history, as far as history visibility
                // lets the user see it, with `limited` and `prev_batch` (spec: "Syncing",
                // TimelineBatch) so the client can page back through what it never had.
                let newly = initial || newly_joined.contains(&m.room_id);
                let full = newly || p.full_state;
                if !(full || active.contains(&m.room_id)) {
                    // No new events: the room may still appear for ephemeral events or
                    // account data (added below).
                    continue;
                }
                let after = if newly { 0 } else { since.rooms };
                (Some(Range { room_id: m.room_id.clone(), after, up_to: now.rooms }), full)
            }
            "invite" => {
                if (changed || p.full_state) && !invites_blocked {
                    invites.push(m.room_id.clone());
                }
                continue;
            }
            "knock" => {
                if changed || p.full_state {
                    knocks.push(m.room_id.clone());
                }
                continue;
            }
            _ => {
                // leave / ban: in an incremental sync when it happened since; in an initial
                // sync only with include_leave.
                if m.forgotten != 0.0 || !(if initial { f.room.include_leave } else { m.stream() > since.rooms }) {
                    continue;
                }
                (Some(Range { room_id: m.room_id.clone(), after: since.rooms, up_to: m.stream() }), true)
            }
        };
        rooms.insert(
            m.room_id.clone(),
            RoomOut { membership: m.membership.clone(), range, full, my_membership_stream: m.stream(), ..Default::default() },
        );
    }

    // Timelines: the last `limit` events of each room, plus one to learn `limited`.
    let ranges: Vec<Range> = rooms.values().filter_map(|r| r.range.clone()).collect();
    // With a type/sender filter, look further back so filtered-out events do not empty it.
    let tf = &f.room.timeline;
    let narrowed = tf.types.is_some() || !tf.not_types.is_empty() || tf.senders.is_some() || !tf.not_senders.is_empty() || tf.contains_url.is_some();
    let window = if narrowed { (limit * 10).min(500) + 1 } else { limit + 1 };
    let mut by_room: HashMap<String, Vec<EventRow>> = HashMap::new();
    for row in sstore::timeline_windows(&ctx.db, &ranges, window).await? {
        by_room.entry(row.room_id.clone()).or_default().push(row);
    }
    for (room_id, r) in rooms.iter_mut() {
        let Some(range) = &r.range else { continue };
        let mut rows = by_room.remove(room_id).unwrap_or_default();
        let raw_len = rows.len() as u32;
        rows.retain(|e| {
            let c: Value = serde_json::from_str::<Value>(&e.json).map(|j| j["content"].clone()).unwrap_or(Value::Null);
            tf.matches(&e.kind, &e.sender, &c)
        });
        r.limited = raw_len >= window;
        if rows.len() as u32 > limit {
            rows.drain(..rows.len() - limit as usize);
            r.limited = true;
        }
        r.prev_batch = rows.first().map(|e| e.stream() - 1).unwrap_or(range.up_to);
        r.timeline = rows;
    }

    // State: before the timeline (or, with use_state_after, at its end).
    let mut state_ranges = Vec::new();
    for (room_id, r) in rooms.iter() {
        let Some(range) = &r.range else { continue };
        let after = if r.full { 0 } else { range.after };
        let up_to = if p.state_after { range.up_to } else { r.timeline.first().map(|e| e.stream() - 1).unwrap_or(range.up_to) };
        if p.state_after || r.full || r.limited {
            state_ranges.push(Range { room_id: room_id.clone(), after, up_to });
        }
    }
    for row in sstore::state_deltas(&ctx.db, &state_ranges).await? {
        if let Some(r) = rooms.get_mut(&row.room_id) {
            r.state.push(row);
        }
    }

    // History visibility: a currently joined user sees events from before their membership
    // when the visibility in effect at each of them is `shared` or `world_readable`. The
    // full per-event check (two queries for the room) runs only when that is not known.
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let open_vis = |json: &str| {
        let c: Value = serde_json::from_str::<Value>(json).map(|j| j["content"].clone()).unwrap_or(Value::Null);
        matches!(HistoryVisibility::parse(c["history_visibility"].as_str()), HistoryVisibility::Shared | HistoryVisibility::WorldReadable)
    };
    for (room_id, r) in rooms.iter_mut() {
        let before: Vec<&EventRow> = r.timeline.iter().filter(|e| e.stream() < r.my_membership_stream).collect();
        let hv_in_timeline = r.timeline.iter().any(|e| e.kind == "m.room.history_visibility");
        // The visibility at the start of the timeline, when the state tells it.
        let start_vis: Option<bool> = if r.full && (!p.state_after || !hv_in_timeline) {
            Some(r.state.iter().find(|e| e.kind == "m.room.history_visibility").is_none_or(|e| open_vis(&e.json)))
        } else {
            None
        };
        let needs_check = r.membership != "join"
            || (!before.is_empty()
                && match start_vis {
                    None => true,
                    Some(mut open) => {
                        let mut all_open = true;
                        for e in &before {
                            // A visibility change is seen by both sides of it.
                            all_open &= open || (e.kind == "m.room.history_visibility" && open_vis(&e.json));
                            if e.kind == "m.room.history_visibility" {
                                open = open_vis(&e.json);
                            }
                        }
                        !all_open
                    }
                });
        if needs_check && !r.timeline.is_empty() {
            let all = std::mem::take(&mut r.timeline);
            r.timeline = filter_visible(ctx, &reader, room_id, all.clone()).await?;
            if !p.state_after {
                hidden_prefix_into_state(&mut r.state, &all, &r.timeline);
            }
        }
        r.state.retain(|e| {
            let c: Value = serde_json::from_str::<Value>(&e.json).map(|j| j["content"].clone()).unwrap_or(Value::Null);
            f.room.state.matches(&e.kind, &e.sender, &c)
        });
    }

    // Lazy-loaded members: only the member events of the timeline's senders (and the user).
    if f.lazy_load_members() {
        let mut missing = Vec::new();
        for (room_id, r) in rooms.iter_mut() {
            if r.range.is_none() {
                continue;
            }
            let mut senders: HashSet<String> = r.timeline.iter().map(|e| e.sender.clone()).collect();
            if r.full {
                senders.insert(user.to_owned());
            }
            r.state.retain(|e| e.kind != "m.room.member" || e.state_key.as_ref().is_some_and(|k| senders.contains(k)));
            let have: HashSet<String> = r.state.iter().filter(|e| e.kind == "m.room.member").filter_map(|e| e.state_key.clone()).collect();
            let at = if p.state_after {
                r.range.as_ref().map(|x| x.up_to).unwrap_or(0)
            } else {
                r.timeline.first().map(|e| e.stream() - 1).unwrap_or(r.prev_batch)
            };
            for s in senders {
                let in_timeline = r.timeline.iter().any(|e| e.kind == "m.room.member" && e.state_key.as_deref() == Some(s.as_str()));
                if !have.contains(&s) && (!in_timeline || p.state_after) {
                    missing.push((room_id.clone(), s, at));
                }
            }
        }
        for row in sstore::members_at(&ctx.db, &missing).await? {
            if let Some(r) = rooms.get_mut(&row.room_id) {
                if !r.timeline.iter().any(|e| e.event_id == row.event_id) || p.state_after {
                    r.state.push(row);
                }
            }
        }
    }

    // Ephemeral streams and account data.
    let joined: HashSet<&str> =
        memberships.iter().filter(|m| m.membership == "join" && f.room.room_allowed(&m.room_id)).map(|m| m.room_id.as_str()).collect();
    let mut ephemeral: HashMap<String, Vec<Value>> = HashMap::new();
    let typing_after = if initial { 0 } else { since.typing };
    let typing = if initial || now.typing > since.typing { sstore::typing_since(&ctx.db, user, typing_after, now.typing).await? } else { vec![] };
    for (room_id, users) in typing {
        if initial && users.is_empty() {
            continue;
        }
        ephemeral.entry(room_id).or_default().push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
    }
    let receipts_after = if initial { 0 } else { since.receipts };
    let mut receipts: HashMap<String, Value> = HashMap::new();
    let rcs =
        if initial || now.receipts > since.receipts { sstore::receipts_since(&ctx.db, user, receipts_after, now.receipts).await? } else { vec![] };
    for rc in rcs {
        let content = receipts.entry(rc.room_id.clone()).or_insert_with(|| json!({}));
        let mut r = json!({ "ts": rc.ts as u64 });
        if !rc.thread_id.is_empty() {
            r["thread_id"] = json!(rc.thread_id);
        }
        content[rc.event_id.as_str()][rc.receipt_type.as_str()][rc.user_id.as_str()] = r;
    }
    for (room_id, content) in receipts {
        ephemeral.entry(room_id).or_default().push(json!({ "type": "m.receipt", "content": content }));
    }
    let ad_after = if initial { 0 } else { since.account_data };
    let mut global_ad = Vec::new();
    let mut room_ad: HashMap<String, Vec<Value>> = HashMap::new();
    let ads = if initial || now.account_data > since.account_data {
        sstore::account_data_since(&ctx.db, user, ad_after, now.account_data).await?
    } else {
        vec![]
    };
    for a in ads {
        let ev = json!({ "type": a.kind, "content": serde_json::from_str::<Value>(&a.content).unwrap_or(json!({})) });
        if a.room_id.is_empty() {
            if f.account_data.matches(&a.kind, user, &ev["content"]) {
                global_ad.push(ev);
            }
        } else if f.room.account_data.matches(&a.kind, user, &ev["content"]) {
            room_ad.entry(a.room_id).or_default().push(ev);
        }
    }
    if initial && !global_ad.iter().any(|e| e["type"] == "m.push_rules") && f.account_data.matches("m.push_rules", user, &json!({})) {
        let rs = crate::core::push::load_ruleset(None, &me.user_id);
        global_ad.push(json!({ "type": "m.push_rules", "content": crate::core::push::to_stored(&rs) }));
    }
    for (room_id, evs) in ephemeral {
        if !joined.contains(room_id.as_str()) {
            continue;
        }
        let evs: Vec<Value> = evs.into_iter().filter(|e| f.room.ephemeral.matches(e["type"].as_str().unwrap_or(""), user, &json!({}))).collect();
        if !evs.is_empty() {
            rooms
                .entry(room_id.clone())
                .or_insert_with(|| RoomOut { membership: "join".into(), prev_batch: now.rooms, ..Default::default() })
                .ephemeral = evs;
        }
    }
    for (room_id, evs) in room_ad {
        let Some(m) = memberships.iter().find(|m| m.room_id == room_id) else { continue };
        if m.membership != "join" && !rooms.contains_key(&room_id) {
            continue;
        }
        if !f.room.room_allowed(&room_id) {
            continue;
        }
        rooms
            .entry(room_id.clone())
            .or_insert_with(|| RoomOut { membership: m.membership.clone(), prev_batch: now.rooms, ..Default::default() })
            .account_data = evs;
    }

    // Unread counts (push actions after the user's read receipts), one query for all rooms.
    let mut unread: HashMap<String, Vec<(String, u64, u64)>> = HashMap::new();
    if rooms.values().any(|r| r.membership == "join") {
        for (room_id, thread, n, h) in sstore::unread_counts(&ctx.db, user).await? {
            unread.entry(room_id).or_default().push((thread, n, h));
        }
    }
    let need_summary =
        rooms.values().any(|r| r.membership == "join" && (r.full || r.timeline.iter().chain(r.state.iter()).any(|e| e.kind == "m.room.member")));
    let mut summaries: HashMap<String, Value> = HashMap::new();
    if need_summary {
        for s in sstore::summaries(&ctx.db, user).await? {
            let room_id = s["room_id"].as_str().unwrap_or("").to_owned();
            let entry =
                summaries.entry(room_id).or_insert_with(|| json!({ "m.heroes": [], "m.joined_member_count": 0, "m.invited_member_count": 0 }));
            let n = s["n"].as_f64().unwrap_or(0.0) as u64;
            match s["membership"].as_str() {
                Some("join") => entry["m.joined_member_count"] = json!(n),
                _ => entry["m.invited_member_count"] = json!(n),
            }
            let u = s["user_id"].as_str().unwrap_or("");
            if u != user {
                if let Some(h) = entry["m.heroes"].as_array_mut() {
                    if h.len() < 5 {
                        h.push(json!(u));
                    }
                }
            }
        }
    }

    // Serialise every event once (redactions in one query).
    let all_rows: Vec<EventRow> = rooms.values().flat_map(|r| r.timeline.iter().chain(r.state.iter()).cloned()).collect();
    let clients = to_client(ctx, &reader, &all_rows).await?;
    let shape = |v: Value| match &f.event_fields {
        Some(fields) => apply_event_fields(&v, fields),
        None => v,
    };
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for (row, v) in all_rows.iter().zip(clients) {
        by_id.insert(row.event_id.clone(), shape(v));
    }

    let mut join = Map::new();
    let mut leave = Map::new();
    for (room_id, r) in rooms {
        let events = |rows: &[EventRow]| rows.iter().filter_map(|e| by_id.get(&e.event_id).cloned()).collect::<Vec<_>>();
        let mut state_rows = r.state.clone();
        state_rows.sort_by_key(|e| e.stream());
        let mut out = json!({
            "timeline": { "events": events(&r.timeline), "limited": r.limited, "prev_batch": format!("s{}", r.prev_batch) },
            "account_data": { "events": r.account_data },
        });
        if p.state_after {
            out["state_after"] = json!({ "events": events(&state_rows) });
            out["org.matrix.msc4222.state_after"] = out["state_after"].clone();
        } else {
            out["state"] = json!({ "events": events(&state_rows) });
        }
        if r.membership == "join" {
            out["ephemeral"] = json!({ "events": r.ephemeral });
            let counts = unread.get(&room_id).cloned().unwrap_or_default();
            let (total, threads) = crate::core::push::unread_json(&counts, f.room.timeline.unread_thread_notifications);
            out["unread_notifications"] = total;
            if let Some(t) = threads {
                out["unread_thread_notifications"] = t;
            }
            if let Some(s) = summaries.get(&room_id) {
                out["summary"] = s.clone();
            } else {
                out["summary"] = json!({});
            }
            join.insert(room_id, out);
        } else {
            leave.insert(room_id, out);
        }
    }

    // Invites and knocks: stripped state.
    let mut invite = Map::new();
    let mut knock = Map::new();
    if !invites.is_empty() || !knocks.is_empty() {
        let stripped = sstore::stripped_state(&ctx.db, user).await?;
        for (list, key, target) in [(&invites, "invite_state", &mut invite), (&knocks, "knock_state", &mut knock)] {
            for room_id in list {
                let evs: Vec<Value> = stripped
                    .iter()
                    .filter(|e| &e.room_id == room_id)
                    .filter_map(|e| {
                        let j: Value = serde_json::from_str(&e.json).ok()?;
                        let mut s = json!({ "type": e.kind, "state_key": e.state_key, "sender": e.sender, "content": j["content"] });
                        if e.kind == "m.room.member" && e.state_key.as_deref() == Some(user) {
                            // The user's own membership event in full (clients read its event ID and time).
                            s["event_id"] = json!(e.event_id);
                            s["origin_server_ts"] = json!(e.origin_server_ts as u64);
                            s["room_id"] = json!(e.room_id);
                        }
                        Some(s)
                    })
                    .collect();
                target.insert(room_id.clone(), json!({ key: { "events": evs } }));
            }
        }
    }

    // Presence of the user and of everyone sharing a room with them.
    let presence_after = if initial { 0 } else { since.presence };
    let now_ts = now_ms();
    let presence_rows =
        if initial || now.presence > since.presence { sstore::presence_since(&ctx.db, user, presence_after, now.presence).await? } else { vec![] };
    let presence: Vec<Value> = presence_rows
        .into_iter()
        .map(|pr| {
            let mut c = json!({
                "presence": pr.presence,
                "last_active_ago": now_ts.saturating_sub(pr.last_active_ts as u64),
                "currently_active": pr.currently_active != 0.0,
            });
            if let Some(m) = pr.status_msg {
                c["status_msg"] = json!(m);
            }
            json!({ "type": "m.presence", "sender": pr.user_id, "content": c })
        })
        .filter(|e| f.presence.matches("m.presence", e["sender"].as_str().unwrap_or(""), &e["content"]))
        .collect();

    // To-device messages for this device, from the user's UserSync object (its own stream).
    // The device's one-time key counts come from the UserKeys object, in parallel.
    let (td, key_counts) = futures_util::future::join(
        notify::take_to_device(&ctx.env, user, &me.device_id, since.to_device),
        crate::service::keys::counts(&ctx.env, user, &me.device_id),
    )
    .await;
    let (to_device, td_pos) = td?;
    let (otk_counts, unused_fallback) = key_counts?;
    let mut now = now;
    now.to_device = td_pos;

    // Device lists: whose keys to re-query (not in an initial sync: the client queries all).
    let (dl_changed, dl_left) =
        if initial { (vec![], vec![]) } else { crate::api::client::keys::device_lists_between(ctx, user, &since, &now).await? };

    let found = !join.is_empty()
        || !leave.is_empty()
        || !invite.is_empty()
        || !knock.is_empty()
        || !global_ad.is_empty()
        || !presence.is_empty()
        || !to_device.is_empty()
        || !dl_changed.is_empty()
        || !dl_left.is_empty();
    let next = if initial || found { now.max(&since) } else { since };
    let body = json!({
        "next_batch": next.encode(),
        "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
        "presence": { "events": presence },
        "account_data": { "events": global_ad },
        "to_device": { "events": to_device },
        "device_lists": { "changed": dl_changed, "left": dl_left },
        "device_one_time_keys_count": crate::core::e2ee::key_counts(&otk_counts),
        "device_unused_fallback_key_types": unused_fallback,
        "org.matrix.msc2732.device_unused_fallback_key_types": unused_fallback,
    });
    Ok((body, found))
}

/// # `POST /_matrix/client/v3/user/{userId}/filter`
pub async fn create_filter_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    crate::core::ids::parse_client_user_id(user_id)?;
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot create filters for other users"));
    }
    let body = req.json_value()?;
    Filter::parse(&body).map_err(|e| err!(BadJson, "{e}"))?;
    let id = sstore::put_filter(&ctx.db, user_id, &body.to_string()).await?;
    Ok(Response::ok(json!({ "filter_id": id.to_string() })))
}

/// # `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
pub async fn get_filter_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, filter_id: &str) -> Result<Response> {
    crate::core::ids::parse_client_user_id(user_id)?;
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot read filters of other users"));
    }
    let id: u64 = filter_id.parse().map_err(|_| err!(NotFound, "No such filter"))?;
    let f = sstore::get_filter(&ctx.db, user_id, id).await?.ok_or_else(|| err!(NotFound, "No such filter"))?;
    Ok(Response::ok(f))
}
