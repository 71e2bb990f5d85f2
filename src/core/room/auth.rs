//! Authorising events with ruma's implementation of the auth rules (spec: server-server-api,
//! "Authorization rules"; rooms/vN). A local event is checked against its auth events *and*
//! the current state; a refused event becomes `403 M_FORBIDDEN` with ruma's reason.

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::{auth_types_for_event, check_state_dependent_auth_rules, check_state_independent_auth_rules};
use ruma::{EventId, OwnedEventId, RoomId};
use serde_json::value::to_raw_value;

use super::pdu::{build_pdu, NewEvent, Pdu};
use super::state::StateMap;
use crate::core::signing::ServerSigningKey;
use crate::err;
use crate::error::{Error, Result};

/// Which state events authorise `new` (spec: "Auth events selection").
pub fn auth_types(rules: &RoomVersionRules, new: &NewEvent) -> Result<Vec<(String, String)>> {
    let content = to_raw_value(&new.content)?;
    let types =
        auth_types_for_event(&TimelineEventType::from(new.kind.as_str()), &new.sender, new.state_key.as_deref(), &content, &rules.authorization)
            .map_err(|e| err!(BadJson, "Invalid event content: {e}"))?;
    Ok(types.into_iter().map(|(t, k)| (t.to_string(), k)).collect())
}

/// Checks an event against its own auth events and against `state` (the state it will be
/// applied to). `fetch` finds events by ID (auth events and state).
pub fn check(rules: &RoomVersionRules, pdu: &Pdu, state: &StateMap, fetch: &impl Fn(&EventId) -> Option<Pdu>) -> Result<()> {
    let forbidden = |reason: String| err!(Forbidden, "{reason}");
    check_state_independent_auth_rules(&rules.authorization, pdu, fetch).map_err(forbidden)?;
    // Against the auth events as state…
    let auth_state: StateMap = pdu
        .auth_events
        .iter()
        .filter_map(|id| fetch(id))
        .filter_map(|p| p.state_key.clone().map(|k| ((p.kind.to_string(), k), p.event_id.clone())))
        .collect();
    let mut auth_state = auth_state;
    // Room v12 create events are not listed in auth_events; the rules still read them.
    if rules.authorization.room_create_event_id_as_room_id {
        if let Some(c) = state.get(&("m.room.create".to_owned(), String::new())) {
            auth_state.insert(("m.room.create".to_owned(), String::new()), c.clone());
        }
    }
    let lookup = |map: &StateMap| {
        let map = map.clone();
        move |t: &StateEventType, k: &str| map.get(&(t.to_string(), k.to_owned())).and_then(|id| fetch(id))
    };
    check_state_dependent_auth_rules(&rules.authorization, pdu, lookup(&auth_state)).map_err(forbidden)?;
    // …and against the state it lands on.
    check_state_dependent_auth_rules(&rules.authorization, pdu, lookup(state)).map_err(forbidden)?;
    Ok(())
}

/// The room as a new local event sees it.
pub struct RoomHead<'a> {
    pub rules: &'a RoomVersionRules,
    pub room_id: Option<&'a RoomId>,
    /// Current state of the room.
    pub state: &'a StateMap,
    /// Forward extremities: the new event's `prev_events`.
    pub extremities: &'a [OwnedEventId],
    /// Greatest depth among the extremities.
    pub max_depth: u64,
}

/// Builds, signs and authorises a new local event on top of `head`.
pub fn prepare_event(
    head: &RoomHead<'_>,
    new: &NewEvent,
    origin_server_ts: u64,
    server_name: &str,
    key: &ServerSigningKey,
    fetch: &impl Fn(&EventId) -> Option<Pdu>,
) -> Result<Pdu> {
    if new.kind.len() > 255 || new.state_key.as_ref().is_some_and(|k| k.len() > 255) {
        return Err(err!(BadJson, "Event type and state key are limited to 255 bytes"));
    }
    let is_create = new.kind == "m.room.create";
    if !is_create && head.room_id.is_none() {
        return Err(Error::internal("event without a room"));
    }
    let auth_events: Vec<OwnedEventId> =
        if is_create { vec![] } else { auth_types(head.rules, new)?.into_iter().filter_map(|k| head.state.get(&k).cloned()).collect() };
    // Keep prev_events bounded (the spec caps them at 20).
    let prev: Vec<OwnedEventId> = head.extremities.iter().take(20).cloned().collect();
    let depth = if is_create { 1 } else { head.max_depth + 1 };
    let room_for_pdu = if is_create && head.rules.authorization.room_create_event_id_as_room_id { None } else { head.room_id };
    let pdu = build_pdu(head.rules, room_for_pdu, new, &prev, &auth_events, depth, origin_server_ts, server_name, key)?;
    let fetch_with_self = |id: &EventId| if id == pdu.event_id { Some(pdu.clone()) } else { fetch(id) };
    check(head.rules, &pdu, head.state, &fetch_with_self)?;
    Ok(pdu)
}
