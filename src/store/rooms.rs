//! Rooms, events, state groups, current state, memberships, transaction IDs, aliases.

use ruma::events::TimelineEventType;
use std::collections::{BTreeMap, HashSet};

use ruma::{EventId, OwnedEventId, RoomId};
use serde::Deserialize;
use serde_json::Value;
use worker::D1PreparedStatement;

use crate::core::room::pdu::{parse_stored, to_json_string, Pdu};
use crate::core::room::state::{apply, StateEntry, StateMap};
use crate::core::time::now_ms;
use crate::error::{Error, Result};
use crate::params;
use crate::store::db::Db;

/// D1 allows 100 bound parameters per statement; stay under it.
const MAX_PARAMS: usize = 90;

#[derive(Debug, Deserialize, Clone)]
pub struct RoomRow {
    pub room_version: String,
    pub is_public: i64,
    pub head_event: Option<String>,
    /// Forward extremities (JSON array; NULL while the room is linear: `head_event`).
    pub extremities: Option<String>,
    pub head_depth: f64,
    pub state_group: Option<String>,
}

pub async fn get_room(db: &Db, room_id: &str) -> Result<Option<RoomRow>> {
    db.first(
        "SELECT room_id, room_version, creator, is_public, head_event, extremities, head_depth, state_group FROM rooms WHERE room_id = ?",
        params![room_id],
    )
    .await
}

#[derive(Debug, Deserialize, Clone)]
pub struct EventRow {
    pub event_id: String,
    pub room_id: String,
    pub stream: f64,
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub origin_server_ts: f64,
    pub json: String,
    pub state_after: Option<String>,
    pub membership: Option<String>,
    pub redacted_by: Option<String>,
    pub txn_id: Option<String>,
    pub txn_device: Option<String>,
    pub relates_to: Option<String>,
    pub rel_type: Option<String>,
}

pub const EVENT_COLUMNS: &str = "event_id, room_id, stream, type, state_key, sender, origin_server_ts, json, \
     state_before, state_after, membership, redacted_by, txn_id, txn_device, relates_to, rel_type";

impl EventRow {
    /// The stream position for sync, which only reads positive positions (backfilled
    /// events, below 0, saturate to 0).
    pub fn stream(&self) -> u64 {
        self.stream as u64
    }

    /// The stream position, negative for events backfilled after the join (`/messages`,
    /// `/context`, `/relations` tokens and history visibility order by it).
    pub fn pos(&self) -> i64 {
        self.stream as i64
    }

    pub fn pdu(&self) -> Result<Pdu> {
        let id = EventId::parse(&self.event_id).map_err(Error::internal)?;
        let room = RoomId::parse(&self.room_id).map_err(Error::internal)?;
        Pdu::from_json(id, parse_stored(&self.json)?, Some(&room))
    }
}

/// Events by ID (any order; missing ones are left out).
pub async fn get_events(db: &Db, ids: &[String]) -> Result<Vec<EventRow>> {
    let mut out = get_events_in_timeline(db, ids).await?;
    // State of rooms joined over federation may be outliers (not in the timeline).
    if out.len() < ids.len() {
        let found: HashSet<&str> = out.iter().map(|r| r.event_id.as_str()).collect();
        let missing: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !found.contains(id)).collect();
        let extra = crate::store::graph::outlier_rows(db, &missing).await?;
        out.extend(extra);
    }
    Ok(out)
}

/// Timeline events by ID (no outliers).
pub async fn get_events_in_timeline(db: &Db, ids: &[String]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id IN ({marks})");
        out.extend(db.all::<EventRow>(&sql, chunk.iter().map(|s| Value::String(s.clone())).collect()).await?);
    }
    Ok(out)
}

pub async fn get_event(db: &Db, id: &str) -> Result<Option<EventRow>> {
    Ok(get_events(db, &[id.to_owned()]).await?.into_iter().next())
}

#[derive(Deserialize)]
struct StateRow {
    #[serde(rename = "type")]
    kind: String,
    state_key: String,
    event_id: String,
}

fn rows_to_map(rows: Vec<StateRow>) -> StateMap {
    rows.into_iter().filter_map(|r| EventId::parse(&r.event_id).ok().map(|e| ((r.kind, r.state_key), e))).collect()
}

/// Some keys of the current state (the ones the auth rules need).
pub async fn current_state_keys(db: &Db, room_id: &str, keys: &[(String, String)]) -> Result<StateMap> {
    let mut map = StateMap::new();
    for chunk in keys.chunks(MAX_PARAMS / 2 - 1) {
        let cond = vec!["(type = ? AND state_key = ?)"; chunk.len()].join(" OR ");
        let mut p = params![room_id];
        for (t, k) in chunk {
            p.push(Value::String(t.clone()));
            p.push(Value::String(k.clone()));
        }
        let sql = format!("SELECT type, state_key, event_id FROM current_state WHERE room_id = ? AND ({cond})");
        map.extend(rows_to_map(db.all(&sql, p).await?));
    }
    Ok(map)
}

