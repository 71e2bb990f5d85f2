//! Invites from other servers (spec: server-server-api, "Inviting to a room",
//! `PUT /_matrix/federation/v2/invite`) and rejecting them ("Leaving Rooms (Rejecting
//! Invites)"). An accepted invite is countersigned and stored: in `remote_invites` with the
//! stripped state the inviter sent, and, for a room this server is not in, as an out-of-band
//! `events` row with the user's `memberships` row at `invite`, so that `/sync` shows it under
//! `rooms.invite` like a local one and moves it to `leave` once rejected.

use std::collections::HashMap;

use ruma::{EventId, RoomId, ServerName, UserId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::core::federation::membership::{
    canonical_object, check_invite, countersign, leave_from_template, out_of_band_leave, stripped_invite_state, Refusal,
};
use crate::core::federation::uri_component;
use crate::core::room::pdu::{parse_stored, Pdu};
use crate::core::room::version_rules;
use crate::core::sync::StrippedStateEvent;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::http::Method;
use crate::service::federation::client;
use crate::service::federation::visibility::acl_check;
use crate::service::{membership, wakeups};
use crate::store::federation_rooms::{self as fstore, NewRemoteInvite, RemoteInviteRow};
use crate::store::{accounts, rooms};

/// The body of `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`.
#[derive(Deserialize)]
pub struct InviteBody {
    pub event: Value,
    pub room_version: String,
    #[serde(default)]
    pub invite_room_state: Vec<Value>,
}

/// The invite's signatures (the sender's server's), with the origin's keys; a content-hash
/// mismatch is refused too (an invite is never kept redacted). A failure is `400
/// M_INVALID_PARAM`, the spec's suggested code.
async fn verify_signatures(ctx: &Ctx, rules: &ruma::room_version_rules::RoomVersionRules, pdu: &Pdu) -> Result<()> {
    match crate::service::federation::keys::verify_event(ctx, rules, &pdu.json).await {
        Ok(ruma::signatures::Verified::All) => Ok(()),
        Ok(ruma::signatures::Verified::Signatures) => Err(err!(InvalidParam, "The invite's content hash does not match")),
        Err(e) => Err(err!(InvalidParam, "{e}")),
    }
}

/// Receives an invite for a local user: checks it (room version, event ID, shape, sender on
/// `origin`, invitee here and accepting invites, signatures), countersigns it and stores it.
/// Returns the event with our signature, or the refusal of an unsupported room version.
pub async fn receive(ctx: &Ctx, origin: &ServerName, room_id: &str, event_id: &str, body: InviteBody) -> Result<std::result::Result<Value, Refusal>> {
    let Ok((_, rules)) = version_rules(&body.room_version) else {
        return Ok(Err(Refusal::IncompatibleRoomVersion(body.room_version)));
    };
    let room_id = RoomId::parse(room_id).map_err(|_| err!(InvalidParam, "Invalid room ID"))?;
    let ours = <&ServerName>::try_from(ctx.server_name()).map_err(Error::internal)?;
    let pdu = check_invite(&rules, &room_id, event_id, canonical_object(&body.event)?, origin, ours)?;
    acl_check(ctx, room_id.as_str(), origin).await?;
    verify_signatures(ctx, &rules, &pdu).await?;
    let invitee = UserId::parse(pdu.state_key.as_deref().unwrap_or_default()).map_err(|_| err!(InvalidParam, "Bad state_key"))?;
    if accounts::get_user(&ctx.db, invitee.as_str()).await?.is_none_or(|u| u.deactivated != 0) {
        return Err(err!(NotFound, "Unknown user"));
    }
    membership::check_invite_allowed(ctx, &invitee).await?;
    let stripped = stripped_invite_state(rules.authorization.room_create_event_id_as_room_id, &body.invite_room_state)?;

    let mut json = pdu.json.clone();
    countersign(&rules, &mut json, ctx.server_name(), &ctx.config.signing_key)?;
    let signed = Pdu::from_json(pdu.event_id.clone(), json, Some(&room_id))?;

    let mut stmts = vec![fstore::upsert_remote_invite_stmt(
        &ctx.db,
        &signed,
        &NewRemoteInvite { invite_state_json: &serde_json::to_string(&stripped)?, room_version: &body.room_version, via_server: origin.as_str() },
    )?];
    // In a room this server is in, the invite also arrives in a transaction and is stored
    // there with its state; only for a room unknown here is it stored out of band.
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        stmts.extend(fstore::out_of_band_member_stmts(&ctx.db, &signed, "invite")?);
    }
    ctx.db.batch(stmts).await?;
    wakeups::notify_users(&ctx.env, &ctx.config, [invitee.to_string()]).await;
    Ok(Ok(json!({ "event": serde_json::to_value(&signed.json)? })))
}

