//! Loading a room's power levels ([`PowerLevels`], built by `core::room::power` from the
//! room's create and power-levels events with its version's rules).

use ruma::UserId;

use crate::core::room::power::PowerLevels;
use crate::core::room::state::StateMap;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::rooms::room_rules;
use crate::store::db::Db;
use crate::store::rooms;

fn keys() -> [(String, String); 2] {
    [("m.room.create".to_owned(), String::new()), ("m.room.power_levels".to_owned(), String::new())]
}

/// The power levels of the room's current state.
pub async fn load(db: &Db, room_id: &str) -> Result<PowerLevels> {
    let rules = room_rules(db, room_id).await?;
    let state = rooms::current_state_keys(db, room_id, &keys()).await?;
    from_state(db, &rules, &state).await
}

/// The power levels of a given state of the room (e.g. the state at an event).
pub async fn from_state(db: &Db, rules: &ruma::room_version_rules::RoomVersionRules, state: &StateMap) -> Result<PowerLevels> {
    let ids: Vec<_> = keys().iter().filter_map(|k| state.get(k).cloned()).collect();
    let pdus = rooms::get_pdus(db, &ids).await?;
    let get = |t: &str| state.get(&(t.to_owned(), String::new())).and_then(|e| pdus.get(e));
    PowerLevels::new(rules, get("m.room.create"), get("m.room.power_levels"))
}

/// Whether a joined user's power level allows sending a state event of this type (the
/// directory and upgrades ask before acting outside the timeline).
pub async fn can_send_state(ctx: &Ctx, room_id: &str, user: &UserId, kind: &str) -> Result<bool> {
    if rooms::membership(&ctx.db, room_id, user.as_str()).await?.as_deref() != Some("join") {
        return Ok(false);
    }
    if rooms::get_room(&ctx.db, room_id).await?.is_none() {
        return Ok(false);
    }
    Ok(load(&ctx.db, room_id).await?.can_send_state(user, kind))
}
