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
    /// The version of the joined members' stored push rules ([`push_rules_version_sql`]).
    pub version: String,
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
        db.stmt(&format!("SELECT {} AS v", push_rules_version_sql()), params![room_id])?,
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
    let version = parse(3).first().and_then(|v| v.get("v")).and_then(Value::as_str).unwrap_or_default().to_owned();
    FanoutInputs { members, stored, state, version }
}

/// An expression (room ID as `?1`) that changes whenever a joined member's stored push rules
/// do: how many rows there are and the sum of their stream positions (a write moves a row's
/// position up; a deletion lowers the count).
fn push_rules_version_sql() -> &'static str {
    "(SELECT COUNT(*) || ':' || COALESCE(SUM(stream), 0) FROM account_data WHERE room_id = '' AND type = 'm.push_rules'
       AND user_id IN (SELECT user_id FROM memberships WHERE room_id = ?1 AND membership = 'join'))"
}

/// A statement for the append batch that fails the whole batch (`json()` of text that is not
/// JSON raises an error) when the joined members' push rules are no longer at `version`:
/// push actions computed from cached rules are written only if the rules are still those.
pub(crate) fn push_rules_guard_stmt(db: &Db, room_id: &str, version: &str) -> Result<D1PreparedStatement> {
    db.stmt(
        &format!("SELECT json(CASE WHEN {} = ?2 THEN '1' ELSE 'push rules guard' END) AS ok", push_rules_version_sql()),
        params![room_id, version],
    )
}

/// The current [`push_rules_version_sql`] of a room, as a statement (row `{v}`).
pub(crate) fn push_rules_version_stmt(db: &Db, room_id: &str) -> Result<D1PreparedStatement> {
    db.stmt(&format!("SELECT {} AS v", push_rules_version_sql()), params![room_id])
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