/// The whole current state.
pub async fn current_state(db: &Db, room_id: &str) -> Result<StateMap> {
    Ok(rows_to_map(db.all("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", params![room_id]).await?))
}

/// The current state events of one type (e.g. all members).
pub async fn current_state_of_type(db: &Db, room_id: &str, kind: &str) -> Result<StateMap> {
    Ok(rows_to_map(db.all("SELECT type, state_key, event_id FROM current_state WHERE room_id = ? AND type = ?", params![room_id, kind]).await?))
}

#[derive(Deserialize)]
struct GroupRow {
    delta: String,
    chain_len: f64,
}

/// The state map of a state group: one recursive query walks the delta chain back to its
/// full snapshot.
pub async fn load_state_group(db: &Db, group: &str) -> Result<(StateMap, u32)> {
    let rows: Vec<GroupRow> = db.all(STATE_GROUP_CHAIN, params![group]).await?;
    state_of_chain(rows)
}

const STATE_GROUP_CHAIN: &str = "WITH RECURSIVE chain(id, prev_id, delta, chain_len) AS (
                 SELECT id, prev_id, delta, chain_len FROM state_groups WHERE id = ?
                 UNION ALL
                 SELECT g.id, g.prev_id, g.delta, g.chain_len FROM state_groups g JOIN chain c ON g.id = c.prev_id
             ) SELECT delta, chain_len FROM chain ORDER BY chain_len ASC";

/// The state maps of several state groups, in their order, in one batch (one round trip).
pub async fn load_state_groups(db: &Db, groups: &[&str]) -> Result<Vec<StateMap>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let stmts = groups.iter().map(|g| db.stmt(STATE_GROUP_CHAIN, params![g])).collect::<Result<Vec<_>>>()?;
    db.batch_rows(stmts)
        .await?
        .into_iter()
        .map(|rows| state_of_chain(rows.into_iter().map(serde_json::from_value).collect::<std::result::Result<Vec<GroupRow>, _>>()?).map(|(m, _)| m))
        .collect()
}

fn state_of_chain(rows: Vec<GroupRow>) -> Result<(StateMap, u32)> {
    let len = rows.last().map(|r| r.chain_len as u32).unwrap_or(0);
    let mut map = StateMap::new();
    for r in rows {
        let delta: Vec<StateEntry> = serde_json::from_str(&r.delta)?;
        apply(&mut map, &delta);
    }
    Ok((map, len))
}

/// Statement storing a state group.
pub fn insert_state_group(db: &Db, id: &str, room_id: &str, prev: Option<&str>, delta: &[StateEntry], chain_len: u32) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT OR IGNORE INTO state_groups (id, room_id, prev_id, delta, chain_len) VALUES (?, ?, ?, ?, ?)",
        params![id, room_id, prev, serde_json::to_string(delta)?, chain_len],
    )
}

pub async fn state_group_len(db: &Db, group: &str) -> Result<u32> {
    #[derive(Deserialize)]
    struct R {
        chain_len: f64,
    }
    Ok(db.first::<R>("SELECT chain_len FROM state_groups WHERE id = ?", params![group]).await?.map(|r| r.chain_len as u32).unwrap_or(0))
}

/// Where an event goes in the append batch.
pub struct EventWrite<'a> {
    pub pdu: &'a Pdu,
    pub state_before: Option<&'a str>,
    pub state_after: Option<&'a str>,
    pub txn: Option<TxnWrite<'a>>,
    /// Whether a state event also moves `current_state`/`memberships` (a linear append);
    /// events from other servers move them by state resolution instead
    /// (`store::graph::current_state_stmts`).
    pub project: bool,
    /// For a redaction: whether its sender may redact other users' events (the room's
    /// `redact` level). Without it the redaction applies only to events of its sender's own
    /// server (spec: rooms/v3, "Handling redactions"; from v3 the auth rules leave this to
    /// the server, and it is how a remote server's user is kept from redacting ours).
    pub redacts_others: bool,
}

/// The client transaction an event was sent in: `txn_id` as the client gave it (echoed in
/// `unsigned`), `key` the scoped idempotency key (`core::txn::txn_key`).
pub struct TxnWrite<'a> {
    pub user: &'a str,
    pub device: &'a str,
    pub txn_id: &'a str,
    pub key: &'a str,
}

fn relation(content: &Value) -> (Option<String>, Option<String>) {
    let r = &content["m.relates_to"];
    let id = r["event_id"].as_str().map(str::to_owned);
    let t = r["rel_type"].as_str().map(str::to_owned);
    match (id, t) {
        (Some(i), Some(t)) => (Some(i), Some(t)),
        _ => (None, None),
    }
}

