//! What the event fan-out (`service::notify::after_append`) reads and writes: the room's
//! members, their stored push rules and the state the rules look at (one batch), and the
//! push actions it records.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use worker::D1PreparedStatement;

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// A current-state row the push rules need (power levels, create, joined members).
#[derive(Deserialize)]
pub(crate) struct StateRow {
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: String,
    pub event_id: String,
    pub json: String,
}

#[derive(Deserialize)]
pub(crate) struct Member {
    pub user_id: String,
    pub membership: String,
}

pub(crate) struct FanoutInputs {
    /// Joined, invited and knocking members.
    pub members: Vec<Member>,
    /// Stored push rules of the joined members, by user.
    pub stored: HashMap<String, Value>,
    pub state: Vec<StateRow>,
}

/// Members, their stored push rules and the room state the rules look at: one batch.
pub(crate) async fn inputs(db: &Db, room_id: &str) -> Result<FanoutInputs> {
    Ok(inputs_from(&db.batch_rows(inputs_stmts(db, room_id)?).await?))
}

/// The statements [`inputs`] runs, for a writer that reads them in its own batch, after
/// its writes (the `Room` object's append: no round trip of their own).
pub(crate) fn inputs_stmts(db: &Db, room_id: &str) -> Result<Vec<D1PreparedStatement>> {
    Ok(vec![
        db.stmt("SELECT user_id, membership FROM memberships WHERE room_id = ? AND membership IN ('join', 'invite', 'knock')", params![room_id])?,
        db.stmt(
            "SELECT user_id, content FROM account_data WHERE room_id = '' AND type = 'm.push_rules'
               AND user_id IN (SELECT user_id FROM memberships WHERE room_id = ? AND membership = 'join')",
            params![room_id],
        )?,
        db.stmt(
            "SELECT c.type, c.state_key, e.event_id, e.json FROM current_state c JOIN events e ON e.event_id = c.event_id
             WHERE c.room_id = ? AND (c.type IN ('m.room.power_levels', 'm.room.create')
               OR (c.type = 'm.room.member' AND e.membership = 'join'))",
            params![room_id],
        )?,
    ])
}

/// [`FanoutInputs`] from the rows of the [`inputs_stmts`] (in that order).
pub(crate) fn inputs_from(rows: &[Vec<Value>]) -> FanoutInputs {
    let parse = |i: usize| rows.get(i).cloned().unwrap_or_default();
    let members = parse(0).into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    let stored = parse(1)
        .into_iter()
        .filter_map(|v| Some((v.get("user_id")?.as_str()?.to_owned(), serde_json::from_str(v.get("content")?.as_str()?).ok()?)))
        .collect();
    let state = parse(2).into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    FanoutInputs { members, stored, state }
}

/// Records that an event notifies a user (unread counts, `/notifications`), at the event's
/// stream position.
pub(crate) fn push_action_stmt(
    db: &Db,
    user: &str,
    event_id: &str,
    room_id: &str,
    thread: &str,
    highlight: bool,
    actions: &impl serde::Serialize,
) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT OR IGNORE INTO push_actions (user_id, event_id, room_id, stream, thread_id, highlight, actions, ts)
         VALUES (?1, ?2, ?3, (SELECT stream FROM events WHERE event_id = ?2), ?4, ?5, ?6, ?7)",
        params![user, event_id, room_id, thread, highlight as i64, serde_json::to_string(actions)?, now_ms()],
    )
}
