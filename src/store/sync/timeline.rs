//! Room timelines and state over stream ranges, for many rooms per statement (chunks of
//! rooms, never one query per room).

use super::{num, values_clause, MAX_PARAMS};
use crate::error::Result;
use crate::params;
use crate::store::db::Db;
use crate::store::rooms::{EventRow, EVENT_COLUMNS};

/// A stream range of one room: `(room_id, after, up_to]`.
#[derive(Clone, Debug)]
pub struct Range {
    pub room_id: String,
    pub after: u64,
    pub up_to: u64,
}

/// The last `per_room` events of each range, ascending by stream (callers fetch one more
/// than the timeline limit to learn whether it is `limited`). One statement per 30 rooms,
/// all in one batch (one round trip).
pub async fn timeline_windows(db: &Db, ranges: &[Range], per_room: u32) -> Result<Vec<EventRow>> {
    let mut stmts = Vec::new();
    for chunk in ranges.chunks((MAX_PARAMS - 1) / 3) {
        let sql = format!(
            "WITH t(rid, lo, hi) AS (VALUES {})
             SELECT * FROM (
               SELECT {EVENT_COLUMNS}, ROW_NUMBER() OVER (PARTITION BY room_id ORDER BY stream DESC) AS rn
               FROM events JOIN t ON room_id = t.rid AND stream > t.lo AND stream <= t.hi
             ) WHERE rn <= ? ORDER BY stream ASC",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for r in chunk {
            p.extend(params![r.room_id, r.after, r.up_to]);
        }
        p.push(per_room.into());
        stmts.push(db.stmt(&sql, p)?);
    }
    rows_of(db, stmts).await
}

/// The event rows of a batch of statements, in statement order.
async fn rows_of(db: &Db, stmts: Vec<worker::D1PreparedStatement>) -> Result<Vec<EventRow>> {
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    Ok(db.batch_rows(stmts).await?.into_iter().flatten().filter_map(|v| serde_json::from_value::<EventRow>(v).ok()).collect())
}

/// A state read of one room: state events in `(after, up_to]` and state resets (migration
/// 0012) in `(after, resets_up_to]` (`resets_up_to >= up_to`).
#[derive(Clone, Debug)]
pub struct StateRange {
    pub room_id: String,
    pub after: u64,
    pub up_to: u64,
    pub resets_up_to: u64,
}

/// One row of [`state_at`]: the event at a key, the position it took effect at (the event's
/// own, or the reset's), and whether that is a reset after `up_to`.
#[derive(Clone, Debug)]
pub struct StateRow {
    pub row: EventRow,
    pub at: u64,
    pub after_up_to: bool,
}

/// For each range, per `(type, state_key)`: the latest of the state events and state resets
/// in `(after, up_to]` (a reset wins over an event at its own position: it is what resolution
/// made of it) — the state delta over the range, and with `after = 0` the full state at
/// `up_to` — and, separately, the latest reset in `(up_to, resets_up_to]`. A key a reset
/// removed has no row. With `after = 0` the range reaches below position 0 too (history
/// backfilled after a join, where the room's state stored at the join moves with it).
/// Events that are only outliers (state fetched for a gap that
/// resolution picked) come with stream 0. One batch for all rooms (a second one only when
/// some event is an outlier).
pub async fn state_at(db: &Db, ranges: &[StateRange]) -> Result<Vec<StateRow>> {
    const WINNERS: &str = "c(k_room, k_type, k_key, k_event, at, reset, part) AS (
               SELECT room_id, type, state_key, event_id, stream, 0, 0 FROM events
                 JOIN t ON room_id = t.rid AND (stream > t.lo OR t.lo = 0) AND stream <= t.hi WHERE state_key IS NOT NULL
               UNION ALL
               SELECT r.room_id, r.type, r.state_key, r.event_id, r.stream, 1, CASE WHEN r.stream <= t.hi THEN 0 ELSE 1 END
                 FROM state_resets r JOIN t ON r.room_id = t.rid AND r.stream > t.lo AND r.stream <= t.rhi),
             w AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY k_room, k_type, k_key, part ORDER BY at DESC, reset DESC) AS rn FROM c)";
    let mut stmts = Vec::new();
    for chunk in ranges.chunks(MAX_PARAMS / 4) {
        let values = format!("WITH t(rid, lo, hi, rhi) AS (VALUES {}), {WINNERS}", values_clause(chunk.len(), 4));
        let mut p = Vec::new();
        for r in chunk {
            p.extend(params![r.room_id, r.after, r.up_to, r.resets_up_to.max(r.up_to)]);
        }
        stmts.push(db.stmt(
            &format!("{values} SELECT {EVENT_COLUMNS}, w.at AS at, w.part AS part FROM w JOIN events ON events.event_id = w.k_event WHERE w.rn = 1"),
            p.clone(),
        )?);
        stmts.push(db.stmt(
            &format!(
                "{values} SELECT w.k_event AS event_id, w.at AS at, w.part AS part FROM w WHERE w.rn = 1 AND w.k_event IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = w.k_event)"
            ),
            p,
        )?);
    }
    if stmts.is_empty() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    let mut outliers: Vec<(String, u64, bool)> = Vec::new();
    for (i, rows) in db.batch_rows(stmts).await?.into_iter().enumerate() {
        for v in rows {
            let at = v.get("at").map_or(0, num);
            let after_up_to = v.get("part").map_or(0, num) == 1;
            if i % 2 == 0 {
                if let Ok(row) = serde_json::from_value::<EventRow>(v) {
                    out.push(StateRow { row, at, after_up_to });
                }
            } else if let Some(id) = v.get("event_id").and_then(|e| e.as_str()) {
                outliers.push((id.to_owned(), at, after_up_to));
            }
        }
    }
    if !outliers.is_empty() {
        let ids: Vec<&str> = outliers.iter().map(|(id, _, _)| id.as_str()).collect();
        let rows = crate::store::graph::outlier_rows(db, &ids).await?;
        for (id, at, after_up_to) in &outliers {
            if let Some(row) = rows.iter().find(|r| &r.event_id == id) {
                out.push(StateRow { row: row.clone(), at: *at, after_up_to: *after_up_to });
            }
        }
    }
    Ok(out)
}

/// The member event of each `(room, user)` as of stream position `at` (lazy loading). One
/// batch.
pub async fn members_at(db: &Db, items: &[(String, String, u64)]) -> Result<Vec<EventRow>> {
    let mut stmts = Vec::new();
    for chunk in items.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "WITH t(rid, uid, hi) AS (VALUES {})
             SELECT {EVENT_COLUMNS}, MAX(stream) AS last FROM events JOIN t
               ON room_id = t.rid AND type = 'm.room.member' AND state_key = t.uid AND stream <= t.hi
             GROUP BY room_id, state_key",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for (r, u, at) in chunk {
            p.extend(params![r, u, at]);
        }
        stmts.push(db.stmt(&sql, p)?);
    }
    rows_of(db, stmts).await
}
