//! The resident server's side of the membership handshakes (spec: server-server-api,
//! "Joining Rooms", "Restricted rooms", "Knocking upon a room", "Leaving Rooms"):
//! `make_join`, `make_knock` and `make_leave` answer an unsigned template built on the
//! room's head, after the same auth rules a local membership change goes through
//! (`core::room::auth::prepare_event` with `RoomHead`), so a join the rules would refuse is
//! refused here with `403`.

use std::collections::HashSet;

use ruma::{EventId, OwnedEventId, RoomId, ServerName, UserId};
use serde_json::{json, Value};

use crate::core::federation::membership::{template_from, version_offered, Refusal};
use crate::core::room::auth::{auth_types, prepare_event, RoomHead};
use crate::core::room::pdu::NewEvent;
use crate::core::room::version_rules;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::service::federation::visibility::acl_check;
use crate::service::power;
use crate::store::rooms;

/// Which handshake: the membership of the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    Join,
    Knock,
    Leave,
}

impl Handshake {
    fn membership(self) -> &'static str {
        match self {
            Handshake::Join => "join",
            Handshake::Knock => "knock",
            Handshake::Leave => "leave",
        }
    }
}

/// `make_join` / `make_knock` / `make_leave`: `{room_version, event}` or a refusal with its
/// own error code. `ver` is the versions the other server supports (`None` for
/// `make_leave`, which has no `ver`).
pub async fn make_template(
    ctx: &Ctx,
    origin: &ServerName,
    room_id: &str,
    user_id: &str,
    which: Handshake,
    ver: Option<&[&str]>,
) -> Result<std::result::Result<Value, Refusal>> {
    let room_id = RoomId::parse(room_id).map_err(|_| err!(InvalidParam, "Invalid room ID"))?;
    let user = UserId::parse(user_id).map_err(|_| err!(InvalidParam, "Invalid user ID"))?;
    if user.server_name() != origin {
        return Err(err!(Forbidden, "The user is not on your server"));
    }
    let room = rooms::get_room(&ctx.db, room_id.as_str()).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    acl_check(ctx, room_id.as_str(), origin).await?;
    let local_joined: Vec<String> = rooms::members_with(&ctx.db, room_id.as_str(), "join")
        .await?
        .into_iter()
        .filter(|u| UserId::parse(u.as_str()).is_ok_and(|u| u.server_name() == ctx.config.server_name))
        .collect();
    if local_joined.is_empty() {
        // No longer resident: the other server must ask a server that is.
        return Err(err!(NotFound, "This server is not in the room"));
    }
    if let Some(ver) = ver {
        if !version_offered(&room.room_version, ver) {
            return Ok(Err(Refusal::IncompatibleRoomVersion(room.room_version.clone())));
        }
    }
    let (_, rules) = version_rules(&room.room_version)?;

    let mut content = json!({ "membership": which.membership() });
    if which == Handshake::Join {
        match restricted_authoriser(ctx, &room_id, &user, &local_joined).await? {
            Ok(Some(authoriser)) => {
                if let Some(c) = content.as_object_mut() {
                    c.insert("join_authorised_via_users_server".into(), json!(authoriser));
                }
            }
            Ok(None) => {}
            Err(refusal) => return Ok(Err(refusal)),
        }
    }
    let new = NewEvent { kind: "m.room.member".into(), state_key: Some(user.to_string()), content, sender: user.clone(), redacts: None };

    // The state the auth rules read, and those events with their auth events.
    let mut keys = auth_types(&rules, &new)?;
    keys.extend(
        ["m.room.create", "m.room.power_levels", "m.room.join_rules"]
            .iter()
            .map(|t| (t.to_string(), String::new()))
            .chain([("m.room.member".to_owned(), user.to_string())]),
    );
    let keys: Vec<(String, String)> = keys.into_iter().collect::<HashSet<_>>().into_iter().collect();
    let state = rooms::current_state_keys(&ctx.db, room_id.as_str(), &keys).await?;
    let mut events = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let auth: Vec<OwnedEventId> = events.values().flat_map(|p| p.auth_events.clone()).filter(|e| !events.contains_key(e)).collect();
    if !auth.is_empty() {
        events.extend(rooms::get_pdus(&ctx.db, &auth).await?);
    }
    let extremities: Vec<OwnedEventId> = crate::store::graph::parse_extremities(room.extremities.as_deref(), room.head_event.as_deref());
    let head = RoomHead { rules: &rules, room_id: Some(&room_id), state: &state, extremities: &extremities, max_depth: room.head_depth as u64 };
    let fetch = |id: &EventId| events.get(id).cloned();
    // Built and signed like a local event, then stripped of hashes and signatures: the
    // auth check is the one every local membership change passes.
    let pdu = prepare_event(&head, &new, now_ms(), ctx.server_name(), &ctx.config.signing_key, &fetch)?;
    Ok(Ok(json!({ "room_version": room.room_version, "event": template_from(&pdu, ctx.server_name()) })))
}

/// For a join to a `restricted`/`knock_restricted` room by a user not already invited or
/// joined (spec: "Restricted rooms"): a local member with the power to invite, when the user
/// is joined to one of the allowed rooms. `M_UNABLE_TO_AUTHORISE_JOIN` when this server knows
/// none of the allowed rooms; `M_UNABLE_TO_GRANT_JOIN` when the user qualifies but no local
/// member may invite. A user who does not qualify gets no authoriser, and the auth rules
/// refuse the join (`403`).
async fn restricted_authoriser(
    ctx: &Ctx,
    room_id: &RoomId,
    user: &UserId,
    local_joined: &[String],
) -> Result<std::result::Result<Option<String>, Refusal>> {
    let current = rooms::membership(&ctx.db, room_id.as_str(), user.as_str()).await?;
    if matches!(current.as_deref(), Some("join") | Some("invite")) {
        return Ok(Ok(None));
    }
    let state = rooms::current_state_keys(&ctx.db, room_id.as_str(), &[("m.room.join_rules".to_owned(), String::new())]).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let jr = pdus.values().next().map(|p| p.content_value()).unwrap_or(Value::Null);
    if !matches!(jr.get("join_rule").and_then(Value::as_str), Some("restricted") | Some("knock_restricted")) {
        return Ok(Ok(None));
    }
    let mut known = false;
    let mut qualifies = false;
    for a in jr.get("allow").and_then(Value::as_array).into_iter().flatten() {
        let Some(r) = a.get("room_id").and_then(Value::as_str).filter(|_| a.get("type").and_then(Value::as_str) == Some("m.room_membership")) else {
            continue;
        };
        if rooms::get_room(&ctx.db, r).await?.is_none() {
            continue;
        }
        known = true;
        if rooms::membership(&ctx.db, r, user.as_str()).await?.as_deref() == Some("join") {
            qualifies = true;
            break;
        }
    }
    if !known {
        return Ok(Err(Refusal::UnableToAuthoriseJoin));
    }
    if !qualifies {
        return Ok(Ok(None));
    }
    let levels = power::load(&ctx.db, room_id.as_str()).await?;
    for m in local_joined {
        if UserId::parse(m.as_str()).is_ok_and(|u| levels.can_invite(&u)) {
            return Ok(Ok(Some(m.clone())));
        }
    }
    Ok(Err(Refusal::UnableToGrantJoin))
}
