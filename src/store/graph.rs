//! The room graph beyond the linear timeline (migration 0010): forward extremities, outliers
//! and soft-failed events, rejected events, the state after any known event, current-state
//! rewrites after state resolution, and inbound federation transactions.

use std::collections::{BTreeMap, HashSet};

use ruma::{EventId, OwnedEventId, RoomId};
use serde::Deserialize;
use serde_json::Value;
use worker::D1PreparedStatement;

use crate::core::room::pdu::{parse_stored, to_json_string, Pdu};
use crate::core::room::state::StateMap;
use crate::core::time::now_ms;
use crate::error::{Error, Result};
use crate::params;
use crate::store::db::Db;

const MAX_PARAMS: usize = 90;

fn marks(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn strings(ids: &[&str]) -> Vec<Value> {
    ids.iter().map(|s| Value::String((*s).to_owned())).collect()
}

/// The room's forward extremities: the JSON column, or the head event of a linear room.
pub async fn extremities(db: &Db, room_id: &str) -> Result<Vec<OwnedEventId>> {
    #[derive(Deserialize)]
    struct R {
        extremities: Option<String>,
        head_event: Option<String>,
    }
    let Some(r) = db.first::<R>("SELECT extremities, head_event FROM rooms WHERE room_id = ?", params![room_id]).await? else {
        return Ok(vec![]);
    };
    Ok(parse_extremities(r.extremities.as_deref(), r.head_event.as_deref()))
}

/// Reads the stored extremities (see [`extremities`]).
pub fn parse_extremities(column: Option<&str>, head: Option<&str>) -> Vec<OwnedEventId> {
    let ids: Vec<String> = match column {
        Some(s) => serde_json::from_str(s).unwrap_or_default(),
        None => head.map(|h| vec![h.to_owned()]).unwrap_or_default(),
    };
    ids.iter().filter_map(|s| EventId::parse(s).ok()).collect()
}

/// The `extremities` column's value for `extremities` (a JSON array of event IDs; read back
/// by [`parse_extremities`]).
pub fn extremities_column(extremities: &[OwnedEventId]) -> Result<String> {
    Ok(serde_json::to_string(&extremities.iter().map(|e| e.as_str()).collect::<Vec<_>>())?)
}

/// Statement moving the room's head: the extremities, the greatest depth, the group of the
/// current state and the latest timeline event.
pub fn set_head_stmt(
    db: &Db,
    room_id: &str,
    extremities: &[OwnedEventId],
    depth: u64,
    group: Option<&str>,
    latest: &str,
) -> Result<D1PreparedStatement> {
    let ext = extremities_column(extremities)?;
    db.stmt(
        "UPDATE rooms SET extremities = ?, head_depth = MAX(head_depth, ?), state_group = ?, head_event = ? WHERE room_id = ?",
        params![ext, depth, group, latest, room_id],
    )
}

/// Statement failing its batch when `event_id` is stored already (in the timeline, as an
/// outlier or soft-failed, or rejected): the guard of an event written without reading
/// whether it is known first (`json` of a non-JSON string is an error).
pub fn unknown_event_guard_stmt(db: &Db, event_id: &str) -> Result<D1PreparedStatement> {
    db.stmt(
        "SELECT json(CASE WHEN EXISTS (SELECT 1 FROM events WHERE event_id = ?1) OR EXISTS (SELECT 1 FROM outliers WHERE event_id = ?1)
           OR EXISTS (SELECT 1 FROM rejected_events WHERE event_id = ?1) THEN 'known event' ELSE '1' END) AS ok",
        params![event_id],
    )
}

/// Statement creating the row of a room we join over federation (if it is not there yet).
pub fn insert_room_if_missing_stmt(db: &Db, room_id: &str, version: &str, creator: &str) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT OR IGNORE INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)",
        params![room_id, version, creator, now_ms()],
    )
}

/// The servers of a room's members with `membership` (from the projection), ours included.
pub async fn member_servers(db: &Db, room_id: &str, membership: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        user_id: String,
    }
    let rows = db.all::<R>("SELECT user_id FROM memberships WHERE room_id = ? AND membership = ?", params![room_id, membership]).await?;
    let mut servers: Vec<String> = rows.iter().filter_map(|r| r.user_id.split_once(':').map(|(_, s)| s.to_owned())).collect();
    servers.sort();
    servers.dedup();
    Ok(servers)
}

