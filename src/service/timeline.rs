//! Appending events to a room: load the room head and the state the auth rules need, build
//! and authorise each event (ruma), record its state group, and write everything in one D1
//! batch. Runs inside the room's `Room` Durable Object (one writer per room), except for
//! `createRoom`, whose room nobody else can know yet.

use std::collections::{BTreeMap, HashSet};

use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, RoomId};
use serde_json::Value;

use crate::core::config::Config;
use crate::core::room::auth::{auth_types, prepare_event, RoomHead};
use crate::core::room::pdu::{NewEvent, Pdu};
use crate::core::room::power::PowerLevels;
use crate::core::room::state::{StateEntry, StateMap};
use crate::core::room::version_rules;
use crate::core::time::now_ms;
use crate::err;
use crate::error::{Error, Result};
use crate::store::db::Db;
use crate::store::rooms;

/// A full state snapshot every this many links, so loading a group reads at most 33 rows.
const SNAPSHOT_EVERY: u32 = 32;

thread_local! {
    /// The last `origin_server_ts` given to an `m.room.create` by this isolate.
    static LAST_CREATE_TS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A timestamp for a new room's create event, later than any this isolate gave before:
/// from room version 12 the room ID is the create event's hash, so two rooms created with
/// the same content by the same user in the same millisecond would otherwise be one room
/// (and the second creation a conflict).
fn create_ts() -> u64 {
    LAST_CREATE_TS.with(|last| {
        let ts = now_ms().max(last.get() + 1);
        last.set(ts);
        ts
    })
}

// The wire types of the `Room` object's append (its protocol); kept under this path.
pub use crate::durable_objects::protocol::{NewEventWire, Txn};

#[derive(Clone)]
struct Head {
    room_id: Option<ruma::OwnedRoomId>,
    rules: Option<RoomVersionRules>,
    version: String,
    extremities: Vec<OwnedEventId>,
    depth: u64,
    group: Option<String>,
    group_len: u32,
    /// The state group stored in D1 when this batch began: a full snapshot is that group's
    /// state plus `pending` (groups made earlier in the batch are not in D1 yet).
    base_group: Option<String>,
    /// The known part of the current state (what the auth rules have needed so far).
    state: StateMap,
    /// Keys already looked up in D1 (present or known absent).
    loaded: HashSet<(String, String)>,
    events: BTreeMap<OwnedEventId, Pdu>,
    /// State keys written by earlier events of this batch.
    pending: Vec<(String, String)>,
    /// Senders of events appended through this head (a redaction's target, without a read).
    senders: BTreeMap<OwnedEventId, String>,
}

/// The part of a [`Head`] an event that turns out to be refused may have moved.
struct Checkpoint {
    extremities: Vec<OwnedEventId>,
    depth: u64,
    group: Option<String>,
    group_len: u32,
    state: StateMap,
    loaded: HashSet<(String, String)>,
    pending: usize,
}

/// Bounds of what a [`RoomCache`] remembers besides the state.
const CACHED_TXNS: usize = 2048;
const CACHED_SENDERS: usize = 2048;

impl Head {
    fn empty() -> Head {
        Head {
            room_id: None,
            rules: None,
            version: String::new(),
            extremities: vec![],
            depth: 0,
            group: None,
            group_len: 0,
            base_group: None,
            state: StateMap::new(),
            loaded: HashSet::new(),
            events: BTreeMap::new(),
            pending: vec![],
            senders: BTreeMap::new(),
        }
    }

    fn of_room(room_id: &RoomId, row: &rooms::RoomRow, group_len: u32) -> Result<Head> {
        let (_, rules) = version_rules(&row.room_version)?;
        Ok(Head {
            room_id: Some(room_id.to_owned()),
            rules: Some(rules),
            version: row.room_version.clone(),
            extremities: crate::store::graph::parse_extremities(row.extremities.as_deref(), row.head_event.as_deref()),
            depth: row.head_depth as u64,
            group: row.state_group.clone(),
            group_len,
            base_group: row.state_group.clone(),
            ..Head::empty()
        })
    }

    fn pending_state(&self) -> Vec<((String, String), OwnedEventId)> {
        self.pending.iter().filter_map(|k| self.state.get(k).map(|e| (k.clone(), e.clone()))).collect()
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            extremities: self.extremities.clone(),
            depth: self.depth,
            group: self.group.clone(),
            group_len: self.group_len,
            state: self.state.clone(),
            loaded: self.loaded.clone(),
            pending: self.pending.len(),
        }
    }

    /// Back to the checkpoint: `state` and `loaded` move together (a key the refused
    /// request loaded but `state` no longer has would otherwise read as absent).
    fn restore(&mut self, c: Checkpoint) {
        self.pending.truncate(c.pending);
        self.extremities = c.extremities;
        self.depth = c.depth;
        self.group = c.group;
        self.group_len = c.group_len;
        self.state = c.state;
        self.loaded = c.loaded;
    }

    /// The batch is in D1: it is the base of the next one. Events no longer in the known
    /// state (nor auth events of it) are forgotten, so the cache does not grow with the room.
    fn committed(&mut self) {
        self.base_group = self.group.clone();
        self.pending.clear();
        let keep: HashSet<OwnedEventId> =
            self.state.values().cloned().chain(self.state.values().filter_map(|e| self.events.get(e)).flat_map(|p| p.auth_events.clone())).collect();
        self.events.retain(|id, _| keep.contains(id));
        while self.senders.len() > CACHED_SENDERS {
            self.senders.pop_first();
        }
    }
}

