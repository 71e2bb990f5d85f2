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

/// Every stream's position, the user's memberships (not forgotten) with each room's latest
/// bump event, latest event, encryption and create-event type, and the user's `m.direct`
/// content: one batch, whatever the number of rooms.
pub async fn room_list(db: &Db, user: &str) -> Result<(SyncToken, Vec<ListRow>, Value)> {
    let facts = format!(
        "SELECT m.room_id AS room_id, m.membership AS membership, m.stream AS stream,
                (SELECT e.sender FROM events e WHERE e.event_id = m.event_id) AS sender,
                {} AS last_bump,
                (SELECT MAX(e.stream) FROM events e WHERE e.room_id = m.room_id) AS last_event,
                EXISTS (SELECT 1 FROM current_state c WHERE c.room_id = m.room_id AND c.type = 'm.room.encryption' AND c.state_key = '') AS encrypted,
                (SELECT json_extract(e.json, '$.content.type') FROM current_state c JOIN events e ON e.event_id = c.event_id
                  WHERE c.room_id = m.room_id AND c.type = 'm.room.create' AND c.state_key = '') AS room_type
         FROM memberships m WHERE m.user_id = ?1 AND m.forgotten = 0",
        last_bump_sql()
    );
    let stmts = vec![
        positions_stmt(db)?,
        db.stmt(&facts, params![user])?,
        db.stmt("SELECT content FROM account_data WHERE user_id = ?1 AND room_id = '' AND type = 'm.direct'", params![user])?,
    ];
    let rows = db.batch_rows(stmts).await?;
    let token = positions_of(rows.first());
    let list = rows.get(1).map(|r| r.iter().filter_map(|v| serde_json::from_value::<ListRow>(v.clone()).ok()).collect()).unwrap_or_default();
    let direct = rows
        .get(2)
        .and_then(|r| r.first())
        .and_then(|v| v.get("content"))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    Ok((token, list, direct))
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
