//! `rooms` of a sync: joined rooms (timeline, state or `state_after`, ephemeral events,
//! account data, unread counts, summary), invites and knocks (stripped state), and left
//! rooms. Built in two steps so the per-user streams can add rooms in between: [`plan`]
//! reads the timelines and state of the rooms with news, [`finish`] reads what the final
//! set of rooms needs (unread counts, summaries, stripped state) and serialises every event
//! once.
//!
//! Every read covers all rooms at once (room windows and state in chunks of 30 rooms):
//! the cost of a sync does not grow by a query per room. State deltas use the event stream
//! directly: the latest state event of each key up to a position is the state at that
//! position, except where state resolution changed it when another server's branch joined
//! (federated rooms); those changes are recorded as state resets at the joining event's
//! position and read alongside (`store::sync::state_at`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::Params;
use crate::api::auth::Authed;
use crate::core::filter::{apply_event_fields, Filter};
use crate::core::room::resets::{start_state, Candidate, StateKey};
use crate::core::room::visibility::HistoryVisibility;
use crate::core::sync::{
    room_summaries, AccountDataEvent, EphemeralEvent, InvitedRoom, JoinedRoom, KnockedRoom, RoomSummary, RoomUpdate, Rooms, StateSection,
    StrippedStateEvent, Timeline,
};
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::events::{filter_visible, to_client, Reader};
use crate::store::rooms::EventRow;
use crate::store::sync::{self as sstore, MembershipRow, Range, RoomNews, StateRange};

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
    ephemeral: Vec<EphemeralEvent>,
    account_data: Vec<AccountDataEvent>,
    my_membership_stream: u64,
}

/// The rooms of a sync between [`plan`] and [`finish`].
pub struct Plan {
    rooms: BTreeMap<String, RoomOut>,
    invites: Vec<String>,
    knocks: Vec<String>,
    /// The room stream position of the sync (`prev_batch` of rooms with no timeline).
    now_rooms: u64,
    /// The unread counts, when the snapshot carried them.
    unread: Option<Vec<(String, String, u64, u64)>>,
}

/// How many events a sync reads per room: the timeline limit and one more to learn
/// `limited`; with a type/sender filter, further back so filtered-out events do not empty it.
pub fn timeline_window(f: &Filter) -> u32 {
    let limit = f.timeline_limit();
    let tf = &f.room.timeline;
    let narrowed = tf.types.is_some() || !tf.not_types.is_empty() || tf.senders.is_some() || !tf.not_senders.is_empty() || tf.contains_url.is_some();
    if narrowed {
        (limit * 10).min(500) + 1
    } else {
        limit + 1
    }
}

