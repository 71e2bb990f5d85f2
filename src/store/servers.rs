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
