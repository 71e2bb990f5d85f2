//! What the federation read endpoints and the membership handshakes need beyond
//! `store::rooms`: whether a server ever had a user in a room, the room's history-visibility
//! settings, and remote invites (`remote_invites`, migration 0011) with the out-of-band
//! `events`/`memberships` rows that let `/sync` show them.
//!
//! Out-of-band rows: an invite to (or the rejection of an invite to) a room this server is
//! not in is stored in `events` with no state groups and no `current_state` entry, and moves
//! the user's `memberships` row, so the sync stream orders it like any other membership.

use serde::Deserialize;
use worker::D1PreparedStatement;

use crate::core::room::pdu::{to_json_string, Pdu};
use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// Whether some user of `server` ever had a `join` or `invite` membership in the room (the
/// room-level gate of the read endpoints: a server never in the room reads nothing).
pub async fn server_was_in_room(db: &Db, room_id: &str, server: &str) -> Result<bool> {
    #[derive(Deserialize)]
    struct R {
        #[allow(dead_code)]
        x: f64,
    }
    let suffix = format!(":{server}");
    Ok(db
        .first::<R>(
            "SELECT 1 AS x FROM events WHERE room_id = ?1 AND type = 'm.room.member' AND membership IN ('join', 'invite')
               AND substr(state_key, -length(?2)) = ?2 LIMIT 1",
            params![room_id, suffix],
        )
        .await?
        .is_some())
}

/// Every `history_visibility` value the room ever had (to skip the per-event check when
/// none restricts servers).
pub async fn history_visibility_values(db: &Db, room_id: &str) -> Result<Vec<Option<String>>> {
    #[derive(Deserialize)]
    struct R {
        v: Option<String>,
    }
    Ok(db
        .all::<R>(
            "SELECT json_extract(json, '$.content.history_visibility') AS v FROM events
             WHERE room_id = ? AND type = 'm.room.history_visibility' AND state_key = ''",
            params![room_id],
        )
        .await?
        .into_iter()
        .map(|r| r.v)
        .collect())
}

/// A stored remote invite.
#[derive(Debug, Deserialize, Clone)]
pub struct RemoteInviteRow {
    pub room_id: String,
    pub event_id: String,
    pub event_json: String,
    pub invite_state_json: String,
    pub room_version: String,
    pub via_server: String,
}

const INVITE_COLUMNS: &str = "room_id, user_id, event_id, event_json, invite_state_json, room_version, via_server";

pub async fn remote_invite(db: &Db, room_id: &str, user_id: &str) -> Result<Option<RemoteInviteRow>> {
    db.first(&format!("SELECT {INVITE_COLUMNS} FROM remote_invites WHERE room_id = ? AND user_id = ?"), params![room_id, user_id]).await
}

/// The user's remote invites that are still pending (their membership is still `invite`).
pub async fn pending_remote_invites(db: &Db, user_id: &str) -> Result<Vec<RemoteInviteRow>> {
    db.all(
        &format!(
            "SELECT {INVITE_COLUMNS} FROM remote_invites r WHERE r.user_id = ?1 AND EXISTS
               (SELECT 1 FROM memberships m WHERE m.room_id = r.room_id AND m.user_id = ?1 AND m.membership = 'invite'
                  AND m.event_id = r.event_id)"
        ),
        params![user_id],
    )
    .await
}

/// Statements storing an out-of-band member event of a room this server is not in: the
/// event row (next stream position, no state groups) and the user's membership.
pub fn out_of_band_member_stmts(db: &Db, pdu: &Pdu, membership: &str) -> Result<Vec<D1PreparedStatement>> {
    let user = pdu.state_key.clone().unwrap_or_default();
    Ok(vec![
        db.stmt(
            "INSERT OR IGNORE INTO events (event_id, room_id, stream, depth, type, state_key, sender, origin_server_ts, json, membership)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(stream), 0) + 1 FROM events), ?3, 'm.room.member', ?4, ?5, ?6, ?7, ?8)",
            params![
                pdu.event_id.as_str(),
                pdu.room_id.as_str(),
                pdu.depth,
                user,
                pdu.sender.as_str(),
                u64::from(pdu.origin_server_ts.0),
                to_json_string(pdu),
                membership
            ],
        )?,
        db.stmt(
            "INSERT INTO memberships (room_id, user_id, membership, event_id, stream)
             VALUES (?1, ?2, ?3, ?4, (SELECT stream FROM events WHERE event_id = ?4))
             ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,
               event_id = excluded.event_id, stream = excluded.stream, forgotten = 0",
            params![pdu.room_id.as_str(), user, membership, pdu.event_id.as_str()],
        )?,
    ])
}

/// What a remote invite stores besides the event.
pub struct NewRemoteInvite<'a> {
    pub invite_state_json: &'a str,
    pub room_version: &'a str,
    pub via_server: &'a str,
}

/// Statement recording a remote invite (a newer invite to the same room replaces it).
pub fn upsert_remote_invite_stmt(db: &Db, pdu: &Pdu, inv: &NewRemoteInvite<'_>) -> Result<D1PreparedStatement> {
    db.stmt(
        "INSERT INTO remote_invites (room_id, user_id, event_id, event_json, invite_state_json, room_version, via_server, created_ts)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (room_id, user_id) DO UPDATE SET event_id = excluded.event_id, event_json = excluded.event_json,
           invite_state_json = excluded.invite_state_json, room_version = excluded.room_version,
           via_server = excluded.via_server, created_ts = excluded.created_ts",
        params![
            pdu.room_id.as_str(),
            pdu.state_key.clone().unwrap_or_default(),
            pdu.event_id.as_str(),
            to_json_string(pdu),
            inv.invite_state_json,
            inv.room_version,
            inv.via_server,
            now_ms()
        ],
    )
}

/// Statement dropping a remote invite (rejected, or joined through the join path).
pub fn delete_remote_invite_stmt(db: &Db, room_id: &str, user_id: &str) -> Result<D1PreparedStatement> {
    db.stmt("DELETE FROM remote_invites WHERE room_id = ? AND user_id = ?", params![room_id, user_id])
}

/// The state group before each of these events (`events.state_before`; `store::rooms::EventRow`
/// does not carry it). Events without one (the create event, out-of-band events) are absent.
pub async fn state_before_groups(db: &Db, event_ids: &[String]) -> Result<std::collections::HashMap<String, String>> {
    #[derive(Deserialize)]
    struct R {
        event_id: String,
        state_before: Option<String>,
    }
    let mut out = std::collections::HashMap::new();
    for chunk in event_ids.chunks(90) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<R> = db
            .all(
                &format!("SELECT event_id, state_before FROM events WHERE event_id IN ({marks})"),
                chunk.iter().map(|s| serde_json::Value::String(s.clone())).collect(),
            )
            .await?;
        out.extend(rows.into_iter().filter_map(|r| r.state_before.map(|g| (r.event_id, g))));
    }
    Ok(out)
}