/// The content of a stored event's JSON (`null` when unreadable).
fn content_of(json: &str) -> Value {
    serde_json::from_str::<Value>(json).map(|j| j.get("content").cloned().unwrap_or_default()).unwrap_or(Value::Null)
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

/// Which rooms have news, and their timelines and state: newly joined rooms (and all rooms
/// in an initial sync or with `full_state`) with full state and recent history; other joined
/// rooms with the events since the token; leaves and bans that happened since; invites and
/// knocks (their stripped state comes in [`finish`]).
///
/// With `news` (an incremental sync's snapshot carried them), the rooms joined before the
/// token take their timelines, resets and unread counts from it and read nothing more here.
pub async fn plan(
    ctx: &Ctx,
    me: &Authed,
    p: &Params,
    now: &SyncToken,
    memberships: &[MembershipRow],
    newly_joined: Vec<String>,
    news: Option<RoomNews>,
) -> Result<Plan> {
    let user = me.user_id.as_str();
    let newly_joined: HashSet<String> = newly_joined.into_iter().collect();
    let initial = p.since.is_none();
    let since = p.since.unwrap_or_default();
    let f = &p.filter;
    let limit = f.timeline_limit();

    // A stream whose position has not moved since the token is not read at all.
    // Rooms where state resolution also reset state since the token (federated rooms).
    let news = news.filter(|_| !initial);
    let unread = news.as_ref().and_then(|n| n.unread.clone());
    let mut carried: Option<HashMap<String, Vec<EventRow>>> = None;
    // Lazy-loaded members the snapshot carried, by (room, user), and the position they are
    // as of per room (just before its window's first event).
    let mut lazy_carried: HashMap<(String, String), EventRow> = HashMap::new();
    let mut lazy_at: HashMap<String, u64> = HashMap::new();
    let (active, reset_rooms): (HashSet<String>, HashSet<String>) = if initial || now.rooms <= since.rooms {
        (HashSet::new(), HashSet::new())
    } else if let Some(n) = news {
        // The snapshot's windows are the joined rooms with events in `(since, now]`.
        let resets: HashSet<String> = n.resets.into_iter().collect();
        let mut windows: HashMap<String, Vec<EventRow>> = HashMap::new();
        for row in n.windows {
            let first = lazy_at.entry(row.room_id.clone()).or_insert(row.stream());
            *first = (*first).min(row.stream());
            windows.entry(row.room_id.clone()).or_default().push(row);
        }
        for row in n.lazy_members {
            if let Some(k) = row.state_key.clone() {
                lazy_carried.insert((row.room_id.clone(), k), row);
            }
        }
        let active = windows.keys().cloned().chain(resets.iter().cloned()).collect();
        carried = Some(windows);
        (active, resets)
    } else {
        let rows = sstore::rooms_with_events(&ctx.db, user, since.rooms, now.rooms).await?;
        (rows.iter().map(|(r, _)| r.clone()).collect(), rows.into_iter().filter(|(_, x)| *x).map(|(r, _)| r).collect())
    };

    let mut rooms: BTreeMap<String, RoomOut> = BTreeMap::new();
    let mut invites = Vec::new();
    let mut knocks = Vec::new();
    for m in memberships {
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
                    // account data (added later).
                    continue;
                }
                let after = if newly { 0 } else { since.rooms };
                (Some(Range { room_id: m.room_id.clone(), after, up_to: now.rooms }), full)
            }
            "invite" => {
                if changed || p.full_state {
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
    // Invites to a user who blocks them are not served (spec v1.18, "Invite permission");
    // they come back if the user stops blocking. Read only when an invite would be served.
    if !invites.is_empty() && crate::service::membership::invites_blocked(ctx, &me.user_id).await? {
        invites.clear();
    }

    // Timelines: the last `limit` events of each room, plus one to learn `limited` (those of
    // rooms joined before the token, from the snapshot when it carried them).
    let mut by_room: HashMap<String, Vec<EventRow>> = HashMap::new();
    let mut ranges: Vec<Range> = Vec::new();
    for (room_id, r) in rooms.iter() {
        let Some(range) = &r.range else { continue };
        match carried.as_mut().filter(|_| r.membership == "join" && !r.full) {
            Some(c) => {
                by_room.insert(room_id.clone(), c.remove(room_id).unwrap_or_default());
            }
            None => {
                lazy_at.remove(room_id);
                ranges.push(range.clone());
            }
        }
    }
    let tf = &f.room.timeline;
    let window = timeline_window(f);
    for row in sstore::timeline_windows(&ctx.db, &ranges, window).await? {
        by_room.entry(row.room_id.clone()).or_default().push(row);
    }
    for (room_id, r) in rooms.iter_mut() {
        let Some(range) = &r.range else { continue };
        let mut rows = by_room.remove(room_id).unwrap_or_default();
        let raw_len = rows.len() as u32;
        rows.retain(|e| tf.matches(&e.kind, &e.sender, &content_of(&e.json)));
        r.limited = raw_len >= window;
        if rows.len() as u32 > limit {
            rows.drain(..rows.len() - limit as usize);
            r.limited = true;
        }
        r.prev_batch = rows.first().map(|e| e.stream() - 1).unwrap_or(range.up_to);
        r.timeline = rows;
    }

    // State: before the timeline (or, with use_state_after, at its end), with the state
    // resets of federated rooms (changes state resolution made that no timeline event
    // shows): in `state_after` they are part of the state at the end; otherwise the resets
    // made during the timeline come in `state` too (`core::room::resets::start_state`), even
    // in an incremental sync that would have no state section.
    let mut state_ranges = Vec::new();
    for (room_id, r) in rooms.iter() {
        let Some(range) = &r.range else { continue };
        let after = if r.full { 0 } else { range.after };
        let up_to = if p.state_after { range.up_to } else { r.timeline.first().map(|e| e.stream() - 1).unwrap_or(range.up_to) };
        if p.state_after || r.full || r.limited {
            state_ranges.push(StateRange { room_id: room_id.clone(), after, up_to, resets_up_to: range.up_to });
        } else if reset_rooms.contains(room_id) {
            state_ranges.push(StateRange { room_id: room_id.clone(), after, up_to: after, resets_up_to: range.up_to });
        }
    }
    // Per room: the state up to the timeline's start, and the resets made during it.
    type Read = (Vec<Candidate<EventRow>>, Vec<Candidate<EventRow>>);
    let mut read: HashMap<String, Read> = HashMap::new();
    for s in sstore::state_at(&ctx.db, &state_ranges).await? {
        let Some(key) = s.row.state_key.clone().map(|k| (s.row.kind.clone(), k)) else { continue };
        let (before, during) = read.entry(s.row.room_id.clone()).or_default();
        let c = Candidate { key, at: s.at, item: s.row };
        if s.after_up_to {
            during.push(c);
        } else {
            before.push(c);
        }
    }
    for (room_id, (before, during)) in read {
        let Some(r) = rooms.get_mut(&room_id) else { continue };
        let timeline_last: HashMap<StateKey, u64> =
            r.timeline.iter().filter_map(|e| e.state_key.clone().map(|k| ((e.kind.clone(), k), e.stream()))).collect();
        r.state = start_state(before, during, &timeline_last);
    }

    // History visibility: a currently joined user sees events from before their membership
    // when the visibility in effect at each of them is `shared` or `world_readable`. The
    // full per-event check (two queries for the room) runs only when that is not known.
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let open_vis = |json: &str| {
        let c = content_of(json);
        matches!(
            HistoryVisibility::parse(c.get("history_visibility").and_then(Value::as_str)),
            HistoryVisibility::Shared | HistoryVisibility::WorldReadable
        )
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
        r.state.retain(|e| f.room.state.matches(&e.kind, &e.sender, &content_of(&e.json)));
    }

    // Lazy-loaded members: only the member events of the timeline's senders (and the user).
    if f.lazy_load_members() {
        let mut missing = Vec::new();
        let mut found = Vec::new();
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
                    // The snapshot read the window's senders as of just before the window:
                    // that is this read when the timeline is the whole window.
                    if !p.state_after && lazy_at.get(room_id).is_some_and(|first| first.saturating_sub(1) == at) {
                        found.extend(lazy_carried.remove(&(room_id.clone(), s)));
                    } else {
                        missing.push((room_id.clone(), s, at));
                    }
                }
            }
        }
        found.extend(sstore::members_at(&ctx.db, &missing).await?);
        for row in found {
            if let Some(r) = rooms.get_mut(&row.room_id) {
                if !r.timeline.iter().any(|e| e.event_id == row.event_id) || p.state_after {
                    r.state.push(row);
                }
            }
        }
    }

    Ok(Plan { rooms, invites, knocks, now_rooms: now.rooms, unread })
}