/// The next stream position (appends).
const NEXT_POS: &str = "(SELECT COALESCE(MAX(stream), 0) + 1 FROM events)";
/// A stream position below every other one, and below 0: events backfilled after the join
/// sort before the whole room in `/messages` and never reach `/sync` (which reads positions
/// after its token), as in Synapse.
const BELOW_POS: &str = "(SELECT COALESCE(MIN(MIN(stream), 0), 0) - 1 FROM events)";

/// Statements appending one event: the event row with the next stream position, the
/// current state and membership projections, the redaction mark and the transaction ID.
pub fn append_stmts(db: &Db, w: &EventWrite<'_>) -> Result<Vec<D1PreparedStatement>> {
    event_stmts(db, w, NEXT_POS)
}

/// [`append_stmts`] for an event backfilled after the join: at a stream position below all
/// others (so a batch is written newest first).
pub fn backfill_stmts(db: &Db, w: &EventWrite<'_>) -> Result<Vec<D1PreparedStatement>> {
    event_stmts(db, w, BELOW_POS)
}

/// Moves a stored event below all others (an event stored at the join out of its place in
/// history, once the history before it is backfilled).
pub fn move_below_stmt(db: &Db, event_id: &str) -> Result<D1PreparedStatement> {
    db.stmt(&format!("UPDATE events SET stream = {BELOW_POS} WHERE event_id = ?"), params![event_id])
}

fn event_stmts(db: &Db, w: &EventWrite<'_>, pos: &str) -> Result<Vec<D1PreparedStatement>> {
    let p = w.pdu;
    let content = p.content_value();
    let membership =
        if p.kind == TimelineEventType::RoomMember { content.get("membership").and_then(Value::as_str).map(str::to_owned) } else { None };
    let (relates_to, rel_type) = relation(&content);
    let (txn_device, txn_id) = match &w.txn {
        Some(t) => (Some(t.device), Some(t.txn_id)),
        None => (None, None),
    };
    let room = p.room_id.as_str();
    let mut stmts = vec![db.stmt(
        &format!(
            "INSERT INTO events (event_id, room_id, stream, depth, type, state_key, sender, origin_server_ts, json,
             state_before, state_after, membership, relates_to, rel_type, txn_id, txn_device)
         VALUES (?1, ?2, {pos}, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        params![
            p.event_id.as_str(),
            room,
            p.depth,
            p.kind.to_string(),
            p.state_key,
            p.sender.as_str(),
            u64::from(p.origin_server_ts.0),
            to_json_string(p),
            w.state_before,
            w.state_after,
            membership,
            relates_to,
            rel_type,
            txn_id,
            txn_device
        ],
    )?];
    stmts.push(crate::store::sync::bump_stmt(db, room, p.event_id.as_str(), &p.kind.to_string(), p.state_key.as_deref())?);
    if let Some(k) = p.state_key.as_ref().filter(|_| w.project) {
        stmts.push(db.stmt(
            "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)
             ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
            params![room, p.kind.to_string(), k, p.event_id.as_str()],
        )?);
        if let Some(m) = &membership {
            stmts.push(db.stmt(
                "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
                 VALUES (?1, ?2, ?3, ?4, (SELECT stream FROM events WHERE event_id = ?4))
                 ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
                   event_id = excluded.event_id, stream = excluded.stream, forgotten = 0",
                params![room, k, m, p.event_id.as_str()],
            )?);
        }
    }
    if let Some(r) = &p.redacts {
        if p.kind == TimelineEventType::RoomRedaction {
            stmts.push(db.stmt(
                "UPDATE events SET redacted_by = ?1 WHERE event_id = ?2 AND room_id = ?3 AND redacted_by IS NULL
                 AND (?4 OR substr(sender, instr(sender, ':') + 1) = ?5)",
                params![p.event_id.as_str(), r.as_str(), room, w.redacts_others, p.sender.server_name().as_str()],
            )?);
        }
    }
    if let Some(t) = &w.txn {
        // `txn_ids.txn_id` holds the scoped key (rows written before scoping hold bare IDs,
        // which no scoped key equals: at worst an old retry is not recognised). A plain
        // INSERT: a transaction already stored fails the whole batch ([`is_unique_conflict`]),
        // so the `Room` object need not look the ID up before appending.
        stmts.push(db.stmt(
            "INSERT INTO txn_ids (user_id, device_id, txn_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?)",
            params![t.user, t.device, t.key, p.event_id.as_str(), now_ms()],
        )?);
    }
    Ok(stmts)
}

/// The event stored for a transaction; `key` is the scoped key (`core::txn::txn_key`).
pub async fn txn_event(db: &Db, user: &str, device: &str, key: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
    }
    Ok(db
        .first::<R>("SELECT event_id FROM txn_ids WHERE user_id = ? AND device_id = ? AND txn_id = ?", params![user, device, key])
        .await?
        .map(|r| r.event_id))
}

