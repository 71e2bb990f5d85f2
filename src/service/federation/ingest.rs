//! Receiving PDUs from other servers (spec: server-server-api, "Checks performed on receipt
//! of a PDU", "Soft failure", "Retrieving events"). Runs inside the room's `Room` Durable
//! Object, the room's single writer, so the extremities and the current state it moves are
//! never raced by a local send.
//!
//! Each PDU goes through the spec's checks in order: format and room version (the caller
//! parsed it with `core::federation::pdu::incoming`), signatures (the sender's server),
//! content hash (redacted and kept on mismatch), auth rules against its own `auth_events`,
//! against the state before it (state resolution v2 over its `prev_events`' states), and
//! soft failure against the current state. Rejected events are recorded and never served;
//! soft-failed events stay out of the timeline and the extremities.
//!
//! Missing auth events are fetched with `/event`, a gap before the event with
//! `/get_missing_events` (bounded); if the gap remains, the state before the event comes from
//! `/state_ids` and `/event`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::Verified;
use ruma::{EventId, OwnedEventId, OwnedRoomId, RoomId, ServerName};
use serde_json::{json, Value};

use crate::core::federation::pdu::incoming;
use crate::core::federation::uri_component;
use crate::core::room::auth::check;
use crate::core::room::pdu::Pdu;
use crate::core::room::power::PowerLevels;
use crate::core::room::state::{resolve, state_after as apply_event, StateEntry, StateMap};
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::http::Method;
use crate::service::federation::{client, keys};
use crate::service::notify::{self, PushContext};
use crate::store::fanout;
use crate::store::{graph, rooms};

/// How many events one request may fetch from other servers (auth events, gaps, state).
const FETCH_BUDGET: usize = 200;
/// `/get_missing_events` limit per gap.
const MISSING_LIMIT: u64 = 20;
/// How many events of history a join fetches before storing the join.
const JOIN_BACKFILL: u32 = 50;
/// A full state snapshot every this many links (as `timeline` does).
const SNAPSHOT_EVERY: u32 = 32;

/// Events and state groups kept per isolate, at most this many.
const CACHED_EVENTS: usize = 2048;
const CACHED_GROUPS: usize = 16;

thread_local! {
    /// Events read from D1 on this isolate, by ID: an event ID names one event, so an entry
    /// never goes stale (a redaction rewrites the stored JSON, but keeps what the checks
    /// here read: the auth rules' keys and `membership`). The auth events of a room's next
    /// PDU are mostly the same few (create, power levels, the sender's member event).
    static EVENTS: RefCell<HashMap<OwnedEventId, Pdu>> = RefCell::new(HashMap::new());
    /// State group maps read from D1 on this isolate, by group ID: a group is written once
    /// (`INSERT OR IGNORE`) and never changed. The next PDU of a room usually comes after
    /// the same group (all messages since the last state event share it).
    static GROUPS: RefCell<HashMap<String, StateMap>> = RefCell::new(HashMap::new());
    /// Room versions by room, as read from D1 on this isolate (a room's version never
    /// changes): an ingest then starts without a read and reads the room's row together with
    /// its first PDU's.
    static VERSIONS: RefCell<HashMap<OwnedRoomId, String>> = RefCell::new(HashMap::new());
}

/// [`rooms::get_pdus`] through the isolate's cache of events.
async fn get_pdus(db: &crate::store::db::Db, ids: &[OwnedEventId]) -> Result<BTreeMap<OwnedEventId, Pdu>> {
    let mut out = BTreeMap::new();
    let mut todo = Vec::new();
    EVENTS.with(|c| {
        let c = c.borrow();
        for id in ids {
            match c.get(id) {
                Some(p) => {
                    out.insert(id.clone(), p.clone());
                }
                None => todo.push(id.clone()),
            }
        }
    });
    if !todo.is_empty() {
        let found = rooms::get_pdus(db, &todo).await?;
        EVENTS.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() + found.len() > CACHED_EVENTS {
                c.clear();
            }
            c.extend(found.iter().map(|(k, v)| (k.clone(), v.clone())));
        });
        out.extend(found);
    }
    Ok(out)
}

/// [`rooms::load_state_group`]'s map through the isolate's cache of groups.
async fn load_state_group(db: &crate::store::db::Db, group: &str) -> Result<StateMap> {
    if let Some(map) = GROUPS.with(|c| c.borrow().get(group).cloned()) {
        return Ok(map);
    }
    let (map, _) = rooms::load_state_group(db, group).await?;
    GROUPS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHED_GROUPS {
            c.clear();
        }
        c.insert(group.to_owned(), map.clone());
    });
    Ok(map)
}

/// What became of one PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In the timeline (or already known).
    Accepted,
    /// Kept in the graph, hidden from clients and extremities.
    SoftFailed,
    Rejected(String),
    /// Could not be checked now (the origin or a key could not be reached, the request's
    /// budget ran out): the room's object keeps it and tries again later.
    Deferred(String),
}

/// The state of one ingest: the room, the events loaded so far, what was written.
pub struct Ingest<'a> {
    ctx: &'a Ctx,
    room_id: OwnedRoomId,
    rules: RoomVersionRules,
    /// The server the PDUs came from: asked for whatever is missing.
    origin: &'a ServerName,
    events: BTreeMap<OwnedEventId, Pdu>,
    budget: usize,
    /// Events newly added to the timeline, for the fan-out ([`fan_out`]).
    pub accepted: Accepted,
    /// The room's row as read when the ingest started or with a PDU's first reads, until an
    /// event of ours moves its head (only the room's writer does, and the ingest runs under
    /// its lock): the soft-failure check reads it from here instead of D1.
    row: Option<rooms::RoomRow>,
    /// Set before a write that may change the room's current `m.room.server_acl` (moves it,
    /// or redacts an event): the `Room` object's cached ACL is then dropped.
    pub acl_may_change: bool,
}