/// Which of `ids` were rejected.
pub async fn rejected(db: &Db, ids: &[&str]) -> Result<HashSet<String>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
    }
    let mut out = HashSet::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let sql = format!("SELECT event_id FROM rejected_events WHERE event_id IN ({})", marks(chunk.len()));
        out.extend(db.all::<R>(&sql, strings(chunk)).await?.into_iter().map(|r| r.event_id));
    }
    Ok(out)
}

/// Outliers (and soft-failed events) by ID, parsed.
pub async fn outlier_pdus(db: &Db, ids: &[&str]) -> Result<BTreeMap<OwnedEventId, Pdu>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
        room_id: String,
        json: String,
    }
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let sql = format!("SELECT event_id, room_id, json FROM outliers WHERE event_id IN ({})", marks(chunk.len()));
        for r in db.all::<R>(&sql, strings(chunk)).await? {
            let id = EventId::parse(&r.event_id).map_err(Error::internal)?;
            let room = RoomId::parse(&r.room_id).map_err(Error::internal)?;
            out.insert(id.clone(), Pdu::from_json(id, parse_stored(&r.json)?, Some(&room))?);
        }
    }
    Ok(out)
}

/// Outliers as event rows, for the readers of state (a room joined over federation has its
/// state from before the join as outliers): stream position 0, never soft-failed ones.
pub async fn outlier_rows(db: &Db, ids: &[&str]) -> Result<Vec<crate::store::rooms::EventRow>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
        room_id: String,
        json: String,
        state_after: Option<String>,
    }
    let mut out = Vec::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let sql = format!("SELECT event_id, room_id, json, state_after FROM outliers WHERE soft_failed = 0 AND event_id IN ({})", marks(chunk.len()));
        for r in db.all::<R>(&sql, strings(chunk)).await? {
            let j: Value = serde_json::from_str(&r.json)?;
            let s = |k: &str| j.get(k).and_then(Value::as_str).map(str::to_owned);
            let content = j.get("content").cloned().unwrap_or(Value::Null);
            let membership = (s("type").as_deref() == Some("m.room.member"))
                .then(|| content.get("membership").and_then(Value::as_str).map(str::to_owned))
                .flatten();
            out.push(crate::store::rooms::EventRow {
                kind: s("type").unwrap_or_default(),
                state_key: s("state_key"),
                sender: s("sender").unwrap_or_default(),
                origin_server_ts: j.get("origin_server_ts").and_then(Value::as_f64).unwrap_or(0.0),
                event_id: r.event_id,
                room_id: r.room_id,
                stream: 0.0,
                json: r.json,
                state_after: r.state_after,
                membership,
                redacted_by: None,
                txn_id: None,
                txn_device: None,
                relates_to: None,
                rel_type: None,
            });
        }
    }
    Ok(out)
}

/// The state group after each of `ids` (timeline events and outliers), where known.
pub async fn state_after(db: &Db, ids: &[&str]) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
        state_after: Option<String>,
    }
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(MAX_PARAMS / 2) {
        let m = marks(chunk.len());
        let mut p = strings(chunk);
        p.extend(strings(chunk));
        let sql = format!(
            "SELECT event_id, state_after FROM events WHERE event_id IN ({m}) UNION ALL SELECT event_id, state_after FROM outliers WHERE event_id IN ({m})"
        );
        for r in db.all::<R>(&sql, p).await? {
            if let Some(g) = r.state_after {
                out.insert(r.event_id, g);
            }
        }
    }
    Ok(out)
}

/// Statement storing an outlier (or a soft-failed event) once.
pub fn insert_outlier_stmt(db: &Db, pdu: &Pdu, state_after: Option<&str>, soft_failed: bool) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT OR IGNORE INTO outliers (event_id, room_id, json, state_after, soft_failed, received_ts) VALUES (?, ?, ?, ?, ?, ?)",
        params![pdu.event_id.as_str(), pdu.room_id.as_str(), to_json_string(pdu), state_after, soft_failed as i64, now_ms()],
    )
}

/// Statement recording a rejected event.
pub fn insert_rejected_stmt(db: &Db, event_id: &str, room_id: &str, reason: &str) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT OR IGNORE INTO rejected_events (event_id, room_id, reason, received_ts) VALUES (?, ?, ?, ?)",
        params![event_id, room_id, reason, now_ms()],
    )
}