pub async fn membership(db: &Db, room_id: &str, user_id: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct R {
        membership: String,
    }
    Ok(db.first::<R>("SELECT membership FROM memberships WHERE room_id = ? AND user_id = ?", params![room_id, user_id]).await?.map(|r| r.membership))
}

pub async fn rooms_with_membership(db: &Db, user_id: &str, membership: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
    }
    Ok(db
        .all::<R>("SELECT room_id FROM memberships WHERE user_id = ? AND membership = ?", params![user_id, membership])
        .await?
        .into_iter()
        .map(|r| r.room_id)
        .collect())
}

/// Members of a room with a given membership (user IDs).
pub async fn members_with(db: &Db, room_id: &str, membership: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        user_id: String,
    }
    Ok(db
        .all::<R>("SELECT user_id FROM memberships WHERE room_id = ? AND membership = ?", params![room_id, membership])
        .await?
        .into_iter()
        .map(|r| r.user_id)
        .collect())
}

/// How many users are joined to a room.
pub async fn joined_count(db: &Db, room_id: &str) -> Result<u64> {
    #[derive(Deserialize)]
    struct R {
        n: f64,
    }
    Ok(db
        .first::<R>("SELECT COUNT(*) AS n FROM memberships WHERE room_id = ? AND membership = 'join'", params![room_id])
        .await?
        .map(|r| r.n as u64)
        .unwrap_or(0))
}

/// The rooms both users are joined to, in room-ID order.
pub async fn mutual_joined_rooms(db: &Db, user_a: &str, user_b: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
    }
    Ok(db
        .all::<R>(
            "SELECT a.room_id FROM memberships a JOIN memberships b ON b.room_id = a.room_id
             WHERE a.user_id = ? AND a.membership = 'join' AND b.user_id = ? AND b.membership = 'join'
             ORDER BY a.room_id",
            params![user_a, user_b],
        )
        .await?
        .into_iter()
        .map(|r| r.room_id)
        .collect())
}

pub async fn forget(db: &Db, room_id: &str, user_id: &str) -> Result<()> {
    db.run("UPDATE memberships SET forgotten = 1 WHERE room_id = ? AND user_id = ?", params![room_id, user_id]).await?;
    Ok(())
}

/// A page of events of a room between stream positions (exclusive `after`, inclusive
/// `up_to`), in the given direction.
pub async fn events_page(db: &Db, room_id: &str, after: i64, up_to: i64, backwards: bool, limit: u32) -> Result<Vec<EventRow>> {
    let order = if backwards { "DESC" } else { "ASC" };
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream {order} LIMIT ?");
    db.all(&sql, params![room_id, after, up_to, limit]).await
}

/// Which of `ids` are in the timeline (IDs only).
pub async fn in_timeline(db: &Db, ids: &[String]) -> Result<HashSet<String>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
    }
    let mut out = HashSet::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT event_id FROM events WHERE event_id IN ({marks})");
        out.extend(db.all::<R>(&sql, chunk.iter().map(|s| Value::String(s.clone())).collect()).await?.into_iter().map(|r| r.event_id));
    }
    Ok(out)
}

/// A timeline event's ID, depth and stream position.
#[derive(Deserialize)]
pub struct PlacedRow {
    pub event_id: String,
    pub depth: f64,
    pub stream: f64,
}

/// Events stored at the join (no state of their own: `state_after` NULL) below stream
/// position `below`, at most `max_depth` deep: out of place once history down to
/// `max_depth` is backfilled.
pub async fn historical_below(db: &Db, room_id: &str, below: i64, max_depth: u64) -> Result<Vec<PlacedRow>> {
    db.all(
        "SELECT event_id, depth, stream FROM events WHERE room_id = ? AND stream < ? AND state_after IS NULL AND depth <= ? ORDER BY stream DESC LIMIT 500",
        params![room_id, below, max_depth],
    )
    .await
}

/// All membership changes of one user in a room, and the room's history-visibility changes
/// up to `up_to`, in stream order: what history visibility needs for a page of events (the
/// user's later joins matter too: spec rule 3 for `shared`).
pub async fn visibility_history(db: &Db, room_id: &str, user_id: &str, up_to: i64) -> Result<Vec<EventRow>> {
    db.all(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND
               ((type = 'm.room.member' AND state_key = ?) OR (type = 'm.room.history_visibility' AND stream <= ?))
             ORDER BY stream ASC"
        ),
        params![room_id, user_id, up_to],
    )
    .await
}

