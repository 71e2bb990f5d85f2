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

/// A stream position token: `s<N>` (the position after the event with stream ordering N).
pub fn stream_token(t: &str) -> Result<u64> {
    t.strip_prefix('s')
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| err!(InvalidParam, "Invalid pagination token"))
}
