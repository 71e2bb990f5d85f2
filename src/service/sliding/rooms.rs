//! The rooms of a sliding sync response: given each room's [`RoomPlan`], the reads for all of
//! them at once (timelines per timeline limit, state in one batch, lazy members, member
//! summaries, unread counts, stripped state; events serialised in one pass) — a bounded
//! number of D1 round trips that grows with the window, never with the account.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::future::{try_join5, try_join_all};
use serde_json::Value;

use crate::api::auth::Authed;
use crate::core::sliding::conn::RoomPlan;
use crate::core::sliding::list::RoomEntry;
use crate::core::sliding::request::RoomConfig;
use crate::core::sliding::response::{state_stub, Hero, RoomResult};
use crate::core::sliding::state::{RequiredState, MEMBER};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::events::{filter_visible, to_client, Reader};
use crate::store::rooms::EventRow;
use crate::store::sync::{self as sstore, DeletedState, Range, StateRange};

/// One room to build: its plan, its list entry, its combined config and the config it was
/// last sent with (for expansion).
pub struct Todo<'a> {
    pub plan: RoomPlan,
    pub entry: &'a RoomEntry,
    pub config: RoomConfig,
    pub sent_config: Option<RequiredState>,
}

/// A built room: the result and whether its timeline had a gap.
pub struct Built {
    pub result: RoomResult,
    pub limited: bool,
}

/// What was read for a room.
#[derive(Default)]
struct Read {
    timeline: Vec<EventRow>,
    limited: bool,
    /// The state read (full or delta), with the position each entry took effect at.
    state: Vec<(EventRow, u64)>,
    lazy_members: Vec<EventRow>,
}

fn content(json: &str) -> Value {
    serde_json::from_str::<Value>(json).ok().and_then(|j| j.get("content").cloned()).unwrap_or(Value::Null)
}

/// The timelines: per distinct limit, the last `limit` events of each room's range (one
/// more, to learn `limited`), one batch per limit. Room → (events, limited).
async fn timelines(ctx: &Ctx, todo: &BTreeMap<String, Todo<'_>>) -> Result<HashMap<String, (Vec<EventRow>, bool)>> {
    let mut by_limit: BTreeMap<u32, Vec<Range>> = BTreeMap::new();
    for (room_id, t) in todo {
        if let Some((after, up_to)) = t.plan.timeline {
            by_limit.entry(t.plan.limit).or_default().push(Range { room_id: room_id.clone(), after, up_to });
        }
    }
    let reads = by_limit.iter().map(|(limit, ranges)| sstore::timeline_windows(&ctx.db, ranges, limit + 1));
    let mut out = HashMap::new();
    for ((limit, ranges), rows) in by_limit.iter().zip(try_join_all(reads).await?) {
        let mut got: HashMap<String, Vec<EventRow>> = HashMap::new();
        for row in rows {
            got.entry(row.room_id.clone()).or_default().push(row);
        }
        for r in ranges {
            let mut rows = got.remove(&r.room_id).unwrap_or_default();
            let limited = rows.len() as u32 > *limit;
            if limited {
                rows.drain(..rows.len() - *limit as usize);
            }
            out.insert(r.room_id.clone(), (rows, limited));
        }
    }
    Ok(out)
}

/// History visibility: only where the timeline reaches before the user's current
/// membership, or the user is no longer joined (two queries for such a room).
async fn visibility(ctx: &Ctx, me: &Authed, todo: &BTreeMap<String, Todo<'_>>, reads: &mut HashMap<String, Read>) -> Result<()> {
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    for (room_id, t) in todo {
        let Some(read) = reads.get_mut(room_id) else { continue };
        let before_membership = read.timeline.iter().any(|e| e.stream() < t.entry.membership_stream);
        if !read.timeline.is_empty() && (t.entry.membership != "join" || before_membership) {
            let all = std::mem::take(&mut read.timeline);
            read.timeline = filter_visible(ctx, &reader, room_id, all).await?;
        }
    }
    Ok(())
}

