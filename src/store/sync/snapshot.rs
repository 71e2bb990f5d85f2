//! The snapshot a sync starts from: every stream's position and the user's memberships in
//! one batch, and the rooms with events since a position.

use serde::Deserialize;
use serde_json::Value;

use super::num;
use crate::core::sync_token::SyncToken;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;
use crate::store::rooms::{EventRow, EVENT_COLUMNS};

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

/// What an incremental sync's snapshot batch also read of the rooms ([`snapshot_with`] with
/// a window): everything a sync with one new message in a room it was already in needs, so
/// it makes one D1 round trip.
#[derive(Debug, Default)]
pub struct RoomNews {
    /// The last `window` events after `since.rooms` of each room the user is joined to (as of
    /// the snapshot), ascending by stream: the timeline windows of the rooms joined before
    /// `since`, over `(since, now]` (the upper bound is the batch's own snapshot).
    pub windows: Vec<EventRow>,
    /// Joined rooms with state resets after `since.rooms` (migration 0012).
    pub resets: Vec<String>,
    /// [`super::unread_counts`] as of the snapshot, when the room or receipt stream moved
    /// since the token (else not read).
    pub unread: Option<Vec<(String, String, u64, u64)>>,
    /// Whether some member event after `since.rooms` may be in a room the user has any
    /// membership in (false: none is; device lists then need no read when their own stream
    /// did not move). Always true far behind the head, where it is not looked up.
    pub member_events: bool,
    /// With lazy-loaded members: per room of `windows`, the member event of each sender of
    /// its window as of just before the window's first event.
    pub lazy_members: Vec<EventRow>,
}

/// A sync's snapshot ([`snapshot_with`]).
pub struct Snapshot {
    pub now: SyncToken,
    pub members: Vec<MembershipRow>,
    pub newly_joined: Vec<String>,
    /// With `since` and a window.
    pub news: Option<RoomNews>,
    /// The rows of the `lead` statements, in order.
    pub lead: Vec<Vec<Value>>,
}

/// Up to this many positions behind (no event at `since + NEAR`), the new events are found
/// from the stream's index (an idle poll reads none); further behind, from the user's rooms
/// (a client back after a long time does not read every room's events since). Positions are
/// gapless; a gap there would only pick the other, equally correct, branch.
const NEAR: u64 = 1000;

