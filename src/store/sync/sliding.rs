//! Sliding sync reads (MSC4186): the user's whole room list with what ordering and filters
//! need in one batch, and the member summaries of the window's rooms. The window's
//! timelines and state come from the `/sync` reads (`timeline_windows`, `state_at`).

use serde::Deserialize;
use serde_json::Value;
use worker::D1PreparedStatement;

use super::snapshot::{positions_of, positions_stmt};
use super::{values_clause, MAX_PARAMS};
use crate::core::sliding::list::is_bump;
use crate::core::sync_token::SyncToken;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// One of the user's memberships with its room's ordering and filter facts.
#[derive(Debug, Deserialize, Clone)]
pub struct ListRow {
    pub room_id: String,
    pub membership: String,
    pub stream: f64,
    pub sender: Option<String>,
    /// The latest bump event (`None`: none stored).
    pub last_bump: Option<f64>,
    pub last_event: Option<f64>,
    pub encrypted: f64,
    pub room_type: Option<String>,
    /// For a ban: whether the user ever joined the room (1 for other memberships).
    #[serde(default)]
    pub ever_joined: f64,
}

/// The statement keeping a room's ordering facts (migration 0016, `room_bump`) after the
/// event `event_id` is written: the room's latest event, and its latest bump event when this
/// one bumps (`core::sliding::list::is_bump`). Goes in the same batch as the event's
/// `INSERT`, after it (it reads the position the insert allocated). Positions only grow:
/// an event stored below the others (backfill) changes nothing.
pub fn bump_stmt(db: &Db, room_id: &str, event_id: &str, kind: &str, state_key: Option<&str>) -> Result<D1PreparedStatement> {
    let bump = u8::from(is_bump(kind, state_key));
    db.stmt(
        "INSERT INTO room_bump (room_id, last_bump, last_event)
           SELECT room_id, CASE WHEN ?3 = 1 THEN stream END, stream FROM events WHERE event_id = ?2 AND room_id = ?1
         ON CONFLICT (room_id) DO UPDATE SET
           last_bump = CASE WHEN excluded.last_bump IS NULL THEN room_bump.last_bump
                            WHEN room_bump.last_bump IS NULL OR excluded.last_bump > room_bump.last_bump THEN excluded.last_bump
                            ELSE room_bump.last_bump END,
           last_event = MAX(room_bump.last_event, excluded.last_event)",
        params![room_id, event_id, bump],
    )
}

/// What [`room_list`] reads.
#[derive(Debug, Default)]
pub struct RoomList {
    pub token: SyncToken,
    pub rooms: Vec<ListRow>,
    /// The user's `m.direct` content.
    pub direct: Value,
    /// Room ID → `m.tag` content (only when asked for).
    pub tags: Vec<(String, Value)>,
    /// `(space, child)` for the `m.space.child` events with a `via` of the asked spaces the
    /// user is joined to.
    pub children: Vec<(String, String)>,
}

/// What the lists' filters need beyond ordering: each is read only when some list filters on
/// it (per room, encryption is one more lookup and the room type a parse of the create
/// event: the cost of a fact grows with the account).
#[derive(Debug, Default, Clone, Copy)]
pub struct ListFacts<'a> {
    pub tags: bool,
    pub encryption: bool,
    pub room_types: bool,
    pub spaces: &'a [String],
}