/// The state: the full state at the plan's position, or the changes since what was sent,
/// all rooms in one batch. Rows: (event, position it took effect at).
async fn states(ctx: &Ctx, todo: &BTreeMap<String, Todo<'_>>) -> Result<Vec<(EventRow, u64)>> {
    let mut ranges = Vec::new();
    for (room_id, t) in todo {
        let p = &t.plan;
        if p.stripped || (!p.full_state && p.timeline.is_none()) {
            continue;
        }
        let after = if p.full_state { 0 } else { p.state_after };
        ranges.push(StateRange { room_id: room_id.clone(), after, up_to: p.up_to, resets_up_to: p.up_to });
    }
    Ok(sstore::state_at(&ctx.db, &ranges).await?.into_iter().filter(|s| !s.after_up_to && s.row.state_key.is_some()).map(|s| (s.row, s.at)).collect())
}

/// Lazy members: the member events of the timeline's senders and of its member events'
/// targets (MSC4186, "Lazy loaded memberships"), from the state read or one batch more.
async fn lazy_members(ctx: &Ctx, todo: &BTreeMap<String, Todo<'_>>, reads: &mut HashMap<String, Read>) -> Result<()> {
    let mut missing = Vec::new();
    for (room_id, t) in todo {
        if !t.config.required_state.lazy {
            continue;
        }
        let Some(read) = reads.get_mut(room_id) else { continue };
        let targets = read.timeline.iter().filter(|e| e.kind == MEMBER).filter_map(|e| e.state_key.as_deref());
        let senders: HashSet<&str> = read.timeline.iter().map(|e| e.sender.as_str()).chain(targets).collect();
        for s in senders {
            match read.state.iter().find(|(e, _)| e.kind == MEMBER && e.state_key.as_deref() == Some(s)) {
                Some((e, _)) => read.lazy_members.push(e.clone()),
                None => missing.push((room_id.clone(), s.to_owned(), t.plan.up_to)),
            }
        }
    }
    for row in sstore::members_at(&ctx.db, &missing).await? {
        if let Some(read) = reads.get_mut(&row.room_id) {
            read.lazy_members.push(row);
        }
    }
    Ok(())
}

