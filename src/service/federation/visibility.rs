//! What the read endpoints of the federation API serve another server (spec:
//! server-server-api, "Retrieving events", "Backfilling and retrieving missing events",
//! "Retrieving event authorisation information", "Server Access Control Lists"): the room
//! gate (known here, allowed by the room's ACL, the server was in the room), the per-event
//! history-visibility rule for servers (`core::federation::server_view`; an event the server
//! may not see is served redacted, as Synapse does, so the graph stays whole), the walks of
//! `/backfill` and `/get_missing_events`, and the state and auth chain at an event.
//!
//! Events are served as stored: the signed PDU JSON of `events.json`.
//! Rejected events: the lead's migration 0010 marks them; until `store::rooms` leaves them
//! out, [`servable`] is the one place to filter them.

use std::collections::{BTreeMap, HashMap, HashSet};

use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, ServerName};
use serde_json::Value;

use crate::core::federation::server_view::{event_visible, user_on_server, EventView, Walk};
use crate::core::room::state::StateMap;
use crate::core::room::version_rules;
use crate::core::room::visibility::HistoryVisibility;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::store::rooms::{self, EventRow};
use crate::store::{federation_rooms as fstore, rooms::load_state_group};

/// At most this many events per `/backfill` or `/get_missing_events` answer.
pub const MAX_EVENTS: usize = 100;
/// At most this many rounds of a graph walk (one D1 read each).
const MAX_ROUNDS: usize = 50;

/// PLACEHOLDER(acl): the server ACL check another helper provides as
/// `service::federation::acl::check(ctx, room_id, origin)`; the lead swaps this call for it.
/// Until then every server is allowed.
pub async fn acl_check(_ctx: &Ctx, _room_id: &str, _origin: &ServerName) -> Result<()> {
    Ok(())
}

/// Whether a stored event may be served at all. Rejected events never are: once migration
/// 0010's marker is on `EventRow`, it is checked here.
pub fn servable(_row: &EventRow) -> bool {
    true
}

/// The room gate of the read endpoints: `404` for a room unknown here, `403` when the
/// room's ACL denies the server or no user of it was ever in the room. Returns the rules of
/// the room's version.
pub async fn gate(ctx: &Ctx, room_id: &str, origin: &ServerName) -> Result<RoomVersionRules> {
    let room = rooms::get_room(&ctx.db, room_id).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    acl_check(ctx, room_id, origin).await?;
    if !fstore::server_was_in_room(&ctx.db, room_id, origin.as_str()).await? {
        return Err(err!(Forbidden, "Your server is not in this room"));
    }
    Ok(version_rules(&room.room_version)?.1)
}

fn content_str(json: &str, key: &str) -> Option<String> {
    serde_json::from_str::<Value>(json).ok()?.get("content")?.get(key)?.as_str().map(str::to_owned)
}

/// Per row, whether `origin` may see it (spec: client-server-api, "History visibility",
/// applied to the server's users). One query when the room never restricted its history;
/// otherwise one state-group load per distinct `state_before` and one read of the events
/// the rule looks at.
pub async fn visible_to(ctx: &Ctx, room_id: &str, origin: &ServerName, rows: &[EventRow]) -> Result<Vec<bool>> {
    let values = fstore::history_visibility_values(&ctx.db, room_id).await?;
    let restricts = values.iter().any(|v| matches!(HistoryVisibility::parse(v.as_deref()), HistoryVisibility::Invited | HistoryVisibility::Joined));
    if !restricts {
        return Ok(vec![true; rows.len()]);
    }
    // The state before each event: its group, loaded once per group.
    let before = fstore::state_before_groups(&ctx.db, &rows.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>()).await?;
    let mut groups: HashMap<String, StateMap> = HashMap::new();
    for g in before.values() {
        if !groups.contains_key(g) {
            groups.insert(g.clone(), load_state_group(&ctx.db, g).await?.0);
        }
    }
    let hv_key = ("m.room.history_visibility".to_owned(), String::new());
    let mut wanted: HashSet<String> = HashSet::new();
    for map in groups.values() {
        for ((t, k), e) in map {
            if (t == "m.room.history_visibility" && k.is_empty()) || (t == "m.room.member" && user_on_server(k, origin.as_str())) {
                wanted.insert(e.to_string());
            }
        }
    }
    let events: HashMap<String, EventRow> =
        rooms::get_events(&ctx.db, &wanted.into_iter().collect::<Vec<_>>()).await?.into_iter().map(|r| (r.event_id.clone(), r)).collect();
    let empty = StateMap::new();
    Ok(rows
        .iter()
        .map(|row| {
            let state = before.get(&row.event_id).and_then(|g| groups.get(g)).unwrap_or(&empty);
            let visibility = HistoryVisibility::parse(
                state.get(&hv_key).and_then(|e| events.get(e.as_str())).and_then(|r| content_str(&r.json, "history_visibility")).as_deref(),
            );
            let memberships: BTreeMap<String, String> = state
                .iter()
                .filter(|((t, k), _)| t == "m.room.member" && user_on_server(k, origin.as_str()))
                .filter_map(|((_, k), e)| events.get(e.as_str()).and_then(|r| r.membership.clone()).map(|m| (k.clone(), m)))
                .collect();
            let new_visibility =
                (row.kind == "m.room.history_visibility").then(|| HistoryVisibility::parse(content_str(&row.json, "history_visibility").as_deref()));
            let own_membership = match (&row.state_key, &row.membership) {
                (Some(k), Some(m)) if row.kind == "m.room.member" && user_on_server(k, origin.as_str()) => Some((k.clone(), m.clone())),
                _ => None,
            };
            event_visible(&EventView { visibility, memberships, new_visibility, own_membership })
        })
        .collect())
}