/// Every stream's position, the user's memberships (not forgotten) with each room's latest
/// bump event and latest event, and the user's `m.direct` content — plus what `facts` asks
/// for (encryption, create-event type, room tags, the children of spaces): one batch,
/// whatever the number of rooms.
pub async fn room_list(db: &Db, user: &str, facts_needed: ListFacts<'_>) -> Result<RoomList> {
    let ListFacts { tags, encryption, room_types, spaces } = facts_needed;
    let encrypted = match encryption {
        true => "EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = m.room_id AND c.type = 'm.room.encryption' AND c.state_key = '')",
        false => "0",
    };
    let room_type = match room_types {
        true => {
            "(SELECT json_extract(e.json, '$.content.type') FROM current_state c JOIN events e ON e.event_id = c.event_id
                  WHERE c.room_id = m.room_id AND c.type = 'm.room.create' AND c.state_key = '')"
        }
        false => "NULL",
    };
    // The ordering facts are one row of `room_bump` per room (migration 0016). The room's
    // latest event is at least the user's own membership event (which a remote invite or
    // its rejection stores without passing `bump_stmt`). The sender is needed only to tell
    // a leave from a kick; whether a banned user ever joined only for a ban.
    let facts = format!(
        "SELECT m.room_id AS room_id, m.membership AS membership, m.stream AS stream,
                CASE WHEN m.membership = 'leave' THEN (SELECT e.sender FROM events e WHERE e.event_id = m.event_id) END AS sender,
                b.last_bump AS last_bump,
                MAX(COALESCE(b.last_event, m.stream), m.stream) AS last_event,
                {encrypted} AS encrypted,
                {room_type} AS room_type,
                CASE WHEN m.membership = 'ban' THEN EXISTS (SELECT 1 FROM events e WHERE e.room_id = m.room_id
                     AND e.type = 'm.room.member' AND e.state_key = ?1 AND json_extract(e.json, '$.content.membership') = 'join')
                     ELSE 1 END AS ever_joined
         FROM memberships m LEFT JOIN room_bump b ON b.room_id = m.room_id
         WHERE m.user_id = ?1 AND m.forgotten = 0"
    );
    let mut stmts = vec![
        positions_stmt(db)?,
        db.stmt(&facts, params![user])?,
        db.stmt("SELECT content FROM account_data WHERE user_id = ?1 AND room_id = '' AND type = 'm.direct'", params![user])?,
    ];
    if tags {
        stmts.push(db.stmt("SELECT room_id, content FROM account_data WHERE user_id = ?1 AND room_id != '' AND type = 'm.tag'", params![user])?);
    }
    let spaces = spaces.get(..spaces.len().min(MAX_PARAMS - 1)).unwrap_or_default();
    if !spaces.is_empty() {
        let mut p = params![user];
        p.extend(spaces.iter().map(|s| Value::String(s.clone())));
        stmts.push(db.stmt(
            &format!(
                "SELECT c.room_id AS space, c.state_key AS child FROM current_state c
                   JOIN memberships m ON m.room_id = c.room_id AND m.user_id = ?1 AND m.membership = 'join'
                   JOIN events e ON e.event_id = c.event_id
                 WHERE c.room_id IN ({}) AND c.type = 'm.space.child' AND json_array_length(e.json, '$.content.via') > 0",
                vec!["?"; spaces.len()].join(", ")
            ),
            p,
        )?);
    }
    let mut rows = db.batch_rows(stmts).await?.into_iter();
    let token = positions_of(rows.next().as_ref());
    let rooms = rows.next().map(|r| r.into_iter().filter_map(|v| serde_json::from_value::<ListRow>(v).ok()).collect()).unwrap_or_default();
    let content = |v: &Value| v.get("content").and_then(Value::as_str).and_then(|s| serde_json::from_str::<Value>(s).ok());
    let direct = rows.next().and_then(|r| r.first().and_then(content)).unwrap_or(Value::Null);
    let tags = if tags {
        rows.next().unwrap_or_default().iter().filter_map(|v| Some((v.get("room_id")?.as_str()?.to_owned(), content(v)?))).collect()
    } else {
        vec![]
    };
    let children = rows
        .next()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Some((v.get("space")?.as_str()?.to_owned(), v.get("child")?.as_str()?.to_owned())))
        .collect();
    Ok(RoomList { token, rooms, direct, tags, children })
}

