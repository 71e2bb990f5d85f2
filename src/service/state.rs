//! The state of a room at a point: after or before an event, or at a stream position. Each
//! event stores the state groups before and after it (`events.state_before/state_after`,
//! computed from its own `prev_events`), so the state at an event holds in a DAG too; the
//! state at a stream position resolves the forward extremities of that moment.

use std::collections::BTreeMap;

use ruma::{EventId, OwnedEventId};

use crate::core::room::pdu::Pdu;
use crate::core::room::state::{extremities, resolve, StateMap};
use crate::error::Result;
use crate::service::rooms::room_rules;
use crate::store::db::Db;
use crate::store::rooms::{self, EventRow};

/// How many of the latest events at a position are searched for forward extremities. A
/// room whose branches last met further back than this is seen from its newer branches.
const EXTREMITY_WINDOW: u32 = 20;

async fn group(db: &Db, g: Option<&str>) -> Result<StateMap> {
    match g {
        Some(g) => Ok(rooms::load_state_group(db, g).await?.0),
        None => Ok(StateMap::new()),
    }
}

/// The state after the event (including it, if it is a state event).
pub async fn after_event(db: &Db, row: &EventRow) -> Result<StateMap> {
    group(db, row.state_after.as_deref()).await
}

/// The state of the room at stream position `pos` (after every event of the room up to
/// it): the state after its forward extremities then, resolved if they differ. Empty
/// before the room's first event.
pub async fn at_stream(db: &Db, room_id: &str, pos: u64) -> Result<StateMap> {
    let window = rooms::last_events_at(db, room_id, pos, EXTREMITY_WINDOW).await?;
    let pdus: Vec<Pdu> = window.iter().map(EventRow::pdu).collect::<Result<_>>()?;
    let tips = extremities(pdus.iter().map(|p| (&*p.event_id, p.prev_events.as_slice())));
    let mut groups: Vec<&str> =
        window.iter().filter(|r| tips.iter().any(|t| t.as_str() == r.event_id)).filter_map(|r| r.state_after.as_deref()).collect();
    groups.sort_unstable();
    groups.dedup();
    match groups.as_slice() {
        [] => Ok(StateMap::new()),
        [one] => group(db, Some(one)).await,
        many => {
            let mut maps = Vec::with_capacity(many.len());
            for g in many {
                maps.push(group(db, Some(g)).await?);
            }
            let rules = room_rules(db, room_id).await?;
            let events = with_auth_chains(db, maps.iter().flat_map(|m| m.values().cloned()).collect()).await?;
            resolve(&rules, &maps, |id: &EventId| events.get(id).cloned())
        }
    }
}

/// The events and every event in their auth chains, for state resolution.
async fn with_auth_chains(db: &Db, start: Vec<OwnedEventId>) -> Result<BTreeMap<OwnedEventId, Pdu>> {
    let mut events: BTreeMap<OwnedEventId, Pdu> = BTreeMap::new();
    let mut todo = start;
    while !todo.is_empty() {
        let found = rooms::get_pdus(db, &todo).await?;
        todo = found.values().flat_map(|p| p.auth_events.iter().cloned()).filter(|a| !events.contains_key(a) && !found.contains_key(a)).collect();
        let before = events.len();
        events.extend(found);
        if events.len() == before {
            break; // missing events: resolve with what there is
        }
    }
    Ok(events)
}