/// The current position of every stream and the user's memberships, read in one batch (one
/// snapshot), so no membership is newer than the room position. With `since` (an
/// incremental sync), also the rooms the user is *newly* joined to since that position.
/// `lead` statements (reads only) run first in the same batch — what the
/// request would otherwise read in round trips of its own (the token check, the presence a
/// sync sets) — and, with `since` and `window` (per room, as `timeline_windows` takes it),
/// the [`RoomNews`] of an incremental sync. One batch is one transaction: every statement
/// sees the same state.
pub async fn snapshot_with(
    db: &Db,
    user: &str,
    since: Option<&SyncToken>,
    window: Option<u32>,
    lazy_members: bool,
    lead: Vec<worker::D1PreparedStatement>,
) -> Result<Snapshot> {
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
            params![user, since.rooms],
        )?);
    }
    let news = since.zip(window);
    if let Some((since, window)) = news {
        // One statement behind one gate (an index seek that finds nothing when idle, so an
        // idle poll reads one row here), rows told apart by `kind`:
        // - `w`: the new events of the joined rooms, materialised first so the window function
        //   reads only them. Of the two branches, the one-row gate before each `CROSS JOIN`
        //   (evaluated once) lets one run: near the head, from the stream index (`+room_id`
        //   keeps SQLite off the room index, which would scan every event); further behind,
        //   room by room. Unordered (an ORDER BY would cost an idle poll rows too).
        // - `r`: joined rooms with state resets (a reset is recorded at the position of the
        //   event that caused it, so there is one only when there are new events);
        // - `m`: a row when some member event is new in a room the user has any membership in
        //   (always, far behind);
        // - `l` (lazy-loaded members): the member event of each sender of a room's window as of
        //   just before the window's first event, what `members_at` reads for a timeline that
        //   is the whole window.
        const NEAR_GATE: &str = "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM events WHERE stream = ?2 + ?4)";
        const FAR_GATE: &str = "SELECT 1 WHERE EXISTS (SELECT 1 FROM events WHERE stream = ?2 + ?4)";
        const JOINED: &str = "SELECT room_id FROM memberships WHERE user_id = ?1 AND membership = 'join'";
        let pad = |keep: &str| EVENT_COLUMNS.split(',').map(|c| if c.trim() == keep { keep } else { "NULL" }).collect::<Vec<_>>().join(", ");
        let (resets_cols, member_cols) = (pad("room_id"), pad(""));
        let lazy = match lazy_members {
            true => format!(
                "
                   SELECT 'l', {EVENT_COLUMNS}, NULL FROM (
                     SELECT {EVENT_COLUMNS}, MAX(stream) AS last FROM events JOIN (
                       SELECT room_id AS rid, sender AS uid, (SELECT MIN(w2.stream) FROM w w2 WHERE w2.room_id = w.room_id) - 1 AS hi
                       FROM w GROUP BY room_id, sender) t
                       ON room_id = t.rid AND type = 'm.room.member' AND state_key = t.uid AND stream <= t.hi
                     GROUP BY room_id, state_key)
                   UNION ALL"
            ),
            false => String::new(),
        };
        stmts.push(db.stmt(
            &format!(
                "WITH n AS MATERIALIZED (
                   SELECT {EVENT_COLUMNS} FROM ({NEAR_GATE}) CROSS JOIN events WHERE stream > ?2 AND +room_id IN ({JOINED})
                   UNION ALL
                   SELECT {EVENT_COLUMNS} FROM ({FAR_GATE}) CROSS JOIN events WHERE room_id IN ({JOINED}) AND stream > ?2)
                 , w AS (SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY room_id ORDER BY stream DESC) AS rn FROM n) WHERE rn <= ?3)
                 SELECT x.* FROM (SELECT 1 WHERE EXISTS (SELECT 1 FROM events WHERE stream > ?2)) CROSS JOIN (
                   SELECT 'w' AS kind, * FROM w
                   UNION ALL{lazy}
                   SELECT 'r', {resets_cols}, NULL FROM (SELECT DISTINCT room_id FROM state_resets INDEXED BY state_resets_stream
                     WHERE stream > ?2 AND room_id IN ({JOINED}))
                   UNION ALL
                   SELECT 'm', {member_cols}, NULL FROM (
                     SELECT 1 FROM ({FAR_GATE})
                     UNION ALL
                     SELECT 1 FROM ({NEAR_GATE}) CROSS JOIN events WHERE stream > ?2 AND type = 'm.room.member'
                       AND +room_id IN (SELECT room_id FROM memberships WHERE user_id = ?1)
                     LIMIT 1)
                 ) x"
            ),
            params![user, since.rooms, window, NEAR],
        )?);
        stmts.push(super::unread_counts_gated_stmt(db, user, since.rooms, since.receipts)?);
    }
    let mut rows = db.batch_rows(stmts).await?;
    let rest = rows.split_off(n.min(rows.len()));
    let now = positions_of(rest.first());
    let members = rest.get(1).map(|r| r.iter().filter_map(|v| serde_json::from_value::<MembershipRow>(v.clone()).ok()).collect()).unwrap_or_default();
    let newly_joined = rest.get(2).map(|r| r.iter().filter_map(|v| v["room_id"].as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let news = news.map(|(since, _)| {
        let rows = rest.get(3).map(Vec::as_slice).unwrap_or_default();
        let kind = |k: &'static str| rows.iter().filter(move |v| v["kind"].as_str() == Some(k));
        let mut windows: Vec<EventRow> = kind("w").filter_map(|v| serde_json::from_value::<EventRow>(v.clone()).ok()).collect();
        windows.sort_by_key(|e| e.pos());
        let lazy_members = kind("l").filter_map(|v| serde_json::from_value::<EventRow>(v.clone()).ok()).collect();
        RoomNews {
            windows,
            lazy_members,
            resets: kind("r").filter_map(|v| v["room_id"].as_str().map(str::to_owned)).collect(),
            // The gate of the statement, from the same snapshot's positions.
            unread: (now.rooms > since.rooms || now.receipts > since.receipts).then(|| rest.get(4).map(|r| super::unread_of(r)).unwrap_or_default()),
            member_events: kind("m").next().is_some(),
        }
    });
    Ok(Snapshot { now, members, newly_joined, news, lead: rows })
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