/// Every stream's position, alone (a connection with neither lists nor subscriptions, such
/// as matrix-rust-sdk's `encryption` one, needs no room list).
pub async fn positions(db: &Db) -> Result<SyncToken> {
    let rows = db.batch_rows(vec![positions_stmt(db)?]).await?;
    Ok(positions_of(rows.first()))
}

/// One member of a room summary: the room's count of members with that membership, and one
/// of the first six of them (by membership position) with their member event.
#[derive(Debug, Deserialize, Clone)]
pub struct MemberRow {
    pub room_id: String,
    pub user_id: String,
    pub membership: String,
    pub n: f64,
    pub json: Option<String>,
}

/// Joined and invited counts and the first six joined and invited members of each room
/// (heroes), one batch for all of them.
pub async fn member_summaries(db: &Db, rooms: &[String]) -> Result<Vec<MemberRow>> {
    let mut stmts = Vec::new();
    for chunk in rooms.chunks(MAX_PARAMS) {
        let sql = format!(
            "WITH t(rid) AS (VALUES {})
             SELECT s.room_id AS room_id, s.user_id AS user_id, s.membership AS membership, s.n AS n, e.json AS json FROM (
               SELECT m.room_id, m.user_id, m.membership, m.event_id,
                      ROW_NUMBER() OVER (PARTITION BY m.room_id, m.membership ORDER BY m.stream) AS rn,
                      COUNT(*) OVER (PARTITION BY m.room_id, m.membership) AS n
               FROM memberships m JOIN t ON m.room_id = t.rid WHERE m.membership IN ('join', 'invite')
             ) s LEFT JOIN events e ON e.event_id = s.event_id WHERE s.rn <= 6",
            values_clause(chunk.len(), 1)
        );
        stmts.push(db.stmt(&sql, chunk.iter().map(|r| Value::String(r.clone())).collect())?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    Ok(db.batch_rows(stmts).await?.into_iter().flatten().filter_map(|v| serde_json::from_value(v).ok()).collect())
}

/// A state key a state reset (migration 0012) removed from a room's state.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct DeletedState {
    pub room_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: String,
}

/// Per `(room, after, up_to)`: the keys whose latest change in `(after, up_to]` is a removal
/// (a state reset with no event) — what a client that holds the state at `after` must drop
/// (MSC4186 `StateStub`). Only rooms with such a reset in the range look at their events.
/// One batch.
pub async fn deleted_state(db: &Db, ranges: &[(String, u64, u64)]) -> Result<Vec<DeletedState>> {
    let mut stmts = Vec::new();
    for chunk in ranges.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "WITH t0(rid, lo, hi) AS (VALUES {}),
             t AS (SELECT * FROM t0 WHERE EXISTS (SELECT 1 FROM state_resets r
                     WHERE r.room_id = t0.rid AND r.stream > t0.lo AND r.stream <= t0.hi AND r.event_id IS NULL)),
             c(k_room, k_type, k_key, k_event, at, reset) AS (
               SELECT room_id, type, state_key, event_id, stream, 0 FROM events
                 JOIN t ON room_id = t.rid AND stream > t.lo AND stream <= t.hi WHERE state_key IS NOT NULL
               UNION ALL
               SELECT r.room_id, r.type, r.state_key, r.event_id, r.stream, 1 FROM state_resets r
                 JOIN t ON r.room_id = t.rid AND r.stream > t.lo AND r.stream <= t.hi),
             w AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY k_room, k_type, k_key ORDER BY at DESC, reset DESC) AS rn FROM c)
             SELECT k_room AS room_id, k_type AS type, k_key AS state_key FROM w WHERE rn = 1 AND k_event IS NULL",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for (room, after, up_to) in chunk {
            p.extend(params![room, after, up_to]);
        }
        stmts.push(db.stmt(&sql, p)?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    Ok(db.batch_rows(stmts).await?.into_iter().flatten().filter_map(|v| serde_json::from_value(v).ok()).collect())
}