/// Events by ID, parsed, keyed by ID: timeline events and outliers (never rejected ones).
pub async fn get_pdus(db: &Db, ids: &[OwnedEventId]) -> Result<BTreeMap<OwnedEventId, Pdu>> {
    let uniq: Vec<String> = ids.iter().map(|e| e.to_string()).collect::<HashSet<_>>().into_iter().collect();
    let mut out = BTreeMap::new();
    for row in get_events(db, &uniq).await? {
        let p = row.pdu()?;
        out.insert(p.event_id.clone(), p);
    }
    // Auth-chain and state events of rooms joined over federation may be outliers.
    let missing: Vec<&str> = uniq.iter().map(String::as_str).filter(|id| !out.keys().any(|k| k.as_str() == *id)).collect();
    if !missing.is_empty() {
        out.extend(crate::store::graph::outlier_pdus(db, &missing).await?);
    }
    Ok(out)
}

// ---- aliases ----

pub async fn alias_room(db: &Db, alias: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
    }
    Ok(db.first::<R>("SELECT room_id FROM room_aliases WHERE alias = ?", params![alias]).await?.map(|r| r.room_id))
}

/// Inserts an alias; `false` if it exists (the primary key is the guard).
pub async fn insert_alias(db: &Db, alias: &str, room_id: &str, creator: &str) -> Result<bool> {
    db.insert_unique("INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, ?)", params![alias, room_id, creator, now_ms()])
        .await
}

/// An alias's room and the user who created it.
#[derive(Deserialize)]
pub struct AliasRow {
    pub room_id: String,
    pub creator: String,
}

pub async fn get_alias(db: &Db, alias: &str) -> Result<Option<AliasRow>> {
    db.first("SELECT room_id, creator FROM room_aliases WHERE alias = ?", params![alias]).await
}

pub async fn delete_alias(db: &Db, alias: &str) -> Result<()> {
    db.run("DELETE FROM room_aliases WHERE alias = ?", params![alias]).await?;
    Ok(())
}

/// The local aliases of a room, sorted.
pub async fn room_aliases(db: &Db, room_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        alias: String,
    }
    Ok(db.all::<R>("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", params![room_id]).await?.into_iter().map(|r| r.alias).collect())
}

/// Points every alias of `from` at `to` (room upgrades).
pub async fn move_aliases(db: &Db, from: &str, to: &str) -> Result<()> {
    db.run("UPDATE room_aliases SET room_id = ? WHERE room_id = ?", params![to, from]).await?;
    Ok(())
}

// ---- room directory ----

/// Publishes a room in the directory or takes it out.
pub async fn set_public(db: &Db, room_id: &str, public: bool) -> Result<()> {
    db.run("UPDATE rooms SET is_public = ? WHERE room_id = ?", params![i64::from(public), room_id]).await?;
    Ok(())
}

/// Moves the directory listing from one room to another (room upgrades).
pub async fn move_public(db: &Db, from: &str, to: &str) -> Result<()> {
    db.run("UPDATE rooms SET is_public = CASE room_id WHEN ? THEN 1 ELSE 0 END WHERE room_id IN (?, ?)", params![to, to, from]).await?;
    Ok(())
}

/// The published rooms with their joined-member counts, most members first.
pub async fn public_rooms(db: &Db) -> Result<Vec<(String, u64)>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
        joined: f64,
    }
    let rows: Vec<R> = db
        .all(
            "SELECT r.room_id AS room_id,
                    (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined
             FROM rooms r WHERE r.is_public = 1 ORDER BY joined DESC, r.room_id ASC",
            vec![],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.room_id, r.joined as u64)).collect())
}

// ---- room writes outside the timeline ----

/// Statement creating the row of a new room.
pub fn insert_room_stmt(db: &Db, room_id: &str, version: &str, creator: &str) -> Result<D1PreparedStatement> {
    db.stmt("INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)", params![room_id, version, creator, now_ms()])
}

// ---- reading events ----

/// Up to 50 events of a room from `ts` on (`forward`) or back from it, closest first.
pub async fn events_near_ts(db: &Db, room_id: &str, ts: u64, forward: bool) -> Result<Vec<EventRow>> {
    let sql = if forward {
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND origin_server_ts >= ? ORDER BY origin_server_ts ASC, stream ASC LIMIT 50")
    } else {
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND origin_server_ts <= ? ORDER BY origin_server_ts DESC, stream DESC LIMIT 50")
    };
    db.all(&sql, params![room_id, ts]).await
}

/// The last event of a room at or before stream position `pos` (the newest first).
pub async fn last_events_at(db: &Db, room_id: &str, pos: u64, limit: u32) -> Result<Vec<EventRow>> {
    db.all(
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND stream <= ? ORDER BY stream DESC LIMIT ?"),
        params![room_id, pos, limit],
    )
    .await
}