/// Statements moving the current-state projections (`current_state`, `memberships`) from
/// `before` to `after` (the state resolution of the new extremities). `events` holds the
/// member events among the changes (their `membership` is read from the content).
pub fn current_state_stmts(
    db: &Db,
    room_id: &str,
    before: &StateMap,
    after: &StateMap,
    events: &BTreeMap<OwnedEventId, Pdu>,
) -> Result<Vec<D1PreparedStatement>> {
    let mut stmts = Vec::new();
    for ((t, k), e) in after {
        if before.get(&(t.clone(), k.clone())) == Some(e) {
            continue;
        }
        stmts.push(db.stmt(
            "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)
             ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
            params![room_id, t, k, e.as_str()],
        )?);
        if t == "m.room.member" {
            let membership = events.get(e).and_then(|p| p.content_value().get("membership").and_then(Value::as_str).map(str::to_owned));
            if let Some(m) = membership {
                // The stream of the member event when it is in the timeline; an outlier's
                // membership (a member we learned from a join's state) sorts at the event
                // that brought it in.
                stmts.push(db.stmt(
                    "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
                     VALUES (?1, ?2, ?3, ?4, COALESCE((SELECT stream FROM events WHERE event_id = ?4), (SELECT COALESCE(MAX(stream), 0) FROM events)))
                     ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
                       event_id = excluded.event_id, stream = excluded.stream, forgotten = 0",
                    params![room_id, k, m, e.as_str()],
                )?);
            }
        }
    }
    for (t, k) in before.keys() {
        if !after.contains_key(&(t.clone(), k.clone())) {
            stmts.push(db.stmt("DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?", params![room_id, t, k])?);
        }
    }
    Ok(stmts)
}

/// Statements recording state resets (`core::room::resets::state_resets`, migration 0012) at
/// the stream position of `at_event`, which the same batch appends first. A member key's
/// projection row (`memberships`, already moved by [`current_state_stmts`]) takes that
/// position too: the membership changed there, so `/sync` sees the change after its token
/// (a reset that bans the user moves the room to `leave`) even though the member event
/// itself is older.
pub fn state_resets_stmts(
    db: &Db,
    room_id: &str,
    at_event: &str,
    resets: &[((String, String), Option<OwnedEventId>)],
) -> Result<Vec<D1PreparedStatement>> {
    let mut stmts = Vec::new();
    for ((t, k), e) in resets {
        let e = e.as_ref().map(|e| e.as_str());
        stmts.push(db.stmt(
            "INSERT OR REPLACE INTO state_resets (stream, room_id, type, state_key, event_id)
             VALUES ((SELECT stream FROM events WHERE event_id = ?1), ?2, ?3, ?4, ?5)",
            params![at_event, room_id, t, k, e],
        )?);
        if let (Some(e), "m.room.member") = (e, t.as_str()) {
            stmts.push(db.stmt(
                "UPDATE memberships SET stream = (SELECT stream FROM events WHERE event_id = ?1)
                 WHERE room_id = ?2 AND user_id = ?3 AND event_id = ?4",
                params![at_event, room_id, k, e],
            )?);
        }
    }
    Ok(stmts)
}

/// Records the answer to a transaction (the first one wins).
pub async fn put_txn_response(db: &Db, origin: &str, txn_id: &str, response: &Value) -> Result<()> {
    db.run(
        "INSERT OR IGNORE INTO federation_txns (origin, txn_id, response, received_ts) VALUES (?, ?, ?, ?)",
        params![origin, txn_id, response.to_string(), now_ms()],
    )
    .await?;
    Ok(())
}

/// The answer given to an earlier transaction from `origin` with this ID (spec:
/// server-server-api, "Transactions": a repeated transaction is not processed again).
pub async fn txn_answer(db: &Db, origin: &str, txn_id: &str) -> Result<Option<Value>> {
    #[derive(Deserialize)]
    struct Done {
        response: String,
    }
    match db.first::<Done>("SELECT response FROM federation_txns WHERE origin = ? AND txn_id = ?", params![origin, txn_id]).await? {
        Some(done) => Ok(Some(serde_json::from_str(&done.response)?)),
        None => Ok(None),
    }
}

/// A room we know, as [`room_acls`] found it.
#[derive(Clone)]
pub struct TxnRoom {
    pub room_version: String,
    /// The content of its current `m.room.server_acl` (`None`: the room has none).
    pub acl: Option<Value>,
}

