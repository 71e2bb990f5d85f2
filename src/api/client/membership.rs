//! Room membership: join, invite, leave, forget, kick, ban, unban, knock (spec:
//! client-server-api, "Room membership"). Each is an `m.room.member` event that the auth
//! rules judge; a refused change is `403` and changes nothing.

use crate::core::json::JsonExt;
use ruma::{OwnedRoomId, OwnedServerName, RoomId, ServerName, UserId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::params::room_id as parse_room_id;
use crate::core::ids::parse_client_user_id;
use crate::core::room::pdu::NewEvent;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::directory::{resolve_room, resolve_room_servers};
use crate::service::federation;
use crate::service::membership as membership_rules;
use crate::service::power;
use crate::service::timeline::append_via_room;
use crate::store::{federation_rooms, graph, rooms};

#[derive(Deserialize, Default)]
struct Reason {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Target {
    user_id: String,
    reason: Option<String>,
}

fn member_event(sender: &UserId, target: &str, membership: &str, reason: Option<&str>) -> NewEvent {
    let mut content = json!({ "membership": membership });
    if let Some(r) = reason {
        content.set("reason", json!(r));
    }
    NewEvent { kind: "m.room.member".into(), state_key: Some(target.into()), content, sender: sender.to_owned(), redacts: None }
}

async fn ensure_room(ctx: &Ctx, room_id: &RoomId) -> Result<()> {
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        // Joining rooms on other servers needs federation.
        return Err(err!(NotFound, "Room not found"));
    }
    Ok(())
}

async fn send_member(ctx: &Ctx, room_id: &RoomId, ev: NewEvent) -> Result<()> {
    append_via_room(ctx, room_id, &[ev], None).await?;
    Ok(())
}

/// Joins with the user's profile in the member event; for `restricted` rooms, finds a local
/// member with invite power to authorise the join when the user is in an allowed room.
async fn join(ctx: &Ctx, me: &Authed, room_id: OwnedRoomId, reason: Option<String>, via: Vec<OwnedServerName>) -> Result<Response> {
    // A room an admin blocked (`DELETE /_synapse/admin/v2/rooms/{roomId}` with `block`).
    crate::service::admin::rooms::check_not_blocked(ctx, &room_id).await?;
    crate::service::ratelimit::check(ctx, crate::core::ratelimit::Bucket::Join, me.user_id.as_str()).await?;
    // Not resident (no local member is joined): the room is joined through a server that is.
    if let Some(servers) = remote_join_servers(ctx, &room_id, &me.user_id, via).await? {
        federation::join::join_remote(ctx, &me.user_id, &room_id, &servers, reason.as_deref()).await?;
        return Ok(Response::ok(json!({ "room_id": room_id })));
    }
    ensure_room(ctx, &room_id).await?;
    let mut ev = member_event(&me.user_id, me.user_id.as_str(), "join", reason.as_deref());
    membership_rules::add_profile(ctx, &mut ev, &me.user_id).await?;
    let current = rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?;
    if !matches!(current.as_deref(), Some("join") | Some("invite")) {
        if let Some(authoriser) = restricted_authoriser(ctx, &room_id, &me.user_id).await? {
            ev.content.set("join_authorised_via_users_server", json!(authoriser));
        }
    }
    send_member(ctx, &room_id, ev).await?;
    Ok(Response::ok(json!({ "room_id": room_id })))
}

/// Where to join a room we are not resident in: the client's `via` servers, the room ID's
/// server (before room v12), and the servers of members we know of. `None`: join locally
/// (a local member is joined, or no other server is known). The room ID's server and an
/// invite's are listed as the ones most likely to be in the room.
async fn remote_join_servers(ctx: &Ctx, room_id: &RoomId, user: &UserId, via: Vec<OwnedServerName>) -> Result<Option<Vec<OwnedServerName>>> {
    let ours = ctx.server_name();
    let known = rooms::get_room(&ctx.db, room_id.as_str()).await?.is_some();
    let members = if known { graph::member_servers(&ctx.db, room_id.as_str(), "join").await? } else { vec![] };
    if members.iter().any(|s| s == ours) {
        return Ok(None);
    }
    let mut servers = via;
    // An invite from another server: its server is in the room.
    if let Some(inv) = federation_rooms::remote_invite(&ctx.db, room_id.as_str(), user.as_str()).await? {
        if let Ok(s) = ServerName::parse(&inv.via_server) {
            servers.push(s);
        }
    }
    if let Some(s) = room_id.server_name() {
        servers.push(s.to_owned());
    }
    for s in members {
        if let Ok(s) = ServerName::parse(&s) {
            servers.push(s);
        }
    }
    let mut seen = std::collections::HashSet::new();
    servers.retain(|s| s.as_str() != ours && seen.insert(s.clone()));
    Ok((!servers.is_empty()).then_some(servers))
}

/// For `restricted`/`knock_restricted` rooms: a joined local user with invite power, if the
/// joining user is joined to one of the rooms the join rules allow.
async fn restricted_authoriser(ctx: &Ctx, room_id: &RoomId, user: &UserId) -> Result<Option<String>> {
    let keys = [("m.room.join_rules".to_owned(), String::new())];
    let state = rooms::current_state_keys(&ctx.db, room_id.as_str(), &keys).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let jr = pdus.values().next().map(|p| p.content_value()).unwrap_or(Value::Null);
    if !matches!(jr.get("join_rule").and_then(Value::as_str), Some("restricted") | Some("knock_restricted")) {
        return Ok(None);
    }
    let mut allowed = false;
    for a in jr.get("allow").and_then(Value::as_array).into_iter().flatten() {
        if a["type"] == "m.room_membership" {
            if let Some(r) = a["room_id"].as_str() {
                if rooms::membership(&ctx.db, r, user.as_str()).await?.as_deref() == Some("join") {
                    allowed = true;
                    break;
                }
            }
        }
    }
    if !allowed {
        return Ok(None);
    }
    let levels = power::load(&ctx.db, room_id.as_str()).await?;
    for m in rooms::members_with(&ctx.db, room_id.as_str(), "join").await? {
        let Ok(u) = UserId::parse(m.as_str()) else { continue };
        if u.server_name() == ctx.config.server_name && levels.can_invite(&u) {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// # `POST /_matrix/client/v3/join/{roomIdOrAlias}`
pub async fn join_by_id_or_alias_route(ctx: &Ctx, req: &Request, me: &Authed, target: &str) -> Result<Response> {
    let body: Reason = req.json_or_empty()?;
    let (room_id, mut servers) = resolve_room_servers(ctx, target).await?;
    // `via` (and the older `server_name`): servers to join through.
    let mut via: Vec<OwnedServerName> =
        req.query.iter().filter(|(k, _)| k == "via" || k == "server_name").filter_map(|(_, v)| ServerName::parse(v).ok()).collect();
    via.append(&mut servers);
    join(ctx, me, room_id, body.reason, via).await
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/join`
pub async fn join_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let body: Reason = req.json_or_empty()?;
    join(ctx, me, parse_room_id(room_id)?, body.reason, vec![]).await
}

/// # `POST /_matrix/client/v3/knock/{roomIdOrAlias}`
pub async fn knock_route(ctx: &Ctx, req: &Request, me: &Authed, target: &str) -> Result<Response> {
    let body: Reason = req.json_or_empty()?;
    let room_id = resolve_room(ctx, target).await?;
    crate::service::admin::rooms::check_not_blocked(ctx, &room_id).await?;
    ensure_room(ctx, &room_id).await?;
    let mut ev = member_event(&me.user_id, me.user_id.as_str(), "knock", body.reason.as_deref());
    membership_rules::add_profile(ctx, &mut ev, &me.user_id).await?;
    send_member(ctx, &room_id, ev).await?;
    Ok(Response::ok(json!({ "room_id": room_id })))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/leave`
/// Also rejects an invite or withdraws a knock.
pub async fn leave_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let body: Reason = req.json_or_empty()?;
    let room_id = parse_room_id(room_id)?;
    // An invite from another server to a room this server is not in: rejected through the
    // inviting server (spec: server-server-api, "Leaving Rooms (Rejecting Invites)").
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none()
        && crate::service::federation::invites::reject(ctx, &me.user_id, &room_id, body.reason.as_deref()).await?
    {
        return Ok(Response::ok(json!({})));
    }
    ensure_room(ctx, &room_id).await?;
    match rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?.as_deref() {
        Some("join") | Some("invite") | Some("knock") => {}
        _ => return Err(err!(Forbidden, "You are not in this room")),
    }
    send_member(ctx, &room_id, member_event(&me.user_id, me.user_id.as_str(), "leave", body.reason.as_deref())).await?;
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/forget`
pub async fn forget_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    match rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?.as_deref() {
        Some("join") => return Err(err!(Unknown, "You must leave the room before forgetting it")),
        Some(_) => rooms::forget(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?,
        None => return Err(err!(NotFound, "You have never been in this room")),
    }
    Ok(Response::ok(json!({})))
}

async fn act_on(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, membership: &str) -> Result<Response> {
    let body: Target = req.json()?;
    let target = parse_client_user_id(&body.user_id)?;
    let room_id = parse_room_id(room_id)?;
    ensure_room(ctx, &room_id).await?;
    let current = rooms::membership(&ctx.db, room_id.as_str(), target.as_str()).await?;
    match membership {
        "invite" => {
            if current.as_deref() == Some("join") {
                return Err(err!(Forbidden, "{target} is already in the room"));
            }
            membership_rules::check_invite_allowed(ctx, &target).await?;
        }
        "kick" if !matches!(current.as_deref(), Some("join") | Some("invite") | Some("knock")) => {
            return Err(err!(Forbidden, "{target} is not in the room"));
        }
        "unban" if current.as_deref() != Some("ban") => {
            return Err(err!(Forbidden, "{target} is not banned"));
        }
        _ => {}
    }
    let event_membership = match membership {
        "kick" | "unban" => "leave",
        m => m,
    };
    let mut ev = member_event(&me.user_id, target.as_str(), event_membership, body.reason.as_deref());
    if event_membership == "invite" {
        membership_rules::add_profile(ctx, &mut ev, &target).await?;
        if target.server_name() != ctx.config.server_name {
            federation::invite::invite_remote(ctx, &room_id, &target, ev).await?;
            return Ok(Response::ok(json!({})));
        }
    }
    send_member(ctx, &room_id, ev).await?;
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/invite`
pub async fn invite_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    crate::service::ratelimit::check(ctx, crate::core::ratelimit::Bucket::Invite, me.user_id.as_str()).await?;
    act_on(ctx, req, me, room_id, "invite").await
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/kick`
pub async fn kick_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    act_on(ctx, req, me, room_id, "kick").await
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/ban`
pub async fn ban_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    act_on(ctx, req, me, room_id, "ban").await
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/unban`
pub async fn unban_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    act_on(ctx, req, me, room_id, "unban").await
}