/// A user's membership row: the membership and the event that set it.
#[derive(Deserialize)]
pub struct MembershipRow {
    pub membership: String,
    pub event_id: String,
}

pub async fn membership_row(db: &Db, room_id: &str, user_id: &str) -> Result<Option<MembershipRow>> {
    db.first("SELECT membership, event_id FROM memberships WHERE room_id = ? AND user_id = ?", params![room_id, user_id]).await
}

// ---- relations and threads ----

/// Per thread root among `roots`: how many thread events, the stream of the latest, and
/// how many `user` sent.
#[derive(Deserialize)]
pub struct ThreadSummaryRow {
    pub relates_to: String,
    pub count: f64,
    pub latest: f64,
    pub mine: f64,
}

pub async fn thread_summaries(db: &Db, user: &str, roots: &[String]) -> Result<Vec<ThreadSummaryRow>> {
    let mut out = Vec::new();
    for chunk in roots.chunks(80) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut p = params![user];
        p.extend(chunk.iter().map(|s| Value::String(s.clone())));
        out.extend(
            db.all::<ThreadSummaryRow>(
                &format!(
                    "SELECT relates_to, COUNT(*) AS count, MAX(stream) AS latest, SUM(sender = ?) AS mine
                     FROM events WHERE rel_type = 'm.thread' AND relates_to IN ({marks}) GROUP BY relates_to"
                ),
                p,
            )
            .await?,
        );
    }
    Ok(out)
}

/// The events of a room that relate to any of `parents`.
pub async fn related_events(db: &Db, room_id: &str, parents: &[String]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in parents.chunks(80) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut p = params![room_id];
        p.extend(chunk.iter().map(|s| Value::String(s.clone())));
        out.extend(db.all::<EventRow>(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND relates_to IN ({marks})"), p).await?);
    }
    Ok(out)
}

/// A thread root and the stream position of its latest event.
#[derive(Deserialize)]
pub struct ThreadRow {
    pub root: String,
    pub latest: f64,
}

/// Thread roots of a room by latest activity before `before`; with `participated_by`,
/// only threads that user started or replied to.
pub async fn threads(db: &Db, room_id: &str, before: u64, participated_by: Option<&str>, limit: u32) -> Result<Vec<ThreadRow>> {
    let (sql, user) = match participated_by {
        Some(u) => (
            "SELECT e.relates_to AS root, MAX(e.stream) AS latest FROM events e
             WHERE e.room_id = ?1 AND e.rel_type = 'm.thread'
             GROUP BY e.relates_to
             HAVING MAX(e.stream) < ?2 AND (SUM(e.sender = ?3) > 0 OR
               (SELECT sender FROM events r WHERE r.event_id = e.relates_to) = ?3)
             ORDER BY latest DESC LIMIT ?4",
            u,
        ),
        None => (
            "SELECT e.relates_to AS root, MAX(e.stream) AS latest FROM events e
             WHERE e.room_id = ?1 AND e.rel_type = 'm.thread' AND ?3 = ?3
             GROUP BY e.relates_to HAVING MAX(e.stream) < ?2 ORDER BY latest DESC LIMIT ?4",
            "",
        ),
    };
    db.all(sql, params![room_id, before, user, limit]).await
}

// ---- reports and the user directory ----

/// A report of a room, an event or a user.
pub struct Report<'a> {
    pub reporter: &'a str,
    pub room_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub score: Option<i64>,
}

pub async fn insert_report(db: &Db, r: &Report<'_>) -> Result<()> {
    db.run(
        "INSERT INTO reports (reporter, room_id, event_id, user_id, reason, score, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![r.reporter, r.room_id, r.event_id, r.user_id, r.reason, r.score, now_ms()],
    )
    .await?;
    Ok(())
}