/// Rejects a remote invite to a room this server is not in: `make_leave` on the inviting
/// server, the leave built from its template and signed here, `send_leave` back to it
/// (spec: "Leaving Rooms (Rejecting Invites)"). The user's membership then moves to `leave`
/// here with that event. `Ok(false)` when the user has no remote invite to the room.
///
/// If the inviting server cannot be reached or refuses, the invite is still dropped here
/// with an out-of-band leave only this server knows (Synapse does the same): the user must
/// be able to get rid of an invite from a server that went away.
pub async fn reject(ctx: &Ctx, user: &UserId, room_id: &RoomId, reason: Option<&str>) -> Result<bool> {
    let Some(row) = fstore::remote_invite(&ctx.db, room_id.as_str(), user.as_str()).await? else {
        return Ok(false);
    };
    if rooms::membership(&ctx.db, room_id.as_str(), user.as_str()).await?.as_deref() != Some("invite") {
        return Ok(false);
    }
    let (_, rules) = version_rules(&row.room_version)?;
    let invite = invite_pdu(&row, room_id)?;
    let leave = match remote_leave(ctx, &row, room_id, user, reason).await {
        Ok(p) => p,
        Err(e) => {
            worker::console_log!("rejecting the invite to {room_id} through {}: {e}; dropped here only", row.via_server);
            out_of_band_leave(&rules, &invite, now_ms(), ctx.server_name(), &ctx.config.signing_key)?
        }
    };
    let mut stmts = fstore::out_of_band_member_stmts(&ctx.db, &leave, "leave")?;
    stmts.push(fstore::delete_remote_invite_stmt(&ctx.db, room_id.as_str(), user.as_str())?);
    ctx.db.batch(stmts).await?;
    wakeups::notify_users(&ctx.env, &ctx.config, [user.to_string()]).await;
    Ok(true)
}

fn invite_pdu(row: &RemoteInviteRow, room_id: &RoomId) -> Result<Pdu> {
    let id = EventId::parse(&row.event_id).map_err(Error::internal)?;
    Pdu::from_json(id, parse_stored(&row.event_json)?, Some(room_id))
}

/// The make_leave / send_leave exchange with the inviting server; the leave it accepted.
async fn remote_leave(ctx: &Ctx, row: &RemoteInviteRow, room_id: &RoomId, user: &UserId, reason: Option<&str>) -> Result<Pdu> {
    let via = <&ServerName>::try_from(row.via_server.as_str()).map_err(Error::internal)?;
    let (_, rules) = version_rules(&row.room_version)?;
    let made = client::request(
        ctx,
        via,
        Method::Get,
        &format!("/_matrix/federation/v1/make_leave/{}/{}", uri_component(room_id.as_str()), uri_component(user.as_str())),
        None,
    )
    .await?;
    let mut template = made.get("event").cloned().ok_or_else(|| err!(Unknown, "make_leave answered no template"))?;
    if let (Some(r), Some(c)) = (reason, template.get_mut("content").and_then(Value::as_object_mut)) {
        c.insert("reason".into(), json!(r));
    }
    let leave = leave_from_template(&rules, room_id, user, &template, now_ms(), ctx.server_name(), &ctx.config.signing_key)?;
    let body = serde_json::to_value(&leave.json)?;
    client::request(
        ctx,
        via,
        Method::Put,
        &format!("/_matrix/federation/v2/send_leave/{}/{}", uri_component(room_id.as_str()), uri_component(leave.event_id.as_str())),
        Some(&body),
    )
    .await?;
    Ok(leave)
}

/// The `invite_state` of the user's pending remote invites, by room: the stripped state the
/// inviter sent and the invite event itself (with its ID and time, as clients read them).
pub async fn pending_invite_state(ctx: &Ctx, user: &str) -> Result<HashMap<String, Vec<StrippedStateEvent>>> {
    let mut out = HashMap::new();
    for row in fstore::pending_remote_invites(&ctx.db, user).await? {
        let stripped: Vec<Value> = serde_json::from_str(&row.invite_state_json).unwrap_or_default();
        let mut events: Vec<StrippedStateEvent> = stripped
            .into_iter()
            .filter(|e| !(e["type"] == "m.room.member" && e["state_key"] == user))
            .filter_map(|e| {
                Some(StrippedStateEvent {
                    kind: e.get("type")?.as_str()?.to_owned(),
                    state_key: e.get("state_key").and_then(Value::as_str).map(str::to_owned),
                    sender: e.get("sender").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    content: e.get("content").cloned().unwrap_or_else(|| json!({})),
                    event_id: None,
                    origin_server_ts: None,
                    room_id: None,
                })
            })
            .collect();
        if let Ok(j) = serde_json::from_str::<Value>(&row.event_json) {
            events.push(StrippedStateEvent {
                kind: "m.room.member".into(),
                state_key: Some(user.to_owned()),
                sender: j.get("sender").and_then(Value::as_str).unwrap_or_default().to_owned(),
                content: j.get("content").cloned().unwrap_or_else(|| json!({})),
                event_id: Some(row.event_id.clone()),
                origin_server_ts: j.get("origin_server_ts").and_then(Value::as_u64),
                room_id: Some(row.room_id.clone()),
            });
        }
        out.insert(row.room_id, events);
    }
    Ok(out)
}