/// The events as another server receives them: the stored PDU, redacted by the room
/// version's rules when `origin` may not see it. Unservable rows are left out.
pub async fn serve(ctx: &Ctx, room_id: &str, origin: &ServerName, rules: &RoomVersionRules, rows: Vec<EventRow>) -> Result<Vec<Value>> {
    let rows: Vec<EventRow> = rows.into_iter().filter(servable).collect();
    let visible = visible_to(ctx, room_id, origin, &rows).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, ok) in rows.iter().zip(visible) {
        let pdu = row.pdu()?;
        let json = if ok { pdu.json } else { pdu.redacted(rules)?.json };
        out.push(serde_json::to_value(&json)?);
    }
    Ok(out)
}

/// Runs a walk over the room's events (one read per round), then loads the events found.
async fn walk(ctx: &Ctx, room_id: &str, mut w: Walk) -> Result<Walk> {
    for _ in 0..MAX_ROUNDS {
        let want: Vec<String> = w.wanted().iter().map(|e| e.to_string()).collect();
        if want.is_empty() {
            break;
        }
        let found = rooms::get_events(&ctx.db, &want).await?;
        let mut step = Vec::with_capacity(found.len());
        for row in found.iter().filter(|r| r.room_id == room_id && servable(r)) {
            let pdu = row.pdu()?;
            step.push((pdu.event_id, pdu.depth, pdu.prev_events));
        }
        w.step(step);
    }
    Ok(w)
}

/// Loads events by ID in the given order (those of other rooms left out).
async fn rows_in_order(ctx: &Ctx, room_id: &str, ids: &[OwnedEventId]) -> Result<Vec<EventRow>> {
    let strs: Vec<String> = ids.iter().map(|e| e.to_string()).collect();
    let mut by_id: HashMap<String, EventRow> =
        rooms::get_events(&ctx.db, &strs).await?.into_iter().filter(|r| r.room_id == room_id).map(|r| (r.event_id.clone(), r)).collect();
    Ok(strs.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// `/backfill`: the events `v` and those before them, newest first, up to `limit`.
pub async fn backfill(ctx: &Ctx, room_id: &str, v: Vec<OwnedEventId>, limit: usize) -> Result<Vec<EventRow>> {
    let w = walk(ctx, room_id, Walk::backfill(v, limit.min(MAX_EVENTS))).await?;
    rows_in_order(ctx, room_id, &w.newest_first()).await
}

/// `/get_missing_events`: the events before `latest` and after `earliest`, oldest first.
pub async fn missing_events(
    ctx: &Ctx,
    room_id: &str,
    latest: Vec<OwnedEventId>,
    earliest: Vec<OwnedEventId>,
    limit: usize,
    min_depth: u64,
) -> Result<Vec<EventRow>> {
    let w = walk(ctx, room_id, Walk::missing(latest, earliest, limit.min(MAX_EVENTS), min_depth)).await?;
    rows_in_order(ctx, room_id, &w.oldest_first()).await
}

/// An event of the room, servable; `404` otherwise.
pub async fn event_in_room(ctx: &Ctx, room_id: &str, event_id: &str) -> Result<EventRow> {
    rooms::get_event(&ctx.db, event_id).await?.filter(|r| r.room_id == room_id && servable(r)).ok_or_else(|| err!(NotFound, "Event not found"))
}

/// The state before an event (spec: `/state`, "prior to considering any state changes
/// induced by the requested event"): its `state_before` group; empty before the create
/// event; `404` when this server does not know the state there (an out-of-band event).
pub async fn state_before(ctx: &Ctx, row: &EventRow) -> Result<StateMap> {
    let before = fstore::state_before_groups(&ctx.db, std::slice::from_ref(&row.event_id)).await?;
    match before.get(&row.event_id) {
        Some(g) => Ok(load_state_group(&ctx.db, g).await?.0),
        None if row.kind == "m.room.create" => Ok(StateMap::new()),
        None => Err(err!(NotFound, "The state at this event is not known here")),
    }
}

/// Every event reachable from `start` through `auth_events` (not `start` themselves), one
/// read per level of the auth graph.
pub async fn auth_chain(ctx: &Ctx, room_id: &str, start: &[OwnedEventId]) -> Result<Vec<EventRow>> {
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut out = Vec::new();
    let mut todo: Vec<OwnedEventId> = start.to_vec();
    let mut first = true;
    while !todo.is_empty() {
        let strs: Vec<String> = todo.iter().map(|e| e.to_string()).collect();
        let rows = rooms::get_events(&ctx.db, &strs).await?;
        let mut next = Vec::new();
        for row in rows.into_iter().filter(|r| r.room_id == room_id && servable(r)) {
            let pdu = row.pdu()?;
            for a in &pdu.auth_events {
                if seen.insert(a.clone()) {
                    next.push(a.clone());
                }
            }
            if !first {
                out.push(row);
            }
        }
        first = false;
        todo = next;
    }
    Ok(out)
}

/// Event IDs from strings (`400 M_INVALID_PARAM` for a malformed one).
pub fn parse_event_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<OwnedEventId>> {
    ids.into_iter().map(|s| EventId::parse(s).map_err(|_| err!(InvalidParam, "Invalid event ID: {s}"))).collect()
}

/// `(type, state_key)` ordering of a state map's event IDs.
pub fn state_ids(state: &StateMap) -> Vec<OwnedEventId> {
    state.values().cloned().collect()
}
