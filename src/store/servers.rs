//! The servers taking part in a room (federation: where our events go).

use serde::Deserialize;

use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// The distinct server names of the room's joined members (ours included).
pub async fn joined_servers(db: &Db, room_id: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        server: String,
    }
    Ok(db
        .all::<R>(
            "SELECT DISTINCT substr(user_id, instr(user_id, ':') + 1) AS server FROM memberships WHERE room_id = ? AND membership = 'join'",
            params![room_id],
        )
        .await?
        .into_iter()
        .map(|r| r.server)
        .filter(|s| !s.is_empty())
        .collect())
}

/// The distinct server names of everyone joined to a room the user is joined to (ours
/// included): where news about the user's devices goes.
pub async fn servers_sharing_rooms(db: &Db, user: &str) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct R {
        server: String,
    }
    Ok(db
        .all::<R>(
            "SELECT DISTINCT substr(m2.user_id, instr(m2.user_id, ':') + 1) AS server FROM memberships m1
             JOIN memberships m2 ON m2.room_id = m1.room_id WHERE m1.user_id = ? AND m1.membership = 'join' AND m2.membership = 'join'",
            params![user],
        )
        .await?
        .into_iter()
        .map(|r| r.server)
        .filter(|s| !s.is_empty())
        .collect())
}
