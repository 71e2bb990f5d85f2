//! Room server ACLs on inbound federation (spec: server-server-api, "Server Access Control
//! Lists (ACLs)"): the endpoints that name a room check the origin against the room's current
//! `m.room.server_acl`.

use ruma::{RoomId, ServerName};
use serde_json::Value;

use crate::core::federation::acl::allows;
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::store::rooms;

/// 403 `M_FORBIDDEN` when the room's current server ACL denies `origin`; no ACL allows all.
pub async fn check(ctx: &Ctx, room_id: &RoomId, origin: &ServerName) -> Result<()> {
    let key = ("m.room.server_acl".to_owned(), String::new());
    let state = rooms::current_state_keys(&ctx.db, room_id.as_str(), std::slice::from_ref(&key)).await?;
    let Some(event_id) = state.get(&key) else { return Ok(()) };
    let pdus = rooms::get_pdus(&ctx.db, std::slice::from_ref(event_id)).await?;
    let Some(pdu) = pdus.get(event_id) else { return Ok(()) };
    let content: Value = serde_json::from_str(pdu.content.get()).unwrap_or(Value::Null);
    if allows(&content, origin.as_str()) {
        Ok(())
    } else {
        Err(err!(Forbidden, "Server {origin} is denied by the room's server ACL"))
    }
}

/// The answer for PDUs of a room whose server ACL (`acl`, the content of its current
/// `m.room.server_acl`) denies `origin`: each PDU's event ID with the refusal (as Synapse
/// does, so the origin knows they were not taken); `None` when the ACL allows the origin.
pub fn refusals(acl: Option<&Value>, room_version: &str, origin: &ServerName, pdus: &[Value]) -> Option<Vec<(String, String)>> {
    let acl = acl?;
    if allows(acl, origin.as_str()) {
        return None;
    }
    let why = format!("Server {origin} is denied by the room's server ACL");
    let Ok((_, rules)) = version_rules(room_version) else { return Some(vec![]) };
    Some(pdus.iter().filter_map(|p| super::ingest::event_id_of(&rules, p)).map(|id| (id.to_string(), why.clone())).collect())
}
