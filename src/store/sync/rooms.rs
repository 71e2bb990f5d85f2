//! Per-room extras of a sync: stripped state of invites and knocks, member summaries.

use serde::Deserialize;

use crate::core::room::STRIPPED_STATE_TYPES;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;
use crate::store::rooms::{EventRow, EVENT_COLUMNS};

/// The stripped state of the rooms the user is invited to or knocking on (spec:
/// "Stripped state"): the events of `STRIPPED_STATE_TYPES` and the user's own member
/// event. One query.
pub async fn stripped_state(db: &Db, user: &str) -> Result<Vec<EventRow>> {
    // The types are constants of ours, quoted here, not input.
    let types = STRIPPED_STATE_TYPES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    db.all(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE event_id IN (
               SELECT c.event_id FROM current_state c
               WHERE c.room_id IN (SELECT room_id FROM memberships WHERE user_id = ?1 AND membership IN ('invite', 'knock'))
                 AND (c.type IN ({types}) OR (c.type = 'm.room.member' AND c.state_key = ?1)))"
        ),
        params![user],
    )
    .await
}

/// One member of a room summary: the room's count of members with that membership, and one
/// of the first six of them (by membership position).
#[derive(Debug, Deserialize, Clone)]
pub struct SummaryRow {
    pub room_id: String,
    pub user_id: String,
    pub membership: String,
    pub n: f64,
}

/// Joined and invited member counts and up to 5 heroes per joined room of the user.
pub async fn summaries(db: &Db, user: &str) -> Result<Vec<SummaryRow>> {
    db.all(
        "SELECT room_id, user_id, membership, rn, n FROM (
           SELECT m.room_id, m.user_id, m.membership,
                  ROW_NUMBER() OVER (PARTITION BY m.room_id, m.membership ORDER BY m.stream) AS rn,
                  COUNT(*) OVER (PARTITION BY m.room_id, m.membership) AS n
           FROM memberships m
           WHERE m.room_id IN (SELECT room_id FROM memberships WHERE user_id = ? AND membership = 'join')
             AND m.membership IN ('join', 'invite')
         ) WHERE rn <= 6",
        params![user],
    )
    .await
}