impl Plan {
    /// Ephemeral events (already limited to joined rooms the filter allows): a room without
    /// new events still comes for them.
    pub fn add_ephemeral(&mut self, ephemeral: BTreeMap<String, Vec<EphemeralEvent>>) {
        let now_rooms = self.now_rooms;
        for (room_id, evs) in ephemeral {
            self.rooms
                .entry(room_id)
                .or_insert_with(|| RoomOut { membership: "join".into(), prev_batch: now_rooms, ..Default::default() })
                .ephemeral = evs;
        }
    }

    /// Per-room account data: for joined rooms the filter allows, and for other rooms only
    /// when they come anyway (a leave since the token).
    pub fn add_account_data(&mut self, room_ad: HashMap<String, Vec<AccountDataEvent>>, memberships: &[MembershipRow], p: &Params) {
        let now_rooms = self.now_rooms;
        for (room_id, evs) in room_ad {
            let Some(m) = memberships.iter().find(|m| m.room_id == room_id) else { continue };
            if m.membership != "join" && !self.rooms.contains_key(&room_id) {
                continue;
            }
            if !p.filter.room.room_allowed(&room_id) {
                continue;
            }
            self.rooms
                .entry(room_id)
                .or_insert_with(|| RoomOut { membership: m.membership.clone(), prev_batch: now_rooms, ..Default::default() })
                .account_data = evs;
        }
    }
}

