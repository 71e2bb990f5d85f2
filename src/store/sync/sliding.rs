//! Sliding sync reads (MSC4186): the user's whole room list with what ordering and filters
//! need in one batch, and the member summaries of the window's rooms. The window's
//! timelines and state come from the `/sync` reads (`timeline_windows`, `state_at`).

use serde::Deserialize;
use serde_json::Value;

use super::snapshot::{positions_of, positions_stmt};
use super::{values_clause, MAX_PARAMS};
use crate::core::sliding::list::BUMP_TYPES;
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

/// The latest bump event of `m.room_id`: one index lookup per type (`events_room_state`
/// covers `(room_id, type, state_key, stream)`, so each `MAX` is a seek, not a scan of the
/// room's history).
fn last_bump_sql() -> String {
    let one = |t: &str| {
        // A state type's keys are a range of the index (named: the planner would otherwise
        // walk the room's whole history by `events_room_stream`).
        let (index, key) = match t {
            "m.room.create" => ("", "e.state_key = ''"),
            "m.beacon_info" => (" INDEXED BY events_room_state", "e.state_key >= ''"),
            _ => ("", "e.state_key IS NULL"),
        };
        format!("COALESCE((SELECT MAX(e.stream) FROM events e{index} WHERE e.room_id = m.room_id AND e.type = '{t}' AND {key}), -1)")
    };
    // The types are constants of ours, not input.
    format!("NULLIF(MAX({}), -1)", BUMP_TYPES.iter().map(|t| one(t)).collect::<Vec<_>>().join(", "))
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
    let facts = format!(
        "SELECT m.room_id AS room_id, m.membership AS membership, m.stream AS stream,
                (SELECT e.sender FROM events e WHERE e.event_id = m.event_id) AS sender,
                {} AS last_bump,
                (SELECT MAX(e.stream) FROM events e WHERE e.room_id = m.room_id) AS last_event,
                {encrypted} AS encrypted,
                {room_type} AS room_type,
                CASE WHEN m.membership = 'ban' THEN EXISTS (SELECT 1 FROM events e WHERE e.room_id = m.room_id
                     AND e.type = 'm.room.member' AND e.state_key = ?1 AND json_extract(e.json, '$.content.membership') = 'join')
                     ELSE 1 END AS ever_joined
         FROM memberships m WHERE m.user_id = ?1 AND m.forgotten = 0",
        last_bump_sql()
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
