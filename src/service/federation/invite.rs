//! Inviting another server's user to a room (spec: server-server-api, "Inviting to a room"):
//! the invite is built and authorised here, signed by the invitee's server (`PUT
//! /_matrix/federation/v2/invite`), and only then stored, through the checks on receipt.

use ruma::signatures::Verified;
use ruma::{RoomId, UserId};
use serde_json::{json, Value};

use crate::core::federation::pdu::{incoming, to_wire};
use crate::core::federation::uri_component;
use crate::core::room::pdu::NewEvent;
use crate::core::room::{version_rules, STRIPPED_STATE_TYPES};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Method;
use crate::service::federation::{client, keys, room};
use crate::service::timeline;
use crate::store::rooms;

/// The stripped state sent with an invite (spec: "Stripped state").
async fn invite_room_state(ctx: &Ctx, room_id: &RoomId) -> Result<Vec<Value>> {
    let keys: Vec<(String, String)> = STRIPPED_STATE_TYPES.iter().map(|t| ((*t).to_owned(), String::new())).collect();
    let state = rooms::current_state_keys(&ctx.db, room_id.as_str(), &keys).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.into_values().collect::<Vec<_>>()).await?;
    Ok(pdus
        .values()
        .map(|p| {
            // The create event in full: the invitee's server checks the room from it.
            if p.kind.to_string() == "m.room.create" {
                to_wire(p)
            } else {
                p.stripped()
            }
        })
        .collect())
}

/// Invites `target` (a user of another server) with the member event `ev`.
pub async fn invite_remote(ctx: &Ctx, room_id: &RoomId, target: &UserId, ev: NewEvent) -> Result<()> {
    let row = rooms::get_room(&ctx.db, room_id.as_str()).await?.ok_or_else(|| err!(NotFound, "Unknown room"))?;
    let (_, rules) = version_rules(&row.room_version)?;
    let pdu = timeline::prepare(&ctx.db, &ctx.config, room_id, ev).await?;
    let body = json!({
        "event": to_wire(&pdu),
        "room_version": row.room_version,
        "invite_room_state": invite_room_state(ctx, room_id).await?,
    });
    let path = format!("/_matrix/federation/v2/invite/{}/{}", uri_component(room_id.as_str()), uri_component(pdu.event_id.as_str()));
    let answer = client::request(ctx, target.server_name(), Method::Put, &path, Some(&body)).await?;
    let signed = answer.get("event").cloned().ok_or_else(|| err!(Unknown, "The invitee's server did not sign the invite"))?;
    let back = incoming(&rules, &signed, Some(room_id))?;
    if back.event_id != pdu.event_id {
        return Err(err!(Unknown, "The invitee's server changed the invite"));
    }
    // Their signature must be there and valid (the sender's is ours).
    let theirs = match back.json.get("signatures") {
        Some(ruma::CanonicalJsonValue::Object(s)) => s.contains_key(target.server_name().as_str()),
        _ => false,
    };
    if !theirs || !matches!(keys::verify_event(ctx, &rules, &back.json).await?, Verified::All) {
        return Err(err!(Unknown, "The invitee's server did not sign the invite"));
    }
    let (results, _) = room::ingest(ctx, room_id, ctx.config.server_name.as_ref(), vec![signed]).await?;
    match results.into_iter().next() {
        Some(r) if r.accepted => Ok(()),
        Some(r) => Err(err!(Forbidden, "{}", r.error.unwrap_or_else(|| "The invite is not allowed".into()))),
        None => Err(err!(Forbidden, "The invite was refused")),
    }
}
