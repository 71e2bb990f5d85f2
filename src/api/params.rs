//! Parsing of path and query parameters that many handlers share (pure: no storage).

use ruma::{EventId, OwnedEventId, OwnedRoomId};

use crate::err;
use crate::error::Result;

/// A room ID path parameter.
pub fn room_id(s: &str) -> Result<OwnedRoomId> {
    crate::core::room::parse_room_id(s)
}

/// An event ID path parameter.
pub fn event_id(s: &str) -> Result<OwnedEventId> {
    EventId::parse(s).map_err(|_| err!(InvalidParam, "Invalid event ID"))
}

/// A stream position token: `s<N>` (the position after the event with stream ordering N),
/// negative in history backfilled after a join (`s-17`). A sync token (`s<N>_…`) gives its
/// room position.
pub fn stream_token(t: &str) -> Result<i64> {
    let rest = t.strip_prefix('s').ok_or_else(|| err!(InvalidParam, "Invalid pagination token"))?;
    let (neg, digits) = match rest.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, rest),
    };
    let n: i64 = digits
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .filter(|d| !d.is_empty() && d.len() <= 16)
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| err!(InvalidParam, "Invalid pagination token"))?;
    Ok(if neg { -n } else { n })
}