/// What became of one append request.
pub enum Sent {
    /// Newly stored events.
    New(Vec<Pdu>),
    /// A transaction seen before: the events it stored then.
    Repeat(Vec<OwnedEventId>),
}

impl Sent {
    pub fn event_ids(&self) -> Vec<OwnedEventId> {
        match self {
            Sent::New(pdus) => pdus.iter().map(|p| p.event_id.clone()).collect(),
            Sent::Repeat(ids) => ids.clone(),
        }
    }
}

/// Appends events to `room_id` (or creates the room when `room_id` is `None` and the first
/// event is `m.room.create`), reading everything from D1 (the transaction ID too): the path
/// of `createRoom` and of the `Room` object when its cache cannot be used. All events are
/// written in one batch; if any is refused, nothing is written.
pub async fn append_once(db: &Db, config: &Config, room_id: Option<&RoomId>, news: Vec<NewEvent>, txn: Option<Txn>) -> Result<Sent> {
    let mut head = match room_id {
        Some(r) => {
            let row = rooms::get_room(db, r.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?;
            let group_len = match &row.state_group {
                Some(g) => rooms::state_group_len(db, g).await?,
                None => 0,
            };
            Head::of_room(r, &row, group_len)?
        }
        None => Head::empty(),
    };
    if let Some(t) = &txn {
        if let Some(existing) = rooms::txn_event(db, &t.user_id, &t.device_id, &t.key).await? {
            // Same transaction again: the same event, stored once.
            return Ok(Sent::Repeat(vec![EventId::parse(&existing).map_err(Error::internal)?]));
        }
    }
    let mut stmts = Vec::new();
    let out = build(db, config, &mut head, news, txn.as_ref(), room_id.is_none(), &mut stmts).await?;
    finish(db, &head, &out, room_id.is_none(), &mut stmts)?;
    db.batch(stmts).await?;
    Ok(Sent::New(out))
}

/// Builds, signs and authorises one event on top of the room's current state without
/// writing it: an invite of another server's user is signed by that server before it is
/// stored (spec: server-server-api, "Inviting to a room").
pub async fn prepare(db: &Db, config: &Config, room_id: &RoomId, new: NewEvent) -> Result<Pdu> {
    let row = rooms::get_room(db, room_id.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?;
    let group_len = match &row.state_group {
        Some(g) => rooms::state_group_len(db, g).await?,
        None => 0,
    };
    let mut head = Head::of_room(room_id, &row, group_len)?;
    build(db, config, &mut head, vec![new], None, false, &mut Vec::new()).await?.into_iter().next().ok_or_else(|| Error::internal("no event"))
}

/// The room row's update (and for a new room its insert) after the events of a batch.
fn finish(db: &Db, head: &Head, out: &[Pdu], created: bool, stmts: &mut Vec<worker::D1PreparedStatement>) -> Result<()> {
    let room = head.room_id.as_ref().ok_or_else(|| Error::internal("no events"))?.to_string();
    let last = out.last().ok_or_else(|| Error::internal("no events"))?;
    if created {
        stmts.insert(0, rooms::insert_room_stmt(db, &room, &head.version, last.sender.as_str())?);
    }
    stmts.push(crate::store::graph::set_head_stmt(db, &room, &head.extremities, head.depth, head.group.as_deref(), last.event_id.as_str())?);
    Ok(())
}

/// Builds and authorises `news` one after another on top of `head` (which follows them),
/// adding their statements to `stmts`. On an error `head` may have moved: callers restore it.
async fn build(
    db: &Db,
    config: &Config,
    head: &mut Head,
    news: Vec<NewEvent>,
    txn: Option<&Txn>,
    created: bool,
    stmts: &mut Vec<worker::D1PreparedStatement>,
) -> Result<Vec<Pdu>> {
    let mut out = Vec::new();
    for new in news {
        if head.rules.is_none() {
            if new.kind != "m.room.create" {
                return Err(Error::internal("a new room must start with m.room.create"));
            }
            let version = new
                .content
                .get("room_version")
                .and_then(Value::as_str)
                .ok_or_else(|| err!(BadJson, "m.room.create needs a room_version"))?
                .to_owned();
            let (_, rules) = version_rules(&version)?;
            if !rules.authorization.room_create_event_id_as_room_id {
                // Before v12 the room ID is chosen by the creating server.
                head.room_id = Some(ruma::RoomId::new_v1(&config.server_name));
            }
            head.rules = Some(rules);
            head.version = version;
        }
        let rules = head.rules.clone().ok_or_else(|| Error::internal("room without rules"))?;
        if !created {
            load_needed(db, head, &rules, &new).await?;
        }
        if let Some(target) = &new.redacts {
            check_redaction(db, head, &new, target).await?;
        }
        let fetch = |id: &EventId| head.events.get(id).cloned();
        let pdu = prepare_event(
            &RoomHead { rules: &rules, room_id: head.room_id.as_deref(), state: &head.state, extremities: &head.extremities, max_depth: head.depth },
            &new,
            if new.kind == "m.room.create" { create_ts() } else { now_ms() },
            config.server_name.as_str(),
            &config.signing_key,
            &fetch,
        )?;
        if head.room_id.is_none() {
            head.room_id = Some(pdu.room_id.clone());
        }

        // State groups: a state event starts a new group linked to the previous one.
        let before = head.group.clone();
        let after = if let Some(k) = &pdu.state_key {
            let id = pdu.event_id.to_string();
            let entry = StateEntry(pdu.kind.to_string(), k.clone(), pdu.event_id.clone());
            let room = pdu.room_id.as_str();
            if head.group_len + 1 >= SNAPSHOT_EVERY || before.is_none() {
                // Full snapshot: the whole state after this event.
                let mut full = match &head.base_group {
                    Some(g) => rooms::load_state_group(db, g).await?.0,
                    None => StateMap::new(),
                };
                // Earlier events of this batch are not in D1 yet.
                full.extend(head.pending_state());
                full.insert((entry.0.clone(), entry.1.clone()), entry.2.clone());
                let delta: Vec<StateEntry> = full.iter().map(|((t, k), e)| StateEntry(t.clone(), k.clone(), e.clone())).collect();
                stmts.push(rooms::insert_state_group(db, &id, room, None, &delta, 0)?);
                head.group_len = 0;
            } else {
                stmts.push(rooms::insert_state_group(db, &id, room, before.as_deref(), &[entry], head.group_len + 1)?);
                head.group_len += 1;
            }
            head.state.insert((pdu.kind.to_string(), k.clone()), pdu.event_id.clone());
            head.loaded.insert((pdu.kind.to_string(), k.clone()));
            head.pending.push((pdu.kind.to_string(), k.clone()));
            Some(id)
        } else {
            before.clone()
        };
        // The transaction names the request's first event (one `txn_ids` row).
        let t = txn.filter(|_| out.is_empty()).map(|t| rooms::TxnWrite { user: &t.user_id, device: &t.device_id, txn_id: &t.txn_id, key: &t.key });
        stmts.extend(rooms::append_stmts(
            db,
            &rooms::EventWrite {
                pdu: &pdu,
                state_before: before.as_deref(),
                state_after: after.as_deref(),
                txn: t,
                project: true,
                redacts_others: true,
            },
        )?);
        head.group = after;
        // The new event names (up to 20 of) the extremities; any it could not name stay.
        head.extremities = head.extremities.iter().filter(|e| !pdu.prev_events.contains(e)).cloned().chain([pdu.event_id.clone()]).collect();
        head.depth = pdu.depth;
        head.events.insert(pdu.event_id.clone(), pdu.clone());
        head.senders.insert(pdu.event_id.clone(), pdu.sender.to_string());
        out.push(pdu);
    }
    Ok(out)
}

/// What the room's `Room` Durable Object keeps between appends so that an append reads
/// nothing from D1: the head (extremities, depth, state group), the part of the current
/// state the auth rules have needed with its events, and recent transaction IDs. It is exact only because every write to the
/// room goes through that object: the object drops it on any write other than a local
/// append ([`append_group`]), and after a failed batch.
pub struct RoomCache {
    head: Head,
    /// Transactions stored through this cache (`user\0device\0key` → event IDs), oldest
    /// dropped first. One not found here may still be in D1 (stored before the cache was
    /// loaded): the batch's `txn_ids` insert then fails ([`rooms::is_unique_conflict`]).
    txns: BTreeMap<String, (u64, Vec<OwnedEventId>)>,
    txn_seq: u64,
}

/// One queued append request.
#[derive(Clone)]
pub struct Queued {
    pub news: Vec<NewEvent>,
    pub txn: Option<Txn>,
}

/// The error of a request for its repeat in the same group.
pub(crate) fn same_error(e: &Error) -> Error {
    match e {
        Error::Matrix(kind, msg) => Error::Matrix(kind.clone(), msg.clone()),
        Error::Uia(body) => Error::Uia(body.clone()),
    }
}

fn txn_cache_key(t: &Txn) -> String {
    format!("{}\0{}\0{}", t.user_id, t.device_id, t.key)
}

impl RoomCache {
    /// Loads what appends need (one D1 round trip).
    pub async fn load(db: &Db, room_id: &RoomId) -> Result<RoomCache> {
        let h = rooms::append_head(db, room_id.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?;
        Ok(RoomCache { head: Head::of_room(room_id, &h.room, h.group_len)?, txns: BTreeMap::new(), txn_seq: 0 })
    }

    pub fn room_id(&self) -> Option<&RoomId> {
        self.head.room_id.as_deref()
    }

    /// The head columns of the room's row as the appends through this cache left them (for
    /// an ingest that follows, `ingest::Ingest::with_row`; `is_public` is not kept: 0).
    pub fn head_row(&self) -> Option<rooms::RoomRow> {
        let h = &self.head;
        Some(rooms::RoomRow {
            room_version: h.version.clone(),
            is_public: 0,
            head_event: h.extremities.last().map(|e| e.to_string()),
            extremities: Some(crate::store::graph::extremities_column(&h.extremities).ok()?),
            head_depth: h.depth as f64,
            state_group: h.group.clone(),
        })
    }

    fn remember(&mut self, q: &Queued, pdus: &[Pdu]) {
        if let (Some(t), Some(first)) = (&q.txn, pdus.first()) {
            self.txn_seq += 1;
            self.txns.insert(txn_cache_key(t), (self.txn_seq, vec![first.event_id.clone()]));
            if self.txns.len() > CACHED_TXNS {
                if let Some(oldest) = self.txns.iter().min_by_key(|(_, (n, _))| *n).map(|(k, _)| k.clone()) {
                    self.txns.remove(&oldest);
                }
            }
        }
    }
}

/// What [`commit_group`] did.
pub struct Group {
    /// One per request, in order.
    pub outcomes: Vec<Result<Sent>>,
    /// The fan-out's inputs (members, their push rules, the state the rules read), when the
    /// caller asked for them: read by the same batch right after its writes.
    pub fanout: Option<crate::store::fanout::FanoutInputs>,
}

/// A group built on the cache ([`prepare_group`]), not written yet.
pub struct Prepared {
    /// One per request, in order.
    pub outcomes: Vec<Result<Sent>>,
    /// The new events of the whole group, in order.
    pub pdus: Vec<Pdu>,
    stmts: Vec<worker::D1PreparedStatement>,
}

/// Builds a group of queued requests on the cached head, each built and authorised on the
/// state after the ones before it; each request gets its own outcome (a refused one is left
/// out and changes nothing). Nothing is read from D1 once `cache` knows the senders (their
/// membership and the state the rules read). The head moves: the caller writes the group
/// with [`commit_group`] or drops the cache.
pub async fn prepare_group(db: &Db, config: &Config, cache: &mut RoomCache, reqs: &[Queued]) -> Result<Prepared> {
    let mut stmts = Vec::new();
    let mut outcomes: Vec<Result<Sent>> = Vec::with_capacity(reqs.len());
    // A transaction repeated inside the group (a client retrying a request still queued).
    let mut in_group: BTreeMap<String, usize> = BTreeMap::new();
    for (i, q) in reqs.iter().enumerate() {
        if let Some(t) = &q.txn {
            let key = txn_cache_key(t);
            if let Some((_, ids)) = cache.txns.get(&key) {
                outcomes.push(Ok(Sent::Repeat(ids.clone())));
                continue;
            }
            if let Some(j) = in_group.get(&key) {
                outcomes.push(match outcomes.get(*j) {
                    Some(Ok(s)) => Ok(Sent::Repeat(s.event_ids())),
                    Some(Err(e)) => Err(same_error(e)),
                    None => Err(Error::internal("transaction order")),
                });
                continue;
            }
            in_group.insert(key, i);
        }
        let checkpoint = cache.head.checkpoint();
        let mark = stmts.len();
        match build(db, config, &mut cache.head, q.news.clone(), q.txn.as_ref(), false, &mut stmts).await {
            Ok(pdus) if !pdus.is_empty() => outcomes.push(Ok(Sent::New(pdus))),
            Ok(_) => outcomes.push(Err(Error::internal("no events"))),
            Err(e) => {
                cache.head.restore(checkpoint);
                stmts.truncate(mark);
                outcomes.push(Err(e));
            }
        }
    }
    let pdus: Vec<Pdu> = outcomes.iter().filter_map(|o| if let Ok(Sent::New(p)) = o { Some(p.clone()) } else { None }).flatten().collect();
    if !pdus.is_empty() {
        finish(db, &cache.head, &pdus, false, &mut stmts)?;
    }
    Ok(Prepared { outcomes, pdus, stmts })
}

/// Writes a [`prepare_group`]'d group in ONE D1 batch: `before` (guards that fail the whole
/// batch), the group's writes, `after` (statements that depend on the new rows, e.g. push
/// actions) and, with `read_fanout`, the fan-out's reads (no round trip of their own). No
/// batch when the group wrote nothing.
///
/// `Err` means the batch failed (nothing of the group was written): the cache no longer
/// matches D1 and must be dropped.
pub async fn commit_group(
    db: &Db,
    cache: &mut RoomCache,
    reqs: &[Queued],
    prepared: Prepared,
    before: Vec<worker::D1PreparedStatement>,
    after: Vec<worker::D1PreparedStatement>,
    read_fanout: bool,
) -> Result<Group> {
    let Prepared { outcomes, pdus, stmts: writes } = prepared;
    if pdus.is_empty() {
        return Ok(Group { outcomes, fanout: None });
    }
    let room = cache.head.room_id.as_ref().ok_or_else(|| Error::internal("room not loaded"))?.to_string();
    let mut stmts = before;
    stmts.extend(writes);
    stmts.extend(after);
    let reads_from = stmts.len();
    if read_fanout {
        stmts.extend(crate::store::fanout::inputs_stmts(db, &room)?);
    }
    let rows = db.batch_rows(stmts).await?;
    let fanout = read_fanout.then(|| crate::store::fanout::inputs_from(rows.get(reads_from..).unwrap_or_default()));
    cache.head.committed();
    for (q, o) in reqs.iter().zip(&outcomes) {
        if let Ok(Sent::New(pdus)) = o {
            cache.remember(q, pdus);
        }
    }
    Ok(Group { outcomes, fanout })
}

/// The one write path of room events: appends them ([`append_once`]) and then fans them out to
/// the members (`notify::after_append`: sync wake-ups, push actions, pushes). `createRoom`
/// and upgrades call it directly for the new room, which nobody else can know yet; the
/// `Room` object appends with [`append_group`] and fans out itself. A refused event is an
/// error and nothing is written. Once the events are committed a fan-out failure is
/// logged, not returned: the client's retry would otherwise send them twice.
pub async fn write(env: &worker::Env, db: &Db, config: &Config, room_id: Option<&RoomId>, news: Vec<NewEvent>, txn: Option<Txn>) -> Result<Vec<Pdu>> {
    let pdus = match append_once(db, config, room_id, news, txn).await? {
        Sent::New(pdus) => pdus,
        Sent::Repeat(ids) => {
            let rows = rooms::get_events(db, &ids.iter().map(|e| e.to_string()).collect::<Vec<_>>()).await?;
            return rows.iter().map(|r| r.pdu()).collect();
        }
    };
    if let Err(e) = crate::service::notify::after_append(env, db, config, &pdus).await {
        let room = pdus.first().map(|p| p.room_id.to_string()).unwrap_or_default();
        worker::console_error!("fan-out after append in {room}: {e}");
    }
    Ok(pdus)
}

/// Loads (once) the current-state entries and events the auth rules need for `new`.
async fn load_needed(db: &Db, head: &mut Head, rules: &RoomVersionRules, new: &NewEvent) -> Result<()> {
    let room = head.room_id.clone().ok_or_else(|| Error::internal("room not loaded"))?;
    let mut keys: Vec<(String, String)> = auth_types(rules, new)?;
    keys.push(("m.room.create".into(), String::new()));
    keys.push(("m.room.power_levels".into(), String::new()));
    keys.push(("m.room.join_rules".into(), String::new()));
    keys.push(("m.room.member".into(), new.sender.to_string()));
    if let Some(k) = &new.state_key {
        if new.kind == "m.room.member" {
            keys.push(("m.room.member".into(), k.clone()));
        }
    }
    let missing: Vec<(String, String)> = keys.into_iter().filter(|k| !head.loaded.contains(k)).collect::<HashSet<_>>().into_iter().collect();
    if !missing.is_empty() {
        let found = rooms::current_state_keys(db, room.as_str(), &missing).await?;
        for k in missing {
            head.loaded.insert(k.clone());
            if let Some(e) = found.get(&k) {
                head.state.insert(k, e.clone());
            }
        }
    }
    let want: Vec<OwnedEventId> = head.state.values().filter(|e| !head.events.contains_key(*e)).cloned().collect();
    if !want.is_empty() {
        head.events.extend(rooms::get_pdus(db, &want).await?);
    }
    // Their auth events too: the state-independent rules look at them.
    let auth: Vec<OwnedEventId> = head
        .state
        .values()
        .filter_map(|e| head.events.get(e))
        .flat_map(|p| p.auth_events.clone())
        .filter(|e| !head.events.contains_key(e))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !auth.is_empty() && !want.is_empty() {
        head.events.extend(rooms::get_pdus(db, &auth).await?);
    }
    Ok(())
}

/// A redaction is allowed for the original sender, or for users at or above the room's
/// `redact` power level (spec: client-server-api, "Redactions"; the auth rules leave this
/// check to the server from room v3 on).
async fn check_redaction(db: &Db, head: &mut Head, new: &NewEvent, target: &EventId) -> Result<()> {
    let room = head.room_id.clone().ok_or_else(|| err!(NotFound, "Unknown room"))?;
    // An event appended through this head: its sender is known (and it is in this room).
    let sender = match head.senders.get(target) {
        Some(s) => s.clone(),
        None => match rooms::get_event(db, target.as_str()).await?.filter(|r| r.room_id == room.as_str()) {
            Some(row) => row.sender,
            None => return Err(err!(NotFound, "Event not found")),
        },
    };
    if sender == new.sender.as_str() {
        return Ok(());
    }
    let rules = head.rules.as_ref().ok_or_else(|| Error::internal("room without rules"))?;
    let get = |t: &str| head.state.get(&(t.to_owned(), String::new())).and_then(|e| head.events.get(e));
    let levels = PowerLevels::new(rules, get("m.room.create"), get("m.room.power_levels"))?;
    if levels.can_redact_others(&new.sender) {
        Ok(())
    } else {
        Err(err!(Forbidden, "You don't have permission to redact this event"))
    }
}

/// Appends events to an existing room through its `Room` Durable Object (the room's single
/// writer). Returns the new event IDs (for a repeated transaction, the original one).
pub async fn append_via_room(ctx: &crate::ctx::Ctx, room_id: &RoomId, news: &[NewEvent], txn: Option<Txn>) -> Result<Vec<OwnedEventId>> {
    Ok(send_via_room(ctx, room_id, news, txn, None).await?.0)
}

/// [`append_via_room`], also returning the D1 round trips the `Room` object made before
/// answering (for the group the request was committed in: `X-Stratus-D1-Round-Trips`).
///
/// `confirm_token`: the hash of the sender's access token when it came from the isolate's
/// cache unread: the `Room` object confirms it (and that the sender is not shadow-banned) in
/// its write batch, answering `M_UNKNOWN_TOKEN` (or, shadow-banned, a made-up event ID)
/// instead of writing.
pub async fn send_via_room(
    ctx: &crate::ctx::Ctx,
    room_id: &RoomId,
    news: &[NewEvent],
    txn: Option<Txn>,
    confirm_token: Option<String>,
) -> Result<(Vec<OwnedEventId>, u32)> {
    use crate::durable_objects::protocol::{RoomProto, RoomRequest, RoomResponse};
    use crate::service::objects::{call, unexpected};
    let request = RoomRequest::Append { room_id: room_id.to_string(), events: news.iter().map(NewEventWire::from_new).collect(), txn, confirm_token };
    let parse = |ids: &[String]| ids.iter().filter_map(|s| EventId::parse(s).ok()).collect();
    match call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await? {
        RoomResponse::Sent { event_ids, d1_round_trips } => Ok((parse(&event_ids), d1_round_trips)),
        RoomResponse::Appended { event_ids } => Ok((parse(&event_ids), 0)),
        _ => Err(unexpected::<RoomProto>()),
    }
}