impl<'a> Ingest<'a> {
    /// Starts an ingest into a room we know.
    pub async fn new(ctx: &'a Ctx, room_id: &RoomId, origin: &'a ServerName) -> Result<Ingest<'a>> {
        // A room ID without a server name is a v12 one, derived from its create event: that
        // event is read together with the room's row.
        let create = room_id.server_name().is_none().then(|| EventId::parse(format!("${}", room_id.as_str().trim_start_matches('!'))).ok()).flatten();
        let known_version = VERSIONS.with(|v| v.borrow().get(room_id).cloned());
        let (row, create) = futures_util::future::join(
            async {
                match known_version {
                    Some(_) => Ok(None),
                    None => rooms::get_room(&ctx.db, room_id.as_str()).await.map(Some),
                }
            },
            async {
                match &create {
                    Some(id) => get_pdus(&ctx.db, std::slice::from_ref(id)).await,
                    None => Ok(BTreeMap::new()),
                }
            },
        )
        .await;
        let (version, row) = match (known_version, row?) {
            (Some(v), _) => (v, None),
            (None, Some(Some(row))) => {
                VERSIONS.with(|v| {
                    let mut v = v.borrow_mut();
                    if v.len() >= CACHED_EVENTS {
                        v.clear();
                    }
                    v.insert(room_id.to_owned(), row.room_version.clone());
                });
                (row.room_version.clone(), Some(row))
            }
            (None, _) => return Err(err!(NotFound, "Unknown room")),
        };
        let (_, rules) = version_rules(&version)?;
        let mut ingest = Ingest {
            ctx,
            room_id: room_id.to_owned(),
            rules,
            origin,
            events: create?,
            budget: FETCH_BUDGET,
            accepted: Accepted::default(),
            row,
            acl_may_change: false,
        };
        // From room v12 the create event is not among `auth_events` (its ID is the room ID's).
        if let Some(create) = ingest.create_event_id() {
            ingest.load(&[create]).await?;
        }
        Ok(ingest)
    }

    /// Starts from the room's row as its writer (the `Room` object) knows it, unread:
    /// the row left by the previous ingest's writes ([`Self::take_row`]), valid while no
    /// other write moved the room's head.
    pub fn with_row(&mut self, row: Option<rooms::RoomRow>) {
        if self.row.is_none() {
            self.row = row;
        }
    }

    /// The room's row after this ingest's writes, when it is known (read, or as the last
    /// write left it); `None` once a write's outcome is unknown.
    pub fn take_row(&mut self) -> Option<rooms::RoomRow> {
        self.row.take()
    }

    /// The create event's ID where the room ID is derived from it (room v12).
    fn create_event_id(&self) -> Option<OwnedEventId> {
        if !self.rules.authorization.room_create_event_id_as_room_id {
            return None;
        }
        EventId::parse(format!("${}", self.room_id.as_str().trim_start_matches('!'))).ok()
    }

    /// The rules of the room's version.
    pub fn rules(&self) -> &RoomVersionRules {
        &self.rules
    }

    /// Runs the checks on a batch of PDUs of this room (oldest first), returning each one's
    /// outcome by event ID. A PDU that cannot even be parsed has no event ID and is skipped.
    pub async fn pdus(&mut self, values: &[Value]) -> Vec<(OwnedEventId, Outcome)> {
        let mut parsed: Vec<Pdu> = values.iter().filter_map(|v| incoming(&self.rules, v, Some(&self.room_id)).ok()).collect();
        parsed.sort_by_key(|p| p.depth);
        let mut out = Vec::new();
        for pdu in parsed {
            let id = pdu.event_id.clone();
            let outcome = match self.timeline_event(pdu, 0).await {
                Ok(o) => o,
                Err(e) => Outcome::Deferred(e.to_string()),
            };
            out.push((id, outcome));
        }
        out
    }

    /// Loads events (timeline or outlier) into memory, with their auth chains.
    async fn load(&mut self, ids: &[OwnedEventId]) -> Result<()> {
        let mut todo: Vec<OwnedEventId> = ids.iter().filter(|e| !self.events.contains_key(*e)).cloned().collect();
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        while !todo.is_empty() {
            todo.retain(|e| seen.insert(e.clone()));
            if todo.is_empty() {
                break;
            }
            let found = get_pdus(&self.ctx.db, &todo).await?;
            todo = found.values().flat_map(|p| p.auth_events.clone()).filter(|e| !self.events.contains_key(e) && !found.contains_key(e)).collect();
            self.events.extend(found);
        }
        Ok(())
    }

    /// Loads events (timeline or outlier) into memory, without their auth chains: what an
    /// auth check reads.
    async fn load_direct(&mut self, ids: &[OwnedEventId]) -> Result<()> {
        let todo: Vec<OwnedEventId> = ids.iter().filter(|e| !self.events.contains_key(*e)).cloned().collect();
        if !todo.is_empty() {
            let found = get_pdus(&self.ctx.db, &todo).await?;
            self.events.extend(found);
        }
        Ok(())
    }

    /// The events of `state` that the auth rules read for `pdu` (spec: "Auth events
    /// selection", plus the create, power-levels and join-rules events), loaded.
    async fn load_auth_state(&mut self, pdu: &Pdu, state: &StateMap) -> Result<()> {
        let new = crate::core::room::pdu::NewEvent {
            kind: pdu.kind.to_string(),
            state_key: pdu.state_key.clone(),
            content: pdu.content_value(),
            sender: pdu.sender.clone(),
            redacts: None,
        };
        let mut keys = crate::core::room::auth::auth_types(&self.rules, &new).unwrap_or_default();
        keys.extend([
            ("m.room.create".to_owned(), String::new()),
            ("m.room.power_levels".to_owned(), String::new()),
            ("m.room.join_rules".to_owned(), String::new()),
            ("m.room.member".to_owned(), pdu.sender.to_string()),
        ]);
        let ids: Vec<OwnedEventId> = keys.iter().filter_map(|k| state.get(k).cloned()).collect();
        self.load_direct(&ids).await
    }

    /// Asks the origin for one event (`GET /_matrix/federation/v1/event/{eventId}`).
    async fn fetch_event(&mut self, id: &EventId) -> Result<Pdu> {
        if self.budget == 0 {
            return Err(err!(Unknown, "Too many events to fetch for one request"));
        }
        self.budget -= 1;
        let path = format!("/_matrix/federation/v1/event/{}", uri_component(id.as_str()));
        let body = client::request(self.ctx, self.origin, Method::Get, &path, None).await?;
        let value = body.get("pdus").and_then(Value::as_array).and_then(|a| a.first()).ok_or_else(|| err!(NotFound, "Event not returned"))?;
        let pdu = incoming(&self.rules, value, Some(&self.room_id))?;
        if pdu.event_id != id {
            return Err(err!(Forbidden, "The server returned another event"));
        }
        Ok(pdu)
    }

    /// Signature and hash checks: the PDU as it may be used (redacted on a hash mismatch).
    async fn verified(&self, pdu: Pdu) -> Result<Pdu> {
        match keys::verify_event(self.ctx, &self.rules, &pdu.json).await.map_err(|e| err!(Forbidden, "Signature check failed: {e}"))? {
            Verified::All => Ok(pdu),
            Verified::Signatures => pdu.redacted(&self.rules),
        }
    }

    /// Makes sure the auth events of `pdu` are known and accepted, fetching what is missing
    /// as outliers (each checked against its own auth events).
    async fn ensure_auth_events(&mut self, pdu: &Pdu, depth: u32) -> Result<()> {
        self.load_direct(&pdu.auth_events).await?;
        let missing: Vec<OwnedEventId> = pdu.auth_events.iter().filter(|e| !self.events.contains_key(*e)).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = missing.iter().map(|e| e.as_str()).collect();
        if !graph::rejected(&self.ctx.db, &ids).await?.is_empty() {
            return Err(err!(Forbidden, "An auth event was rejected"));
        }
        for id in missing {
            let fetched = self.fetch_event(&id).await?;
            self.outlier(fetched, depth + 1).await?;
        }
        Ok(())
    }

    /// Stores an auth-chain or state event we were given or fetched, after checking it
    /// against its own auth events; a failing one is recorded as rejected (and is an error).
    pub async fn outlier(&mut self, pdu: Pdu, depth: u32) -> Result<()> {
        if self.events.contains_key(&pdu.event_id) {
            return Ok(());
        }
        if depth > 30 {
            return Err(err!(Unknown, "Auth chain too deep"));
        }
        let pdu = self.verified(pdu).await?;
        Box::pin(self.ensure_auth_events(&pdu, depth)).await?;
        if let Err(e) = self.allowed(&pdu, &self.auth_state(&pdu)) {
            self.record_rejected(&pdu, &e.to_string()).await?;
            return Err(e);
        }
        self.ctx.db.batch(vec![graph::insert_outlier_stmt(&self.ctx.db, &pdu, None, false)?]).await?;
        self.events.insert(pdu.event_id.clone(), pdu);
        Ok(())
    }

    /// Stores an event from before our join (`/backfill`) in the timeline, ahead of the join:
    /// checked for signatures and against its auth events (the state before it is not
    /// computed: it only serves history). Returns whether it was stored.
    async fn historical(&mut self, pdu: Pdu) -> Result<bool> {
        self.historical_at(pdu, false).await
    }

    /// [`Self::historical`]; `below`: at a stream position below all others (backfill after
    /// the join) instead of the next one.
    async fn historical_at(&mut self, pdu: Pdu, below: bool) -> Result<bool> {
        let id = pdu.event_id.to_string();
        if !rooms::get_events_in_timeline(&self.ctx.db, std::slice::from_ref(&id)).await?.is_empty()
            || !graph::rejected(&self.ctx.db, &[id.as_str()]).await?.is_empty()
        {
            return Ok(false);
        }
        let pdu = self.verified(pdu).await?;
        self.ensure_auth_events(&pdu, 0).await?;
        if let Err(e) = self.allowed(&pdu, &self.auth_state(&pdu)) {
            self.record_rejected(&pdu, &e.to_string()).await?;
            return Ok(false);
        }
        let redacts_others = self.may_redact_others(&pdu, &self.auth_state(&pdu));
        let write = rooms::EventWrite { pdu: &pdu, state_before: None, state_after: None, txn: None, project: false, redacts_others };
        let stmts = if below { rooms::backfill_stmts(&self.ctx.db, &write)? } else { rooms::append_stmts(&self.ctx.db, &write)? };
        self.ctx.db.batch(stmts).await?;
        self.events.insert(pdu.event_id.clone(), pdu);
        Ok(true)
    }

    /// Fetches up to `limit` events before `before` from the origin (`GET
    /// /_matrix/federation/v1/backfill`).
    async fn backfill(&mut self, before: &[OwnedEventId], limit: u32) -> Result<Vec<Pdu>> {
        let v: String = before.iter().map(|e| format!("&v={}", uri_component(e.as_str()))).collect();
        let path = format!("/_matrix/federation/v1/backfill/{}?limit={limit}{v}", uri_component(self.room_id.as_str()));
        let answer = client::request(self.ctx, self.origin, Method::Get, &path, None).await?;
        Ok(answer
            .get("pdus")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| incoming(&self.rules, v, Some(&self.room_id)).ok()).collect())
            .unwrap_or_default())
    }

    /// The auth rules for `pdu` against `state` (the event itself findable among the events).
    fn allowed(&self, pdu: &Pdu, state: &StateMap) -> Result<()> {
        let events = &self.events;
        let fetch = |id: &EventId| if id == pdu.event_id { Some(pdu.clone()) } else { events.get(id).cloned() };
        check(&self.rules, pdu, state, &fetch)
    }

    /// Whether `pdu` (a redaction) may redact other servers' events, by the power levels of
    /// `state` (the state before it; its events loaded).
    fn may_redact_others(&self, pdu: &Pdu, state: &StateMap) -> bool {
        if pdu.redacts.is_none() {
            return false;
        }
        let get = |t: &str| state.get(&(t.to_owned(), String::new())).and_then(|e| self.events.get(e));
        PowerLevels::new(&self.rules, get("m.room.create"), get("m.room.power_levels")).is_ok_and(|l| l.can_redact_others(&pdu.sender))
    }

    /// Records `pdu` as rejected for `why`; the outcome to report. Tried on the room's head
    /// (`on_head`, see [`Self::checked_and_stored`]) nothing is recorded: `None` has the
    /// caller start again with the reads (the event may be known already).
    async fn rejected(&self, pdu: &Pdu, why: &Error, on_head: bool) -> Result<Option<Outcome>> {
        if on_head {
            return Ok(None);
        }
        self.record_rejected(pdu, &why.to_string()).await?;
        Ok(Some(Outcome::Rejected(why.to_string())))
    }

    /// The state its auth events describe (plus the create event, which v12 leaves out).
    fn auth_state(&self, pdu: &Pdu) -> StateMap {
        let mut map: StateMap = pdu
            .auth_events
            .iter()
            .filter_map(|id| self.events.get(id))
            .filter_map(|p| p.state_key.clone().map(|k| ((p.kind.to_string(), k), p.event_id.clone())))
            .collect();
        if let Some(create) = self.create_event_id() {
            map.insert(("m.room.create".into(), String::new()), create);
        }
        map
    }

    /// The state group and map after each of `ids`, for those whose state we know.
    async fn states_after(&self, ids: &[OwnedEventId]) -> Result<Vec<(String, StateMap)>> {
        states_after(&self.ctx.db, ids).await
    }

    /// Resolves state maps (loading every event they and their auth chains name).
    async fn resolve(&mut self, maps: &[StateMap]) -> Result<StateMap> {
        if let [only] = maps {
            return Ok(only.clone());
        }
        let ids: Vec<OwnedEventId> = maps.iter().flat_map(|m| m.values().cloned()).collect();
        self.load(&ids).await?;
        let events = &self.events;
        resolve(&self.rules, maps, |id: &EventId| events.get(id).cloned())
    }

    /// The state before `pdu` from the origin (`/state_ids` at the event, then `/event` for
    /// what we lack), when its `prev_events` cannot all be had.
    async fn remote_state_before(&mut self, pdu: &Pdu, depth: u32) -> Result<StateMap> {
        let path =
            format!("/_matrix/federation/v1/state_ids/{}?event_id={}", uri_component(self.room_id.as_str()), uri_component(pdu.event_id.as_str()));
        let body = client::request(self.ctx, self.origin, Method::Get, &path, None).await?;
        let ids = |k: &str| -> Vec<OwnedEventId> {
            body.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).filter_map(|s| EventId::parse(s).ok()).collect())
                .unwrap_or_default()
        };
        let (state_ids, chain_ids) = (ids("pdu_ids"), ids("auth_chain_ids"));
        let mut wanted = chain_ids;
        wanted.extend(state_ids.iter().cloned());
        self.load(&wanted).await?;
        // Auth chain first (by depth once fetched), then the state events.
        let mut fetched = Vec::new();
        let lacking: Vec<OwnedEventId> = wanted.iter().filter(|e| !self.events.contains_key(*e)).cloned().collect();
        for id in lacking {
            fetched.push(self.fetch_event(&id).await?);
        }
        fetched.sort_by_key(|p| p.depth);
        for p in fetched {
            // A state event that fails its checks is left out of the state, as Synapse does.
            let _ = self.outlier(p, depth + 1).await;
        }
        Ok(state_ids
            .iter()
            .filter_map(|id| self.events.get(id))
            .filter_map(|p| p.state_key.clone().map(|k| ((p.kind.to_string(), k), p.event_id.clone())))
            .collect())
    }

    /// Fills a gap before `pdu` with `/get_missing_events` (earliest: our extremities), each
    /// returned event ingested as a timeline event first.
    async fn fill_gap(&mut self, pdu: &Pdu, depth: u32) -> Result<()> {
        let earliest = graph::extremities(&self.ctx.db, self.room_id.as_str()).await?;
        let path = format!("/_matrix/federation/v1/get_missing_events/{}", uri_component(self.room_id.as_str()));
        let body = json!({ "earliest_events": earliest, "latest_events": [pdu.event_id], "limit": MISSING_LIMIT, "min_depth": 0 });
        let answer = client::request(self.ctx, self.origin, Method::Post, &path, Some(&body)).await?;
        let mut got: Vec<Pdu> = answer
            .get("events")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| incoming(&self.rules, v, Some(&self.room_id)).ok()).collect())
            .unwrap_or_default();
        got.sort_by_key(|p| p.depth);
        self.budget = self.budget.saturating_sub(got.len());
        for p in got {
            let _ = Box::pin(self.timeline_event(p, depth + 1)).await;
        }
        Ok(())
    }

    /// All the checks for an event meant for the timeline, then its storage.
    pub async fn timeline_event(&mut self, pdu: Pdu, depth: u32) -> Result<Outcome> {
        self.timeline_event_at(pdu, depth, None).await
    }

    /// [`Self::timeline_event`], with the state before the event given (a join's state from
    /// the resident server) instead of derived from its `prev_events`. An event that names
    /// the room's one extremity (the usual next message) is first tried without the reads:
    /// see [`Self::head_group_for`].
    async fn timeline_event_at(&mut self, pdu: Pdu, depth: u32, given_before: Option<StateMap>) -> Result<Outcome> {
        if given_before.is_none() {
            if let Some(group) = self.head_group_for(&pdu) {
                match self.checked_and_stored(pdu.clone(), depth, None, Some(group)).await {
                    Ok(Some(outcome)) => return Ok(outcome),
                    Ok(None) => {}
                    Err(e) => worker::console_warn!("ingest of {} on the room's head: {e}; again with its reads", pdu.event_id),
                }
                // Whatever failed, the row is read again with the event's first reads.
                self.row = None;
            }
        }
        self.checked_and_stored(pdu, depth, given_before, None).await?.ok_or_else(|| Error::internal("ingest: no outcome"))
    }

    /// The group of the state after the room's one forward extremity when `pdu` names it
    /// (and nothing else) as its prev event and every auth event of `pdu` is in memory: the
    /// state before `pdu` is then that group, read from the row this ingest holds (the
    /// room's writer's, see [`Self::with_row`]) instead of from D1. With one extremity the
    /// current state is the state after it (the group every write of the head records).
    fn head_group_for(&self, pdu: &Pdu) -> Option<String> {
        let row = self.row.as_ref()?;
        let group = row.state_group.clone()?;
        let ext = graph::parse_extremities(row.extremities.as_deref(), row.head_event.as_deref());
        let named = ext.len() == 1 && pdu.prev_events == ext;
        let cached = pdu.auth_events.iter().all(|e| self.events.contains_key(e) || EVENTS.with(|c| c.borrow().contains_key(e)));
        (named && cached).then_some(group)
    }

    /// The checks and the storage of one timeline event. `head` is the state group of the
    /// room's one extremity when `pdu` extends it ([`Self::head_group_for`]): whether the
    /// event is known is then not read first but guarded by its write batch, and anything
    /// but an accepted write gives `None` without writing: the caller starts again with
    /// the reads (a known event is answered as before, a refusal recorded once).
    async fn checked_and_stored(&mut self, pdu: Pdu, depth: u32, given_before: Option<StateMap>, head: Option<String>) -> Result<Option<Outcome>> {
        let id_str = pdu.event_id.to_string();
        let on_head = head.is_some();
        // What the checks read first, at once: whether the event is known, its auth events,
        // the states after its prev_events (not when the state before it is given) and the
        // room's row if the ingest has none (nothing before the soft-failure check moves it
        // but a gap's events, which take it).
        let db = &self.ctx.db;
        let lacking: Vec<OwnedEventId> = pdu.auth_events.iter().filter(|e| !self.events.contains_key(*e)).cloned().collect();
        let prev_ids: &[OwnedEventId] = if given_before.is_none() { &pdu.prev_events } else { &[] };
        let need_row = self.row.is_none();
        let prev_strs: Vec<&str> = prev_ids.iter().map(|e| e.as_str()).collect();
        let auth_read = async {
            match lacking.is_empty() {
                true => Ok(BTreeMap::new()),
                false => get_pdus(db, &lacking).await,
            }
        };
        let (reads, auth) = match (&head, pdu.prev_events.first()) {
            (Some(group), Some(prev)) => {
                let state_after = BTreeMap::from([(prev.to_string(), group.clone())]);
                (Ok(graph::PduReads { known: false, state_after, room: None }), auth_read.await)
            }
            _ => futures_util::future::join(graph::pdu_reads(db, &id_str, &prev_strs, need_row.then_some(self.room_id.as_str())), auth_read).await,
        };
        let graph::PduReads { known, state_after, room: row } = reads?;
        if let Some(row) = row {
            self.row.get_or_insert(row);
        }
        if known {
            return Ok(Some(match graph::rejected(&self.ctx.db, &[id_str.as_str()]).await?.is_empty() {
                true => Outcome::Accepted,
                false => Outcome::Rejected("rejected earlier".into()),
            }));
        }
        if depth > 5 {
            return Err(err!(Unknown, "Gap too deep"));
        }
        self.events.extend(auth?);
        if on_head && pdu.auth_events.iter().any(|e| !self.events.contains_key(e)) {
            return Ok(None);
        }
        let prevs = group_maps(db, state_after).await?;
        let pdu = match self.verified(pdu).await {
            Ok(p) => p,
            Err(_) if on_head => return Ok(None),
            Err(e) => return Err(e),
        };
        // Auth events known and the event allowed by them. An auth event that was rejected
        // rejects this one for good; one that could not be fetched (the origin failed) only
        // fails this attempt: the event may come again, e.g. through a later gap fill.
        if let Err(e) = self.ensure_auth_events(&pdu, depth).await {
            if e.kind() != crate::error::ErrorKind::Forbidden && !on_head {
                return Ok(Some(Outcome::Deferred(e.to_string())));
            }
            return self.rejected(&pdu, &e, on_head).await;
        }
        if let Err(e) = self.allowed(&pdu, &self.auth_state(&pdu)) {
            return self.rejected(&pdu, &e, on_head).await;
        }

        // The state before it: resolution over its prev_events' states.
        let mut prevs = prevs;
        if given_before.is_none() && prevs.len() < pdu.prev_events.len() {
            let _ = self.fill_gap(&pdu, depth).await;
            prevs = self.states_after(&pdu.prev_events).await?;
        }
        let (before_group, before) = if let Some(given) = given_before {
            (None, given)
        } else if prevs.len() == pdu.prev_events.len() && !prevs.is_empty() {
            if let [(g, m)] = prevs.as_slice() {
                (Some(g.clone()), m.clone())
            } else {
                let maps: Vec<StateMap> = prevs.into_iter().map(|(_, m)| m).collect();
                (None, self.resolve(&maps).await?)
            }
        } else {
            (None, self.remote_state_before(&pdu, depth).await?)
        };
        self.load_auth_state(&pdu, &before).await?;
        if let Err(e) = self.allowed(&pdu, &before) {
            return self.rejected(&pdu, &e, on_head).await;
        }

        // Soft failure: allowed at its place in the graph, but not by the current state.
        // When the event extends the current state (the usual case: it names our one
        // extremity), that state is the one it was just checked against.
        // Taken: whatever is written below moves the head.
        let row = match self.row.take() {
            Some(r) => r,
            None => rooms::get_room(&self.ctx.db, self.room_id.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?,
        };
        let extends_current = before_group.is_some() && before_group == row.state_group;
        let current = match &row.state_group {
            _ if extends_current => before.clone(),
            Some(g) => load_state_group(&self.ctx.db, g).await?,
            None => StateMap::new(),
        };
        if !extends_current {
            self.load_auth_state(&pdu, &current).await?;
        }
        // A room we are only now joining has no current state to compare with.
        let soft_failed = row.state_group.is_some() && !extends_current && self.allowed(&pdu, &current).is_err();

        // On the head the event's being unknown is this batch's first statement (it fails
        // the batch otherwise: a soft-failed, outlier or rejected event of the same ID).
        let mut stmts = match on_head {
            true => vec![graph::unknown_event_guard_stmt(&self.ctx.db, &id_str)?],
            false => Vec::new(),
        };
        let room = self.room_id.to_string();
        let (before_group, before_new) = match before_group {
            Some(g) => (g, false),
            None => {
                let g = format!("pre:{}", pdu.event_id);
                stmts.push(rooms::insert_state_group(&self.ctx.db, &g, &room, None, &entries(&before), 0)?);
                (g, true)
            }
        };
        let after = apply_event(&before, &pdu);
        let after_group = match &pdu.state_key {
            None => before_group.clone(),
            Some(k) => {
                let g = pdu.event_id.to_string();
                let len = rooms::state_group_len(&self.ctx.db, &before_group).await?;
                // A group made in this batch is not in D1 yet to chain on.
                if len + 1 >= SNAPSHOT_EVERY || before_new {
                    stmts.push(rooms::insert_state_group(&self.ctx.db, &g, &room, None, &entries(&after), 0)?);
                } else {
                    let entry = StateEntry(pdu.kind.to_string(), k.clone(), pdu.event_id.clone());
                    stmts.push(rooms::insert_state_group(&self.ctx.db, &g, &room, Some(&before_group), &[entry], len + 1)?);
                }
                g
            }
        };
        if soft_failed {
            worker::console_warn!("soft-failed {} in {} from {}: not allowed by the current state", pdu.event_id, self.room_id, self.origin);
            stmts.push(graph::insert_outlier_stmt(&self.ctx.db, &pdu, Some(&after_group), true)?);
            self.ctx.db.batch(stmts).await?;
            self.events.insert(pdu.event_id.clone(), pdu);
            // The head did not move.
            self.row = Some(row);
            return Ok(Some(Outcome::SoftFailed));
        }

        // Into the timeline; the extremities and the current state move.
        stmts.extend(rooms::append_stmts(
            &self.ctx.db,
            &rooms::EventWrite {
                pdu: &pdu,
                state_before: Some(&before_group),
                state_after: Some(&after_group),
                txn: None,
                project: false,
                redacts_others: self.may_redact_others(&pdu, &before),
            },
        )?);
        let old_ext = graph::parse_extremities(row.extremities.as_deref(), row.head_event.as_deref());
        let mut ext: Vec<OwnedEventId> = old_ext.iter().filter(|e| !pdu.prev_events.contains(e)).cloned().collect();
        ext.push(pdu.event_id.clone());
        let (new_group, new_current) = if ext.len() == 1 {
            (after_group.clone(), after.clone())
        } else {
            let others: Vec<OwnedEventId> = ext.iter().filter(|e| **e != pdu.event_id).cloned().collect();
            let mut maps: Vec<StateMap> = self.states_after(&others).await?.into_iter().map(|(_, m)| m).collect();
            maps.push(after.clone());
            // The resolution reads the new event too, which is not stored yet.
            self.events.insert(pdu.event_id.clone(), pdu.clone());
            let resolved = self.resolve(&maps).await?;
            let g = format!("cur:{}", pdu.event_id);
            stmts.push(rooms::insert_state_group(&self.ctx.db, &g, &room, None, &entries(&resolved), 0)?);
            (g, resolved)
        };
        // The member events among the changes (their membership goes to `memberships`).
        let changed: Vec<OwnedEventId> =
            new_current.iter().filter(|(k, e)| k.0 == "m.room.member" && current.get(*k) != Some(*e)).map(|(_, e)| e.clone()).collect();
        self.load_direct(&changed).await?;
        let mut with_self = self.events.clone();
        with_self.insert(pdu.event_id.clone(), pdu.clone());
        stmts.extend(graph::current_state_stmts(&self.ctx.db, &room, &current, &new_current, &with_self)?);
        // What resolution changed beyond the event's own key, for `/sync` (none when the room
        // had no current state: a join's state is in the timeline ahead of it).
        if row.state_group.is_some() {
            let own = pdu.state_key.as_ref().map(|k| ((pdu.kind.to_string(), k.clone()), pdu.event_id.clone()));
            let resets = crate::core::room::resets::state_resets(&current, &new_current, own.as_ref().map(|(k, e)| (k, e)));
            stmts.extend(graph::state_resets_stmts(&self.ctx.db, &room, pdu.event_id.as_str(), &resets)?);
        }
        let acl_key = ("m.room.server_acl".to_owned(), String::new());
        if pdu.redacts.is_some() || pdu.kind == ruma::events::TimelineEventType::RoomRedaction || current.get(&acl_key) != new_current.get(&acl_key) {
            self.acl_may_change = true;
        }
        let latest = pdu.event_id.to_string();
        stmts.push(graph::set_head_stmt(&self.ctx.db, &room, &ext, pdu.depth, Some(&new_group), &latest)?);
        // The row as that statement leaves it, for the next event once the batch is written.
        let row_after = rooms::RoomRow {
            head_event: Some(latest.clone()),
            extremities: Some(graph::extremities_column(&ext)?),
            head_depth: row.head_depth.max(pdu.depth as f64),
            state_group: Some(new_group.clone()),
            ..row.clone()
        };
        // A message that leaves the current state as it was, with the room's push context
        // known: its push actions are computed now and written in its batch (guarded by the
        // members' push-rules version), as the `Room` object's local sends do, so nothing is
        // written after the wake-up.
        let unchanged = pdu.state_key.is_none()
            && pdu.kind != ruma::events::TimelineEventType::RoomRedaction
            && row.state_group.as_deref() == Some(new_group.as_str());
        let pc = self.accepted.push.borrow().clone().filter(|_| unchanged);
        if let Some(pc) = pc {
            match self.push_stmts(&pc, &pdu).await {
                Ok((more, pushes)) => {
                    let mut all = stmts.clone();
                    all.extend(more);
                    match self.ctx.db.batch(all).await {
                        Ok(_) => {
                            self.events.insert(pdu.event_id.clone(), pdu.clone());
                            self.accepted.recorded.insert(pdu.event_id.clone());
                            self.accepted.ready.borrow_mut().extend(pushes);
                            self.accepted.pdus.push(pdu);
                            self.row = Some(row_after);
                            return Ok(Some(Outcome::Accepted));
                        }
                        // The push-rules guard (or anything else): nothing was written; again
                        // below, reading the fan-out's inputs afresh (on the head: from the
                        // start, the event may be known).
                        Err(e) => {
                            worker::console_warn!("ingest of {} with its push actions: {e}", pdu.event_id);
                            self.accepted.push.borrow_mut().take();
                            if on_head {
                                return Ok(None);
                            }
                        }
                    }
                }
                Err(e) => worker::console_warn!("push actions for {}: {e}", pdu.event_id),
            }
        }
        // The fan-out's reads (members, their push rules, the state the rules read) end the
        // batch, after its writes, as the `Room` object's local appends do: the wake-up then
        // follows the commit without a round trip of its own.
        let writes = stmts.len();
        stmts.extend(fanout::inputs_stmts(&self.ctx.db, &room)?);
        let rows = self.ctx.db.batch_rows(stmts).await?;
        self.events.insert(pdu.event_id.clone(), pdu.clone());
        self.accepted.pdus.push(pdu);
        self.row = Some(row_after);
        let inputs = fanout::inputs_from(rows.get(writes..).unwrap_or_default());
        *self.accepted.push.borrow_mut() = Some(Rc::new(PushContext::new(&self.ctx.config, &self.room_id, inputs)));
        Ok(Some(Outcome::Accepted))
    }

    /// The push actions of `pdu` from `pc` and the push-rules guard, for its write batch, and
    /// the pushes to send once written.
    async fn push_stmts(&self, pc: &PushContext, pdu: &Pdu) -> Result<(Vec<worker::D1PreparedStatement>, Vec<notify::PendingPush>)> {
        let (mut stmts, pushes) = notify::push_plan(&self.ctx.db, &self.ctx.config, pc, std::slice::from_ref(pdu)).await?;
        stmts.push(fanout::push_rules_guard_stmt(&self.ctx.db, self.room_id.as_str(), &pc.version)?);
        Ok((stmts, pushes))
    }

    async fn record_rejected(&self, pdu: &Pdu, reason: &str) -> Result<()> {
        worker::console_warn!("rejected {} in {} from {}: {reason}", pdu.event_id, self.room_id, self.origin);
        self.ctx.db.batch(vec![graph::insert_rejected_stmt(&self.ctx.db, pdu.event_id.as_str(), self.room_id.as_str(), reason)?]).await?;
        Ok(())
    }
}

