//! Room timelines and state over stream ranges, for many rooms per statement (chunks of
//! rooms, never one query per room).

use super::{values_clause, MAX_PARAMS};
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
/// than the timeline limit to learn whether it is `limited`). One query per 30 rooms.
pub async fn timeline_windows(db: &Db, ranges: &[Range], per_room: u32) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
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
        out.extend(db.all::<EventRow>(&sql, p).await?);
    }
    Ok(out)
}

/// For each range, the latest state event of every `(type, state_key)` written in it: the
/// state delta over the range (local rooms are linear, so this is the resolved state).
/// With `after = 0` it is the full state at `up_to`, history backfilled after a join (below
/// position 0, where the room's state stored at the join moves with it) included.
pub async fn state_deltas(db: &Db, ranges: &[Range]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
    for chunk in ranges.chunks(MAX_PARAMS / 3) {
        let sql = format!(
            "WITH t(rid, lo, hi) AS (VALUES {})
             SELECT {EVENT_COLUMNS}, MAX(stream) AS last FROM events JOIN t ON room_id = t.rid AND (stream > t.lo OR t.lo = 0) AND stream <= t.hi
             WHERE state_key IS NOT NULL GROUP BY room_id, type, state_key",
            values_clause(chunk.len(), 3)
        );
        let mut p = Vec::new();
        for r in chunk {
            p.extend(params![r.room_id, r.after, r.up_to]);
        }
        out.extend(db.all::<EventRow>(&sql, p).await?);
    }
    Ok(out)
}

/// The member event of each `(room, user)` as of stream position `at` (lazy loading).
pub async fn members_at(db: &Db, items: &[(String, String, u64)]) -> Result<Vec<EventRow>> {
    let mut out = Vec::new();
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
        out.extend(db.all::<EventRow>(&sql, p).await?);
    }
    Ok(out)
}
