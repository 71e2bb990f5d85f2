//! The room graph: building PDUs, authorising them with ruma's auth rules, state maps and
//! state resolution, history visibility, and the plan of events `createRoom` sends.
//! All native; the storage and the per-room serialisation live in `service::timeline`.

pub mod auth;
pub mod create;
pub mod pdu;
pub mod power;
pub mod resets;
pub mod state;
pub mod visibility;

#[cfg(test)]
mod tests;

use ruma::{room_version_rules::RoomVersionRules, OwnedRoomId, RoomId, RoomVersionId};

use crate::err;
use crate::error::Result;

/// Room versions new rooms may use, with their stability for `/capabilities`. Versions 1 and 2
/// use a different event-ID format and state resolution v1, which ruma does not implement.
/// The state events a room's stripped state carries (spec: client-server-api, "Stripped
/// state"): what invites and knocks show of a room, besides the user's own member event.
pub const STRIPPED_STATE_TYPES: [&str; 7] =
    ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"];

pub const SUPPORTED_VERSIONS: &[(&str, &str)] = &[
    ("3", "unstable"),
    ("4", "unstable"),
    ("5", "unstable"),
    ("6", "stable"),
    ("7", "stable"),
    ("8", "stable"),
    ("9", "stable"),
    ("10", "stable"),
    ("11", "stable"),
    ("12", "stable"),
];

/// The rules of a supported room version, or `M_UNSUPPORTED_ROOM_VERSION`.
pub fn version_rules(version: &str) -> Result<(RoomVersionId, RoomVersionRules)> {
    if !SUPPORTED_VERSIONS.iter().any(|(v, _)| *v == version) {
        return Err(err!(UnsupportedRoomVersion, "Room version {version} is not supported"));
    }
    let id = RoomVersionId::try_from(version).map_err(|_| err!(UnsupportedRoomVersion, "Bad room version"))?;
    let rules = id.rules().ok_or_else(|| err!(UnsupportedRoomVersion, "Unknown room version"))?;
    Ok((id, rules))
}

/// A room ID given by a client (`400 M_INVALID_PARAM` if malformed).
pub fn parse_room_id(s: &str) -> Result<OwnedRoomId> {
    RoomId::parse(s).map_err(|_| err!(InvalidParam, "Invalid room ID"))
}
