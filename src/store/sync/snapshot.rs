//! The snapshot a sync starts from: every stream's position and the user's memberships in
//! one batch, and the rooms with events since a position.

use serde::Deserialize;
use serde_json::Value;

use super::num;
use crate::core::sync_token::SyncToken;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// One of the user's memberships.
#[derive(Debug, Deserialize, Clone)]
pub struct MembershipRow {
    pub room_id: String,
    pub membership: String,
    pub stream: f64,
    pub forgotten: f64,
}

impl MembershipRow {
    pub fn stream(&self) -> u64 {
        self.stream as u64
    }
}

/// The statement reading every stream's current position (read it with [`positions_of`]).
pub(crate) fn positions_stmt(db: &Db) -> Result<worker::D1PreparedStatement> {
    db.stmt(
        "SELECT (SELECT COALESCE(MAX(stream), 0) FROM events) AS ev,
                (SELECT COALESCE(MAX(stream), 0) FROM account_data) AS ad,
                (SELECT COALESCE(MAX(stream), 0) FROM receipts) AS rc,
                (SELECT COALESCE(MAX(stream), 0) FROM room_typing) AS ty,
                (SELECT COALESCE(MAX(stream), 0) FROM presence) AS pr,
                (SELECT COALESCE(MAX(stream), 0) FROM device_list_changes) AS dl",
        vec![],
    )
}

/// The positions of [`positions_stmt`]'s rows (to-device, kept by `UserSync`, at 0).
pub(crate) fn positions_of(rows: Option<&Vec<Value>>) -> SyncToken {
    let p = rows.and_then(|r| r.first()).cloned().unwrap_or(Value::Null);
    let n = |k: &str| p.get(k).map_or(0, num);
    SyncToken {
        rooms: n("ev"),
        account_data: n("ad"),
        receipts: n("rc"),
        typing: n("ty"),
        presence: n("pr"),
        device_lists: n("dl"),
        ..Default::default()
    }
}

/// The current position of every stream and the user's memberships, read in one batch (one
/// snapshot), so no membership is newer than the room position. With `since` (an
/// incremental sync), also the rooms the user is *newly* joined to since that position.
pub async fn snapshot(db: &Db, user: &str, since: Option<u64>) -> Result<(SyncToken, Vec<MembershipRow>, Vec<String>)> {
    let (token, members, newly_joined, _) = snapshot_with(db, user, since, vec![]).await?;
    Ok((token, members, newly_joined))
}

/// [`snapshot`] with `lead` statements (reads only) run first in the same batch — what the
/// request would otherwise read in round trips of its own (the token check, the presence a
/// sync sets) — and their rows, in order.
pub async fn snapshot_with(
    db: &Db,
    user: &str,
    since: Option<u64>,
    lead: Vec<worker::D1PreparedStatement>,
) -> Result<(SyncToken, Vec<MembershipRow>, Vec<String>, Vec<Vec<Value>>)> {
    let n = lead.len();
    let mut stmts = lead;
    stmts.extend([
        positions_stmt(db)?,
        db.stmt("SELECT room_id, membership, event_id, stream, forgotten FROM memberships WHERE user_id = ?", params![user])?,
    ]);
    if let Some(since) = since {
        // Synapse's rule: joined now, and either not joined at `since` or with a non-join
        // membership of the user since then (left and came back).
        stmts.push(db.stmt(
            "SELECT m.room_id AS room_id FROM memberships m
             WHERE m.user_id = ?1 AND m.membership = 'join' AND m.stream > ?2
               AND (EXISTS (SELECT 1 FROM events e WHERE e.room_id = m.room_id AND e.type = 'm.room.member'
                              AND e.state_key = ?1 AND e.stream > ?2 AND e.membership != 'join')
                    OR COALESCE((SELECT e.membership FROM events e WHERE e.room_id = m.room_id AND e.type = 'm.room.member'
                                   AND e.state_key = ?1 AND e.stream <= ?2 ORDER BY e.stream DESC LIMIT 1), '') != 'join')",
            params![user, since],
        )?);
    }
    let mut rows = db.batch_rows(stmts).await?;
    let rest = rows.split_off(n.min(rows.len()));
    let token = positions_of(rest.first());
    let members = rest.get(1).map(|r| r.iter().filter_map(|v| serde_json::from_value::<MembershipRow>(v.clone()).ok()).collect()).unwrap_or_default();
    let newly_joined = rest.get(2).map(|r| r.iter().filter_map(|v| v["room_id"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    Ok((token, members, newly_joined, rows))
}

/// Rooms the user has any membership in that have events in `(after, up_to]`, each with
/// whether state resolution also reset some of its state in that range (migration 0012).
pub async fn rooms_with_events(db: &Db, user: &str, after: u64, up_to: u64) -> Result<Vec<(String, bool)>> {
    #[derive(Deserialize)]
    struct R {
        room_id: String,
        resets: f64,
    }
    Ok(db
        .all::<R>(
            "SELECT room_id, MAX(r) AS resets FROM (
               SELECT DISTINCT room_id, 0 AS r FROM events WHERE stream > ?1 AND stream <= ?2
                 AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ?3)
               UNION ALL
               SELECT DISTINCT room_id, 1 AS r FROM state_resets WHERE stream > ?1 AND stream <= ?2
                 AND room_id IN (SELECT room_id FROM memberships WHERE user_id = ?3)
             ) GROUP BY room_id",
            params![after, up_to, user],
        )
        .await?
        .into_iter()
        .map(|r| (r.room_id, r.resets != 0.0))
        .collect())
}