/// The state group and map after each of `ids`, for those whose state we know (the groups'
/// chains read at once).
async fn states_after(db: &crate::store::db::Db, ids: &[OwnedEventId]) -> Result<Vec<(String, StateMap)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let strs: Vec<&str> = ids.iter().map(|e| e.as_str()).collect();
    group_maps(db, graph::state_after(db, &strs).await?).await
}

/// The state maps of `groups` (event ID -> group), read at once (through the isolate's cache).
async fn group_maps(db: &crate::store::db::Db, groups: BTreeMap<String, String>) -> Result<Vec<(String, StateMap)>> {
    let maps = futures_util::future::try_join_all(groups.values().map(|g| load_state_group(db, g))).await?;
    Ok(groups.into_values().zip(maps).collect())
}

fn entries(map: &StateMap) -> Vec<StateEntry> {
    map.iter().map(|((t, k), e)| StateEntry(t.clone(), k.clone(), e.clone())).collect()
}

/// The events an ingest added to the timeline, and what their fan-out needs.
#[derive(Default)]
pub struct Accepted {
    pub pdus: Vec<Pdu>,
    /// What push-rule evaluation needs, valid for the room's current state: the `Room`
    /// object's (given before the ingest, [`Accepted::with_push`]) while nothing changed it,
    /// else read by the batch of the last event that did (after every write of the ingest).
    push: RefCell<Option<Rc<PushContext>>>,
    /// The events whose push actions were written in their own batch ...
    recorded: HashSet<OwnedEventId>,
    /// ... and the pushes to send for them.
    ready: RefCell<Vec<notify::PendingPush>>,
}