/// A user the directory search found.
#[derive(Deserialize)]
pub struct DirectoryUser {
    pub user_id: String,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

/// Users matching `term` (lower case, on user ID or display name) whom `searcher` shares a
/// room with or who are in a public room (join rule `public` or `world_readable` history).
pub async fn search_user_directory(db: &Db, searcher: &str, term: &str, limit: u32) -> Result<Vec<DirectoryUser>> {
    let escaped = term.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    db.all(
        "SELECT u.user_id, u.displayname, u.avatar_url FROM users u
         WHERE u.deactivated = 0
           AND (lower(u.user_id) LIKE ?1 ESCAPE '\\' OR lower(COALESCE(u.displayname, '')) LIKE ?1 ESCAPE '\\')
           AND (u.user_id = ?2
             OR u.user_id IN (SELECT m2.user_id FROM memberships m1 JOIN memberships m2 ON m1.room_id = m2.room_id
                              WHERE m1.user_id = ?2 AND m1.membership = 'join' AND m2.membership = 'join')
             OR u.user_id IN (SELECT m.user_id FROM memberships m WHERE m.membership = 'join' AND m.room_id IN
                  (SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id
                   WHERE (cs.type = 'm.room.join_rules' AND json_extract(e.json, '$.content.join_rule') = 'public')
                      OR (cs.type = 'm.room.history_visibility'
                          AND json_extract(e.json, '$.content.history_visibility') = 'world_readable'))))
         ORDER BY u.displayname IS NULL, u.user_id LIMIT ?3",
        params![pattern, searcher, limit],
    )
    .await
}

/// What the `Room` object loads once to append without reading D1 again: the room row and
/// the length of its current state group's delta chain. One round trip.
pub struct AppendHead {
    pub room: RoomRow,
    pub group_len: u32,
}

/// [`AppendHead`] of a room, `None` for an unknown room.
pub async fn append_head(db: &Db, room_id: &str) -> Result<Option<AppendHead>> {
    #[derive(Deserialize)]
    struct Len {
        chain_len: f64,
    }
    let rows = db
        .batch_rows(vec![
            db.stmt(
                "SELECT room_id, room_version, creator, is_public, head_event, extremities, head_depth, state_group FROM rooms WHERE room_id = ?",
                params![room_id],
            )?,
            db.stmt("SELECT g.chain_len FROM rooms r JOIN state_groups g ON g.id = r.state_group WHERE r.room_id = ?", params![room_id])?,
        ])
        .await?;
    let mut rows = rows.into_iter();
    let Some(room) = rows.next().unwrap_or_default().into_iter().next() else { return Ok(None) };
    let room: RoomRow = serde_json::from_value(room)?;
    let group_len =
        rows.next().unwrap_or_default().into_iter().next().and_then(|v| serde_json::from_value::<Len>(v).ok()).map(|l| l.chain_len as u32);
    Ok(Some(AppendHead { room, group_len: group_len.unwrap_or(0) }))
}

/// Whether a D1 batch failed on a unique constraint (then nothing of it was written): above
/// all the `txn_ids` primary key refusing a second row for one transaction, an append batch
/// holding an already used transaction ID.
pub fn is_unique_conflict(e: &Error) -> bool {
    let msg = e.to_string();
    msg.contains("UNIQUE constraint failed") || msg.contains("PRIMARY KEY")
}

// ---- /messages in one batch ----

/// One page of a room's events: positions after `after` (exclusive) up to `up_to`
/// (inclusive), `limit` of them, in the given direction (the read of [`events_page`]).
#[derive(Clone, Copy)]
pub struct PageBounds<'a> {
    pub room_id: &'a str,
    pub after: i64,
    pub up_to: i64,
    pub backwards: bool,
    pub limit: u32,
}

impl PageBounds<'_> {
    /// `SELECT {cols}` over the page, in its order; parameters: [`PageBounds::params`].
    fn sql(&self, cols: &str) -> String {
        let order = if self.backwards { "DESC" } else { "ASC" };
        format!("SELECT {cols} FROM events WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream {order} LIMIT ?")
    }

    fn params(&self) -> Vec<Value> {
        params![self.room_id, self.after, self.up_to, self.limit]
    }
}

/// What `/messages` needs for its first page, read in ONE batch (one snapshot): the room,
/// the reader's membership, the newest position (when the request names no `from`), the page,
/// the reader's membership changes and the room's history-visibility changes up to the
/// page's end, the redaction events of the page's redacted events, and the thread summaries
/// of the page's events with each thread's latest event.
pub struct MessagesSnapshot {
    pub room: Option<RoomRow>,
    pub membership: Option<String>,
    pub max_stream: Option<u64>,
    pub page: Vec<EventRow>,
    pub history: Vec<EventRow>,
    pub redactions: Vec<EventRow>,
    pub summaries: Vec<ThreadSummaryRow>,
    pub thread_latest: Vec<EventRow>,
}