/// For each of `room_ids` that we know, its version and current server ACL (spec:
/// server-server-api, "Server Access Control Lists (ACLs)"): one batch instead of a read
/// per room and two per ACL.
pub async fn room_acls(db: &Db, room_ids: &[&str]) -> Result<BTreeMap<String, TxnRoom>> {
    #[derive(Deserialize)]
    struct RoomAcl {
        room_id: String,
        room_version: String,
        acl: Option<String>,
    }
    let mut stmts = Vec::new();
    for chunk in room_ids.chunks(MAX_PARAMS) {
        // The ACL event may be an outlier in a room joined over federation.
        let sql = format!(
            "SELECT r.room_id, r.room_version, COALESCE((SELECT e.json FROM events e WHERE e.event_id = cs.event_id),
                                        (SELECT o.json FROM outliers o WHERE o.event_id = cs.event_id)) AS acl
             FROM rooms r LEFT JOIN current_state cs ON cs.room_id = r.room_id AND cs.type = 'm.room.server_acl' AND cs.state_key = ''
             WHERE r.room_id IN ({})",
            marks(chunk.len())
        );
        stmts.push(db.stmt(&sql, strings(chunk))?);
    }
    let mut rooms = BTreeMap::new();
    if stmts.is_empty() {
        return Ok(rooms);
    }
    for row in db.batch_rows(stmts).await?.into_iter().flatten() {
        let r: RoomAcl = serde_json::from_value(row)?;
        let content =
            r.acl.and_then(|j| serde_json::from_str::<Value>(&j).ok()).map(|mut v| v.get_mut("content").map(Value::take).unwrap_or(Value::Null));
        rooms.insert(r.room_id, TxnRoom { room_version: r.room_version, acl: content });
    }
    Ok(rooms)
}

/// What the checks on receipt of a PDU read first (`service::federation::ingest`), in one
/// round trip: whether the event is known, the state group after each of its `prev_events`
/// we know, and the room's row when asked for.
pub struct PduReads {
    /// In the timeline, an outlier or rejected.
    pub known: bool,
    /// Group of the state after each known prev event, by event ID.
    pub state_after: BTreeMap<String, String>,
    pub room: Option<crate::store::rooms::RoomRow>,
}

/// [`PduReads`] for `event_id`, `prev_ids` and (if given) `room_id`: whether the event is
/// known, [`state_after`] and `rooms::get_room`, as one batch.
pub async fn pdu_reads(db: &Db, event_id: &str, prev_ids: &[&str], room_id: Option<&str>) -> Result<PduReads> {
    #[derive(Deserialize)]
    struct After {
        event_id: String,
        state_after: Option<String>,
    }
    let mut stmts = vec![db.stmt(
        "SELECT event_id FROM events WHERE event_id = ?1 UNION SELECT event_id FROM outliers WHERE event_id = ?1
         UNION SELECT event_id FROM rejected_events WHERE event_id = ?1",
        params![event_id],
    )?];
    let chunks: Vec<&[&str]> = prev_ids.chunks(MAX_PARAMS / 2).collect();
    for chunk in &chunks {
        let m = marks(chunk.len());
        let mut p = strings(chunk);
        p.extend(strings(chunk));
        stmts.push(db.stmt(
            &format!(
                "SELECT event_id, state_after FROM events WHERE event_id IN ({m}) UNION ALL SELECT event_id, state_after FROM outliers WHERE event_id IN ({m})"
            ),
            p,
        )?);
    }
    if let Some(room_id) = room_id {
        stmts.push(db.stmt(
            "SELECT room_id, room_version, creator, is_public, head_event, extremities, head_depth, state_group FROM rooms WHERE room_id = ?",
            params![room_id],
        )?);
    }
    let mut rows = db.batch_rows(stmts).await?.into_iter();
    let known = rows.next().is_some_and(|r| !r.is_empty());
    let mut state_after = BTreeMap::new();
    for _ in &chunks {
        for r in rows.next().unwrap_or_default() {
            let r: After = serde_json::from_value(r)?;
            if let Some(g) = r.state_after {
                state_after.insert(r.event_id, g);
            }
        }
    }
    let room = match room_id {
        Some(_) => rows.next().unwrap_or_default().into_iter().next().map(serde_json::from_value).transpose()?,
        None => None,
    };
    Ok(PduReads { known, state_after, room })
}