impl Accepted {
    /// Starts with the room's push context (the `Room` object's, valid for the current state).
    pub fn with_push(&self, pc: Option<Rc<PushContext>>) {
        *self.push.borrow_mut() = pc;
    }

    /// The push context valid for the room's state after the ingest, if known.
    pub fn push(&self) -> Option<Rc<PushContext>> {
        self.push.borrow().clone()
    }
}

/// The fan-out for events that reached the timeline: the members' syncs woken first (no D1
/// round trip before the wake-up: the push context is the one the last write batch read, or
/// the `Room` object's), then the push actions of the events that did not write theirs in
/// their batch recorded (`notify`'s two halves, as after a local append).
pub async fn fan_out(ctx: &Ctx, accepted: &Accepted) {
    let pdus = accepted.pdus.as_slice();
    if pdus.is_empty() {
        return;
    }
    let pc = accepted.push();
    match pc {
        Some(pc) => {
            let (affected, joined) = pc.audience(pdus);
            notify::wake(&ctx.env, &ctx.config, pdus, affected, &joined).await;
            notify::send_pushes_later(&ctx.env, &ctx.config, std::mem::take(&mut *accepted.ready.borrow_mut()));
            let rest: Vec<Pdu> = pdus.iter().filter(|p| !accepted.recorded.contains(&p.event_id)).cloned().collect();
            if !rest.is_empty() {
                notify::record_with(&ctx.env, &ctx.db, &ctx.config, &rest, &pc).await;
            }
        }
        None => {
            if let Err(e) = notify::after_append(&ctx.env, &ctx.db, &ctx.config, pdus).await {
                worker::console_error!("fan-out after federation ingest: {e}");
            }
        }
    }
}

