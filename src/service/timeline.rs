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

struct Head {
    room_id: Option<ruma::OwnedRoomId>,
    rules: Option<RoomVersionRules>,
    version: String,
    extremities: Vec<OwnedEventId>,
    depth: u64,
    group: Option<String>,
    group_len: u32,
    /// The known part of the current state (what the auth rules have needed so far).
    state: StateMap,
    /// Keys already looked up in D1 (present or known absent).
    loaded: HashSet<(String, String)>,
    events: BTreeMap<OwnedEventId, Pdu>,
    /// State keys written by earlier events of this batch.
    pending: Vec<(String, String)>,
}

/// Appends events to `room_id` (or creates the room when `room_id` is `None` and the first
/// event is `m.room.create`). All events are written in one batch; if any is refused,
/// nothing is written.
pub async fn append(db: &Db, config: &Config, room_id: Option<&RoomId>, news: Vec<NewEvent>, txn: Option<Txn>) -> Result<Vec<Pdu>> {
    append_or_prepare(db, config, room_id, news, txn, true).await
}

/// Builds, signs and authorises one event on top of the room's current state without
/// writing it: an invite of another server's user is signed by that server before it is
/// stored (spec: server-server-api, "Inviting to a room").
pub async fn prepare(db: &Db, config: &Config, room_id: &RoomId, new: NewEvent) -> Result<Pdu> {
    append_or_prepare(db, config, Some(room_id), vec![new], None, false).await?.into_iter().next().ok_or_else(|| Error::internal("no event"))
}

async fn append_or_prepare(
    db: &Db,
    config: &Config,
    room_id: Option<&RoomId>,
    news: Vec<NewEvent>,
    txn: Option<Txn>,
    write: bool,
) -> Result<Vec<Pdu>> {
    let mut head = match room_id {
        Some(r) => {
            let row = rooms::get_room(db, r.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?;
            let (_, rules) = version_rules(&row.room_version)?;
            let group_len = match &row.state_group {
                Some(g) => rooms::state_group_len(db, g).await?,
                None => 0,
            };
            Head {
                room_id: Some(r.to_owned()),
                rules: Some(rules),
                version: row.room_version.clone(),
                extremities: crate::store::graph::parse_extremities(row.extremities.as_deref(), row.head_event.as_deref()),
                depth: row.head_depth as u64,
                group: row.state_group.clone(),
                group_len,
                state: StateMap::new(),
                loaded: HashSet::new(),
                events: BTreeMap::new(),
                pending: vec![],
            }
        }
        None => Head {
            room_id: None,
            rules: None,
            version: String::new(),
            extremities: vec![],
            depth: 0,
            group: None,
            group_len: 0,
            state: StateMap::new(),
            loaded: HashSet::new(),
            events: BTreeMap::new(),
            pending: vec![],
        },
    };

    if let Some(t) = &txn {
        if let Some(existing) = rooms::txn_event(db, &t.user_id, &t.device_id, &t.key).await? {
            // Same transaction again: the same event, stored once.
            let row = rooms::get_event(db, &existing).await?.ok_or_else(|| Error::internal("txn without event"))?;
            return Ok(vec![row.pdu()?]);
        }
    }

    let mut stmts = Vec::new();
    let mut out = Vec::new();
    let created = room_id.is_none();
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
        let rules = head.rules.clone().expect("set above");
        if !created {
            load_needed(db, &mut head, &rules, &new).await?;
        }
        if let Some(target) = &new.redacts {
            check_redaction(db, &mut head, &new, target).await?;
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
                let mut full = match &before {
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
        let t = txn.as_ref().map(|t| rooms::TxnWrite { user: &t.user_id, device: &t.device_id, txn_id: &t.txn_id, key: &t.key });
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
        out.push(pdu);
    }

    let room = head.room_id.as_ref().ok_or_else(|| Error::internal("no events"))?.to_string();
    let last = out.last().ok_or_else(|| Error::internal("no events"))?;
    if created {
        stmts.insert(0, rooms::insert_room_stmt(db, &room, &head.version, last.sender.as_str())?);
    }
    stmts.push(crate::store::graph::set_head_stmt(db, &room, &head.extremities, last.depth, head.group.as_deref(), last.event_id.as_str())?);
    if write {
        db.batch(stmts).await?;
    }
    Ok(out)
}

/// The one write path of room events: appends them ([`append`]) and then fans them out to
/// the members (`notify::after_append`: push actions, sync wake-ups, pushes). Local sends
/// reach it inside the `Room` Durable Object; `createRoom` and upgrades call it directly for
/// the new room, which nobody else can know yet. A refused event is an error and nothing is
/// written. Once the events are committed a fan-out failure is logged, not returned: the
/// client's retry would otherwise send them twice.
pub async fn write(env: &worker::Env, db: &Db, config: &Config, room_id: Option<&RoomId>, news: Vec<NewEvent>, txn: Option<Txn>) -> Result<Vec<Pdu>> {
    let pdus = append(db, config, room_id, news, txn).await?;
    if let Err(e) = crate::service::notify::after_append(env, db, config, &pdus).await {
        let room = pdus.first().map(|p| p.room_id.to_string()).unwrap_or_default();
        worker::console_error!("fan-out after append in {room}: {e}");
    }
    Ok(pdus)
}

impl Head {
    fn pending_state(&self) -> Vec<((String, String), OwnedEventId)> {
        self.pending.iter().filter_map(|k| self.state.get(k).map(|e| (k.clone(), e.clone()))).collect()
    }
}

/// Loads (once) the current-state entries and events the auth rules need for `new`.
async fn load_needed(db: &Db, head: &mut Head, rules: &RoomVersionRules, new: &NewEvent) -> Result<()> {
    let room = head.room_id.clone().expect("loaded room");
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
        // Their auth events too: the state-independent rules look at them.
        let auth: Vec<OwnedEventId> = head.events.values().flat_map(|p| p.auth_events.clone()).filter(|e| !head.events.contains_key(e)).collect();
        if !auth.is_empty() {
            head.events.extend(rooms::get_pdus(db, &auth).await?);
        }
    }
    Ok(())
}

/// A redaction is allowed for the original sender, or for users at or above the room's
/// `redact` power level (spec: client-server-api, "Redactions"; the auth rules leave this
/// check to the server from room v3 on).
async fn check_redaction(db: &Db, head: &mut Head, new: &NewEvent, target: &EventId) -> Result<()> {
    let room = head.room_id.clone().ok_or_else(|| err!(NotFound, "Unknown room"))?;
    let row = rooms::get_event(db, target.as_str()).await?.filter(|r| r.room_id == room.as_str());
    let Some(row) = row else {
        return Err(err!(NotFound, "Event not found"));
    };
    if row.sender == new.sender.as_str() {
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
    use crate::durable_objects::protocol::{RoomProto, RoomRequest, RoomResponse};
    use crate::service::objects::{call, unexpected};
    let request = RoomRequest::Append { room_id: room_id.to_string(), events: news.iter().map(NewEventWire::from_new).collect(), txn };
    match call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await? {
        RoomResponse::Appended { event_ids } => Ok(event_ids.iter().filter_map(|s| EventId::parse(s).ok()).collect()),
        _ => Err(unexpected::<RoomProto>()),
    }
}
