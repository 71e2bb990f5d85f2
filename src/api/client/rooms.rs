//! Creating rooms and listing the user's rooms (spec: client-server-api, "Rooms").

use ruma::RoomId;
use serde_json::json;

use crate::api::auth::Authed;
use crate::api::client::directory::{alias_for_name, insert_alias};
use crate::core::room::create::{plan, CreateRoomRequest};
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::params;
use crate::service::timeline;
use crate::store::{accounts, rooms};

/// # `POST /_matrix/client/v3/createRoom`
/// Presets, visibility, `initial_state`, invites, `is_direct`, `power_level_content_override`,
/// `creation_content`, `room_version`, `room_alias_name`.
pub async fn create_room_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let mut body: CreateRoomRequest = req.json()?;
    // Invitees who block invites are left out; the room is still created (spec v1.18,
    // "Invite permission").
    let mut invite = Vec::with_capacity(body.invite.len());
    for invitee in std::mem::take(&mut body.invite) {
        let blocked = match ruma::UserId::parse(invitee.as_str()) {
            Ok(u) => crate::service::membership::invites_blocked(ctx, &u).await?,
            Err(_) => false, // refused with 400 by the event plan
        };
        if !blocked {
            invite.push(invitee);
        }
    }
    body.invite = invite;
    let version = body.room_version.clone().unwrap_or_else(|| ctx.config.default_room_version.clone());
    let (_, rules) = version_rules(&version)?;
    let alias = match &body.room_alias_name {
        Some(name) => {
            let alias = alias_for_name(ctx, name)?;
            if rooms::alias_room(&ctx.db, &alias).await?.is_some() {
                return Err(err!(RoomInUse, "Room alias already taken"));
            }
            Some(alias)
        }
        None => None,
    };
    for invitee in &body.invite {
        if let Ok(u) = ruma::UserId::parse(invitee.as_str()) {
            if u.server_name() != ctx.config.server_name {
                return Err(err!(Unknown, "Inviting users of other servers needs federation, which is not available yet"));
            }
        }
    }
    let user = accounts::get_user(&ctx.db, me.user_id.as_str()).await?;
    let profile = user.map(|u| (u.displayname, u.avatar_url)).unwrap_or((None, None));
    let p = plan(
        &body,
        &me.user_id,
        profile,
        &version,
        !rules.authorization.use_room_create_sender,
        rules.authorization.explicitly_privilege_room_creators,
        alias.as_deref(),
    )?;
    let mut events = vec![p.create];
    events.extend(p.rest);
    // Invites carry the invitee's profile, as those of `/invite` do.
    for ev in events.iter_mut().filter(|e| e.kind == "m.room.member" && e.content["membership"] == "invite") {
        if let Some(target) = p.invitees.iter().find(|u| ev.state_key.as_deref() == Some(u.as_str())) {
            crate::service::membership::add_profile(ctx, ev, target).await?;
        }
    }
    let pdus = timeline::append(&ctx.db, &ctx.config, None, events, None).await?;
    // Wake the creator's and the invitees' syncs (rooms created here skip the Room object).
    let _ = crate::service::notify::after_append(&ctx.env, &ctx.db, &ctx.config, &pdus).await;
    let room_id = pdus[0].room_id.clone();
    if let Some(a) = &alias {
        if !insert_alias(ctx, a, &room_id, me.user_id.as_str()).await? {
            return Err(err!(RoomInUse, "Room alias already taken"));
        }
    }
    if body.visibility.as_deref() == Some("public") {
        ctx.db.run("UPDATE rooms SET is_public = 1 WHERE room_id = ?", params![room_id.as_str()]).await?;
    }
    Ok(Response::ok(json!({ "room_id": room_id })))
}

/// # `GET /_matrix/client/v3/joined_rooms`
pub async fn joined_rooms_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let rooms = rooms::rooms_with_membership(&ctx.db, me.user_id.as_str(), "join").await?;
    Ok(Response::ok(json!({ "joined_rooms": rooms })))
}

/// Parses a room ID path parameter.
pub fn parse_room_id(s: &str) -> Result<ruma::OwnedRoomId> {
    RoomId::parse(s).map_err(|_| err!(InvalidParam, "Invalid room ID"))
}