/// The event ID of a PDU as it came on the wire (`None` if it cannot be read).
pub fn event_id_of(rules: &RoomVersionRules, value: &Value) -> Option<OwnedEventId> {
    crate::core::federation::pdu::canonical_object(value).ok().and_then(|mut o| {
        o.remove("unsigned");
        crate::core::federation::pdu::event_id_of(rules, &o).ok()
    })
}

/// Stores a room joined over federation (spec: "Joining Rooms", `send_join` v2 response):
/// the auth chain and the state as outliers, each checked against its auth events, then the
/// join itself on top of that state. Returns the join's event ID.
pub async fn store_remote_join(
    ctx: &Ctx,
    room_id: &RoomId,
    room_version: &str,
    origin: &ServerName,
    join: &Value,
    state: &[Value],
    auth_chain: &[Value],
) -> Result<OwnedEventId> {
    let (_, rules) = version_rules(room_version)?;
    let parse = |list: &[Value]| -> Vec<Pdu> { list.iter().filter_map(|v| incoming(&rules, v, Some(room_id)).ok()).collect() };
    let state_pdus = parse(state);
    let state_ids: HashSet<OwnedEventId> = state_pdus.iter().map(|p| p.event_id.clone()).collect();
    let mut events = parse(auth_chain);
    events.extend(state_pdus);
    events.sort_by_key(|p| p.depth);
    let create =
        events.iter().find(|p| p.kind.to_string() == "m.room.create").ok_or_else(|| err!(BadJson, "The join's state has no create event"))?;
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        ctx.db.batch(vec![graph::insert_room_if_missing_stmt(&ctx.db, room_id.as_str(), room_version, create.sender.as_str())?]).await?;
    }
    let mut ingest = Ingest::new(ctx, room_id, origin).await?;
    for p in events {
        // One bad event does not sink the join; it is left out of the state.
        if let Err(e) = ingest.outlier(p, 0).await {
            worker::console_warn!("join of {room_id}: state event refused: {e}");
        }
    }
    let before: StateMap = state_ids
        .iter()
        .filter_map(|id| ingest.events.get(id))
        .filter_map(|p| p.state_key.clone().map(|k| ((p.kind.to_string(), k), p.event_id.clone())))
        .collect();
    let pdu = incoming(&rules, join, Some(room_id))?;
    let id = pdu.event_id.clone();
    // Recent history (spec: "Backfilling"; a failure only costs history) and the room's
    // state go into the timeline ahead of the join, oldest first, so that the readers of the
    // timeline and of state by stream position (`/sync`, `/messages`) see the room as it was
    // when we joined.
    let mut history = match ingest.backfill(&pdu.prev_events, JOIN_BACKFILL).await {
        Ok(h) => h,
        Err(e) => {
            worker::console_warn!("join of {room_id}: backfill from {origin}: {e}");
            vec![]
        }
    };
    history.extend(before.values().filter_map(|id| ingest.events.get(id)).cloned());
    history.sort_by_key(|p| p.depth);
    let mut seen = HashSet::new();
    history.retain(|p| seen.insert(p.event_id.clone()));
    for p in history {
        if let Err(e) = ingest.historical(p).await {
            worker::console_warn!("join of {room_id}: history event refused: {e}");
        }
    }
    match ingest.timeline_event_at(pdu, 0, Some(before)).await? {
        Outcome::Accepted => {}
        Outcome::SoftFailed => return Err(err!(Forbidden, "The join was refused")),
        Outcome::Rejected(why) => return Err(err!(Forbidden, "The join was refused: {why}")),
        Outcome::Deferred(why) => return Err(err!(Unknown, "The join could not be checked: {why}")),
    }
    fan_out(ctx, &ingest.accepted).await;
    Ok(id)
}