/// The `required_state` a room sends: on its first send every matching entry; else the
/// changes since it was sent that match, plus (the config widened) what matches now but
/// did not before.
fn required_state<'a>(t: &Todo<'_>, read: &'a Read) -> Vec<&'a EventRow> {
    let rs = &t.config.required_state;
    let p = &t.plan;
    let mut out: Vec<&EventRow> = Vec::new();
    for (e, at) in &read.state {
        let key = e.state_key.as_deref().unwrap_or_default();
        if !rs.matches(&e.kind, key) {
            continue;
        }
        let changed = p.initial || !p.full_state || *at > p.state_after;
        let newly_covered = p.full_state && t.sent_config.as_ref().is_some_and(|old| !old.matches(&e.kind, key));
        if changed || newly_covered {
            out.push(e);
        }
    }
    for e in &read.lazy_members {
        if !out.iter().any(|o| o.event_id == e.event_id) {
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.stream());
    out
}

/// Name, avatar and heroes from the state read and the member summaries.
fn names(result: &mut RoomResult, read: Option<&Read>, initial: bool, heroes: Vec<Hero>) {
    let state_of = |kind: &str| read.and_then(|r| r.state.iter().find(|(e, _)| e.kind == kind && e.state_key.as_deref() == Some("")));
    let name = state_of("m.room.name").and_then(|(e, _)| content(&e.json).get("name").and_then(Value::as_str).map(str::to_owned));
    result.avatar = state_of("m.room.avatar").and_then(|(e, _)| content(&e.json).get("url").and_then(Value::as_str).map(str::to_owned));
    if initial && name.as_deref().is_none_or(str::is_empty) && !heroes.is_empty() {
        result.heroes = Some(heroes);
    }
    result.name = name.filter(|n| !n.is_empty());
}

/// The keys deleted since a known room was last sent (state resets), for the rooms whose
/// request asked in the newer `required_state` form, which is the one with state stubs.
async fn deletions(ctx: &Ctx, todo: &BTreeMap<String, Todo<'_>>) -> Result<HashMap<String, Vec<DeletedState>>> {
    let ranges: Vec<(String, u64, u64)> = todo
        .iter()
        .filter(|(_, t)| t.config.required_state.stubs && !t.plan.initial && !t.plan.stripped && t.plan.state_after < t.plan.up_to)
        .map(|(r, t)| (r.clone(), t.plan.state_after, t.plan.up_to))
        .collect();
    let mut out: HashMap<String, Vec<DeletedState>> = HashMap::new();
    for d in sstore::deleted_state(&ctx.db, &ranges).await? {
        out.entry(d.room_id.clone()).or_default().push(d);
    }
    Ok(out)
}

/// The stubs a known room sends (MSC4186 `StateStub`): its deleted keys that the config it
/// was sent with may have given the client.
fn stubs(t: &Todo<'_>, deleted: Option<&Vec<DeletedState>>) -> Vec<Value> {
    let sent = t.sent_config.as_ref().unwrap_or(&t.config.required_state);
    deleted.into_iter().flatten().filter(|d| sent.may_have_sent(&d.kind, &d.state_key)).map(|d| state_stub(&d.kind, &d.state_key)).collect()
}

/// Member counts and up to five heroes (joined first, then invited; not the user).
async fn summaries(ctx: &Ctx, me: &str, rooms: &[String]) -> Result<HashMap<String, (u64, u64, Vec<Hero>)>> {
    let mut out: HashMap<String, (u64, u64, Vec<Hero>)> = HashMap::new();
    let mut rows = sstore::member_summaries(&ctx.db, rooms).await?;
    rows.sort_by_key(|r| r.membership != "join");
    for r in rows {
        let entry = out.entry(r.room_id.clone()).or_default();
        match r.membership.as_str() {
            "join" => entry.0 = r.n as u64,
            _ => entry.1 = r.n as u64,
        }
        if r.user_id != me && entry.2.len() < 5 {
            let c = r.json.as_deref().map(content).unwrap_or(Value::Null);
            entry.2.push(Hero {
                user_id: r.user_id.clone(),
                displayname: c.get("displayname").and_then(Value::as_str).map(str::to_owned),
                avatar_url: c.get("avatar_url").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }
    Ok(out)
}

/// Builds every planned room. A room whose plan only asked to look for newly covered state
/// and found none is left out.
pub async fn build(ctx: &Ctx, me: &Authed, todo: &BTreeMap<String, Todo<'_>>) -> Result<BTreeMap<String, Built>> {
    let user = me.user_id.as_str();
    // Everything that does not depend on the timelines, read alongside them.
    let counted: Vec<String> = todo.iter().filter(|(_, t)| !t.plan.stripped).map(|(r, _)| r.clone()).collect();
    let invites: Vec<String> = todo.iter().filter(|(_, t)| t.plan.stripped).map(|(r, _)| r.clone()).collect();
    let joined: Vec<String> = todo.iter().filter(|(_, t)| t.entry.membership == "join").map(|(r, _)| r.clone()).collect();
    let reads = try_join5(
        timelines(ctx, todo),
        states(ctx, todo),
        async {
            if counted.is_empty() {
                Ok(HashMap::new())
            } else {
                summaries(ctx, user, &counted).await
            }
        },
        async {
            // The window's joined rooms only (empty: no read).
            sstore::unread_counts_in(&ctx.db, user, &joined).await
        },
        async {
            if invites.is_empty() {
                Ok(HashMap::new())
            } else {
                crate::service::sync::rooms::stripped_states(ctx, user, &invites).await
            }
        },
    );
    let ((timelines, states, mut members, unread_rows, mut stripped), deleted) = futures_util::future::try_join(reads, deletions(ctx, todo)).await?;
    let mut reads: HashMap<String, Read> = HashMap::new();
    for (room_id, (timeline, limited)) in timelines {
        reads.insert(room_id, Read { timeline, limited, ..Default::default() });
    }
    for (row, at) in states {
        reads.entry(row.room_id.clone()).or_default().state.push((row, at));
    }
    let mut unread: HashMap<String, (u64, u64)> = HashMap::new();
    for (room_id, _thread, n, h) in unread_rows {
        let u = unread.entry(room_id).or_default();
        u.0 += n;
        u.1 += h;
    }
    visibility(ctx, me, todo, &mut reads).await?;
    lazy_members(ctx, todo, &mut reads).await?;

    // Which rooms go out, and their required_state.
    let mut chosen: BTreeMap<&str, (Vec<&EventRow>, Vec<Value>)> = BTreeMap::new();
    for (room_id, t) in todo {
        let read = reads.get(room_id);
        let rs = read.map(|r| required_state(t, r)).unwrap_or_default();
        let stubs = stubs(t, deleted.get(room_id));
        let has_timeline = t.plan.timeline.is_some();
        if t.plan.initial || has_timeline || !rs.is_empty() || !stubs.is_empty() {
            chosen.insert(room_id.as_str(), (rs, stubs));
        }
    }

    // Every event serialised once.
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let mut rows: Vec<EventRow> = Vec::new();
    for (room_id, (rs, _)) in &chosen {
        rows.extend(reads.get(*room_id).map(|r| r.timeline.clone()).unwrap_or_default());
        rows.extend(rs.iter().map(|e| (*e).clone()));
    }
    let clients = to_client(ctx, &reader, &rows).await?;
    let by_id: HashMap<&str, Value> = rows.iter().map(|r| r.event_id.as_str()).zip(clients).collect();
    let events = |rows: &mut dyn Iterator<Item = &EventRow>| rows.filter_map(|e| by_id.get(e.event_id.as_str()).cloned()).collect::<Vec<_>>();

    let mut out = BTreeMap::new();
    for (room_id, (rs, stubs)) in chosen {
        let Some(t) = todo.get(room_id) else { continue };
        let read = reads.get(room_id);
        let p = &t.plan;
        let mut result = RoomResult { bump_stamp: Some(t.entry.bump_stamp()), ..Default::default() };
        if p.initial {
            result.initial = Some(true);
            result.is_dm = Some(t.entry.is_dm);
        }
        if p.stripped {
            let events = stripped.remove(room_id).unwrap_or_default();
            result.name = events
                .iter()
                .find(|e| e.kind == "m.room.name")
                .and_then(|e| e.content.get("name").and_then(Value::as_str))
                .filter(|n| !n.is_empty())
                .map(str::to_owned);
            let state: Vec<Value> = events.iter().filter_map(|e| serde_json::to_value(e).ok()).collect();
            result.invite_state = Some(state.clone());
            result.stripped_state = Some(state);
            out.insert(room_id.to_owned(), Built { result, limited: false });
            continue;
        }
        let (joined, invited, heroes) = members.remove(room_id).unwrap_or_default();
        names(&mut result, read, p.initial, heroes);
        result.joined_count = Some(joined);
        result.invited_count = Some(invited);
        if t.entry.membership == "join" {
            let (n, h) = unread.get(room_id).copied().unwrap_or_default();
            result.notification_count = Some(n);
            result.highlight_count = Some(h);
        }
        let mut required_state = events(&mut rs.into_iter());
        required_state.extend(stubs);
        result.required_state = Some(required_state);
        let mut limited = false;
        if p.timeline.is_some() {
            let timeline = read.map(|r| r.timeline.as_slice()).unwrap_or_default();
            limited = read.is_some_and(|r| r.limited);
            result.num_live = Some(timeline.iter().filter(|e| e.stream() > p.live_after).count() as u64);
            result.prev_batch = Some(format!("s{}", timeline.first().map(|e| e.stream().saturating_sub(1)).unwrap_or(p.up_to)));
            result.limited = Some(limited);
            result.timeline = Some(events(&mut timeline.iter()));
            if p.expanded {
                result.expanded_timeline = Some(true);
            }
        }
        out.insert(room_id.to_owned(), Built { result, limited });
    }
    Ok(out)
}