/// Reads a [`MessagesSnapshot`] in one D1 batch that starts with the caller's `lead`
/// statements (read-only: the token check), whose rows come back first.
pub async fn messages_snapshot(
    db: &Db,
    lead: Vec<D1PreparedStatement>,
    user_id: &str,
    page: PageBounds<'_>,
    want_max: bool,
) -> Result<(Vec<Vec<Value>>, MessagesSnapshot)> {
    let n_lead = lead.len();
    let ids_of_page = page.sql("event_id");
    let cols =
        |t: &str, prefix: &str| EVENT_COLUMNS.split(',').map(|c| format!("{t}.{c} AS {prefix}{c}", c = c.trim())).collect::<Vec<_>>().join(", ");
    let mut stmts = lead;
    stmts.push(db.stmt(
        "SELECT room_id, room_version, creator, is_public, head_event, extremities, head_depth, state_group FROM rooms WHERE room_id = ?",
        params![page.room_id],
    )?);
    stmts.push(db.stmt("SELECT membership FROM memberships WHERE room_id = ? AND user_id = ?", params![page.room_id, user_id])?);
    // The page, each event with its redaction event's columns (`r__…`) when it is redacted.
    let order = if page.backwards { "DESC" } else { "ASC" };
    stmts.push(db.stmt(
        &format!(
            "SELECT {}, {} FROM events e LEFT JOIN events r ON r.event_id = e.redacted_by
             WHERE e.room_id = ? AND e.stream > ? AND e.stream <= ? ORDER BY e.stream {order} LIMIT ?",
            cols("e", ""),
            cols("r", REDACTION_PREFIX)
        ),
        page.params(),
    )?);
    stmts.push(db.stmt(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ? AND
               ((type = 'm.room.member' AND state_key = ?) OR (type = 'm.room.history_visibility' AND stream <= ?))
             ORDER BY stream ASC"
        ),
        params![page.room_id, user_id, page.up_to],
    )?);
    // Per thread root in the page: the summary, with the thread's latest event.
    let mut p = params![user_id];
    p.extend(page.params());
    stmts.push(db.stmt(
        &format!(
            "SELECT t.count AS t_count, t.mine AS t_mine, {} FROM
               (SELECT relates_to, COUNT(*) AS count, MAX(stream) AS latest, SUM(sender = ?) AS mine
                FROM events WHERE rel_type = 'm.thread' AND relates_to IN ({ids_of_page}) GROUP BY relates_to) t
             JOIN events e ON e.stream = t.latest",
            cols("e", "")
        ),
        p,
    )?);
    if want_max {
        stmts.push(db.stmt("SELECT MAX(stream) AS m FROM events", vec![])?);
    }
    let mut rows = db.batch_rows(stmts).await?;
    let rest = rows.split_off(n_lead.min(rows.len()));
    let mut rest = rest.into_iter();
    let mut next = || rest.next().unwrap_or_default();
    fn parse<T: serde::de::DeserializeOwned>(rows: Vec<Value>) -> Result<Vec<T>> {
        rows.into_iter().map(|v| serde_json::from_value(v).map_err(Error::from)).collect()
    }
    #[derive(Deserialize)]
    struct M {
        membership: String,
    }
    #[derive(Deserialize)]
    struct Max {
        m: Option<f64>,
    }
    #[derive(Deserialize)]
    struct Thread {
        t_count: f64,
        t_mine: f64,
        #[serde(flatten)]
        latest: EventRow,
    }
    let room = parse::<RoomRow>(next())?.into_iter().next();
    let membership = parse::<M>(next())?.into_iter().next().map(|m| m.membership);
    let mut page_rows = Vec::new();
    let mut redactions = Vec::new();
    for v in next() {
        let (row, redaction) = split_prefixed(v, REDACTION_PREFIX);
        page_rows.push(serde_json::from_value::<EventRow>(row)?);
        if redaction.get("event_id").is_some_and(|id| !id.is_null()) {
            redactions.push(serde_json::from_value::<EventRow>(redaction)?);
        }
    }
    let history = parse(next())?;
    let mut summaries = Vec::new();
    let mut thread_latest = Vec::new();
    for t in parse::<Thread>(next())? {
        let Some(root) = t.latest.relates_to.clone() else { continue };
        summaries.push(ThreadSummaryRow { relates_to: root, count: t.t_count, latest: t.latest.stream, mine: t.t_mine });
        thread_latest.push(t.latest);
    }
    let max_stream = if want_max { Some(parse::<Max>(next())?.into_iter().next().and_then(|r| r.m).unwrap_or(0.0) as u64) } else { None };
    Ok((rows, MessagesSnapshot { room, membership, max_stream, page: page_rows, history, redactions, summaries, thread_latest }))
}

/// The column prefix of a page row's redaction event (no event column starts with it).
const REDACTION_PREFIX: &str = "r__";

/// Splits a row's columns into those without `prefix` and those with it (prefix removed).
fn split_prefixed(row: Value, prefix: &str) -> (Value, Value) {
    let mut plain = serde_json::Map::new();
    let mut prefixed = serde_json::Map::new();
    if let Value::Object(m) = row {
        for (k, v) in m {
            match k.strip_prefix(prefix) {
                Some(k) => prefixed.insert(k.to_owned(), v),
                None => plain.insert(k, v),
            };
        }
    }
    (Value::Object(plain), Value::Object(prefixed))
}

/// The events at the given stream positions (any order).
pub async fn events_at_streams(db: &Db, streams: &[u64]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in streams.chunks(MAX_PARAMS) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE stream IN ({marks})");
        out.extend(db.all::<EventRow>(&sql, chunk.iter().map(|s| Value::from(*s)).collect()).await?);
    }
    Ok(out)
}