/// At most this many servers are asked per on-demand backfill.
const BACKFILL_SERVERS: usize = 2;

/// On-demand backfill (spec: server-server-api, "Backfilling and retrieving missing events",
/// `GET /_matrix/federation/v1/backfill`): up to `limit` events before `from` (events of
/// ours whose `prev_events` we lack) from a server in the room, stored as history below
/// every stream position (so `/messages` finds them past the oldest event and `/sync` never
/// sees them), newest first, each checked as at the join (signatures, auth events). Events
/// the join stored out of place (the room's state, placed before the join's history) that
/// are older than the newest fetched event move down with them, in depth order, so that
/// history visibility and the order of `/messages` stay right. Returns the new event IDs.
/// Runs inside the room's `Room` Durable Object.
pub async fn backfill_room(ctx: &Ctx, room_id: &RoomId, from: &[OwnedEventId], limit: u32) -> Result<Vec<String>> {
    let ours = ctx.server_name();
    let mut servers: Vec<String> = graph::member_servers(&ctx.db, room_id.as_str(), "join").await?;
    if let Some(s) = room_id.server_name() {
        servers.insert(0, s.to_string());
    }
    let mut seen = HashSet::new();
    servers.retain(|s| s.as_str() != ours && seen.insert(s.clone()));
    let from_ids: Vec<String> = from.iter().map(|e| e.to_string()).collect();
    let from_rows = rooms::get_events_in_timeline(&ctx.db, &from_ids).await?;
    let Some(boundary) = from_rows.iter().filter(|r| r.room_id == room_id.as_str()).map(|r| r.pos()).min() else {
        return Ok(vec![]);
    };
    let limit = limit.clamp(1, 100);
    for server in servers.iter().take(BACKFILL_SERVERS) {
        let Ok(origin) = ServerName::parse(server) else { continue };
        let mut ingest = Ingest::new(ctx, room_id, &origin).await?;
        let mut got = match ingest.backfill(from, limit).await {
            Ok(g) => g,
            Err(e) => {
                worker::console_warn!("backfill of {room_id} from {origin}: {e}");
                continue;
            }
        };
        let ids: Vec<String> = got.iter().map(|p| p.event_id.to_string()).collect();
        let have = rooms::in_timeline(&ctx.db, &ids).await?;
        let id_strs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let rejected = graph::rejected(&ctx.db, &id_strs).await?;
        got.retain(|p| !have.contains(p.event_id.as_str()) && !rejected.contains(p.event_id.as_str()));
        let mut dedup = HashSet::new();
        got.retain(|p| dedup.insert(p.event_id.clone()));
        if got.is_empty() {
            // The server has nothing before what we have: the history is complete (or it
            // cannot serve more; another request may ask again).
            return Ok(vec![]);
        }
        let newest = got.iter().map(|p| p.depth).max().unwrap_or(0);
        let misplaced = rooms::historical_below(&ctx.db, room_id.as_str(), boundary, newest).await?;
        // Newest first: each write takes the position below all the previous ones.
        enum Item {
            New(Pdu),
            Move(String),
        }
        let mut items: Vec<(u64, i64, Item)> = got.into_iter().map(|p| (p.depth, i64::MAX, Item::New(p))).collect();
        items.extend(misplaced.into_iter().map(|r| (r.depth as u64, r.stream as i64, Item::Move(r.event_id))));
        items.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        let mut stored = Vec::new();
        let mut moves = Vec::new();
        for (_, _, item) in items {
            match item {
                Item::New(p) => {
                    if !moves.is_empty() {
                        ctx.db.batch(std::mem::take(&mut moves)).await?;
                    }
                    let id = p.event_id.to_string();
                    match ingest.historical_at(p, true).await {
                        Ok(true) => stored.push(id),
                        Ok(false) => {}
                        Err(e) => worker::console_warn!("backfill of {room_id} from {origin}: {id} refused: {e}"),
                    }
                }
                Item::Move(id) => moves.push(rooms::move_below_stmt(&ctx.db, &id)?),
            }
        }
        if !moves.is_empty() {
            ctx.db.batch(moves).await?;
        }
        return Ok(stored);
    }
    Ok(vec![])
}