/// The `rooms` section: unread counts (one query for all rooms), summaries (one query, only
/// when some member changed or a room is new to the client), stripped state of invites and
/// knocks (one query), and every event serialised once (redactions in one query).
pub async fn finish(ctx: &Ctx, me: &Authed, p: &Params, plan: Plan) -> Result<Rooms> {
    let user = me.user_id.as_str();
    let f = &p.filter;
    let Plan { rooms, invites, knocks, unread, .. } = plan;

    // Unread counts (push actions after the user's read receipts, one query for all rooms),
    // the summaries and the events' serialisation (its redactions query) are independent:
    // their reads are in flight at once.
    let any_joined = rooms.values().any(|r| r.membership == "join");
    let need_summary =
        rooms.values().any(|r| r.membership == "join" && (r.full || r.timeline.iter().chain(r.state.iter()).any(|e| e.kind == "m.room.member")));
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let all_rows: Vec<EventRow> = rooms.values().flat_map(|r| r.timeline.iter().chain(r.state.iter()).cloned()).collect();
    let unread_rows = async {
        match (unread, any_joined) {
            (Some(rows), _) => Ok(rows),
            (None, true) => sstore::unread_counts(&ctx.db, user).await,
            (None, false) => Ok(Vec::new()),
        }
    };
    let summary_rows = async {
        match need_summary {
            true => sstore::summaries(&ctx.db, user).await.map(Some),
            false => Ok(None),
        }
    };
    // Serialise every event once (redactions in one query).
    let (unread_rows, summary_rows, clients) = futures_util::try_join!(unread_rows, summary_rows, to_client(ctx, &reader, &all_rows))?;
    let mut unread: HashMap<String, Vec<(String, u64, u64)>> = HashMap::new();
    for (room_id, thread, n, h) in unread_rows {
        unread.entry(room_id).or_default().push((thread, n, h));
    }
    let mut summaries: HashMap<String, RoomSummary> = match &summary_rows {
        Some(rows) => room_summaries(user, rows.iter().map(|s| (s.room_id.as_str(), s.user_id.as_str(), s.membership.as_str(), s.n as u64))),
        None => HashMap::new(),
    };
    let shape = |v: Value| match &f.event_fields {
        Some(fields) => apply_event_fields(&v, fields),
        None => v,
    };
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for (row, v) in all_rows.iter().zip(clients) {
        by_id.insert(row.event_id.clone(), shape(v));
    }

    let mut out = Rooms::default();
    for (room_id, r) in rooms {
        let events = |rows: &[EventRow]| rows.iter().filter_map(|e| by_id.get(&e.event_id).cloned()).collect::<Vec<_>>();
        let mut state_rows = r.state.clone();
        state_rows.sort_by_key(|e| e.stream());
        let update = RoomUpdate {
            timeline: Timeline { events: events(&r.timeline), limited: r.limited, prev_batch: format!("s{}", r.prev_batch) },
            account_data: r.account_data.into(),
            state: StateSection::new(events(&state_rows), p.state_after),
        };
        if r.membership == "join" {
            let counts = unread.get(&room_id).cloned().unwrap_or_default();
            let (total, threads) = crate::core::push::unread_json(&counts, f.room.timeline.unread_thread_notifications);
            let summary = summaries.remove(&room_id).unwrap_or_default();
            out.join.insert(
                room_id,
                JoinedRoom {
                    room: update,
                    ephemeral: r.ephemeral.into(),
                    unread_notifications: total,
                    unread_thread_notifications: threads,
                    summary,
                },
            );
        } else {
            out.leave.insert(room_id, update);
        }
    }

    // Invites and knocks: stripped state.
    if !invites.is_empty() || !knocks.is_empty() {
        let mut stripped = stripped_states(ctx, user, &invites).await?;
        for room_id in invites {
            let invite_state = stripped.remove(&room_id).unwrap_or_default().into();
            out.invite.insert(room_id, InvitedRoom { invite_state });
        }
        for room_id in knocks {
            let knock_state = stripped.remove(&room_id).unwrap_or_default().into();
            out.knock.insert(room_id, KnockedRoom { knock_state });
        }
    }
    Ok(out)
}

/// The stripped state of every room the user is invited to or knocking on (one query), by
/// room; for the `remote` invites to rooms not known here, the state the inviter sent.
pub async fn stripped_states(ctx: &Ctx, user: &str, remote: &[String]) -> Result<HashMap<String, Vec<StrippedStateEvent>>> {
    let stripped = sstore::stripped_state(&ctx.db, user).await?;
    let mut out: HashMap<String, Vec<StrippedStateEvent>> = HashMap::new();
    for e in &stripped {
        let Ok(j) = serde_json::from_str::<Value>(&e.json) else { continue };
        // The user's own membership event in full (clients read its event ID and time).
        let own = e.kind == "m.room.member" && e.state_key.as_deref() == Some(user);
        out.entry(e.room_id.clone()).or_default().push(StrippedStateEvent {
            kind: e.kind.clone(),
            state_key: e.state_key.clone(),
            sender: e.sender.clone(),
            content: j.get("content").cloned().unwrap_or_default(),
            event_id: own.then(|| e.event_id.clone()),
            origin_server_ts: own.then_some(e.origin_server_ts as u64),
            room_id: own.then(|| e.room_id.clone()),
        });
    }
    // Invites from other servers to rooms not known here: the state the inviter sent.
    if remote.iter().any(|r| !out.contains_key(r)) {
        for (room_id, events) in crate::service::federation::invites::pending_invite_state(ctx, user).await? {
            out.entry(room_id).or_insert(events);
        }
    }
    Ok(out)
}
