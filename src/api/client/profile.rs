//! User profiles (spec: client-server-api, "Profiles").

use ruma::UserId;
use serde_json::{json, Value};

use crate::api::auth::authenticate;
use crate::core::ids::parse_client_user_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::accounts::{self, ProfileField, User};

fn parse_user(ctx: &Ctx, user_id: &str) -> Result<ruma::OwnedUserId> {
    let id = parse_client_user_id(user_id)?;
    if id.server_name() != ctx.config.server_name {
        // Federation queries come with the federation issue.
        return Err(err!(NotFound, "Profile not found"));
    }
    Ok(id)
}

async fn load(ctx: &Ctx, user_id: &str) -> Result<User> {
    let id = parse_user(ctx, user_id)?;
    match accounts::get_user(&ctx.db, id.as_str()).await? {
        Some(u) if u.deactivated == 0 => Ok(u),
        _ => Err(err!(NotFound, "Profile not found")),
    }
}

fn field(name: &str) -> Result<ProfileField> {
    match name {
        "displayname" => Ok(ProfileField::Displayname),
        "avatar_url" => Ok(ProfileField::AvatarUrl),
        _ => Err(err!(NotFound, "Profile field not found")),
    }
}

/// # `GET /_matrix/client/v3/profile/{userId}`
pub async fn profile_route(ctx: &Ctx, _req: &Request, user_id: &str) -> Result<Response> {
    let u = load(ctx, user_id).await?;
    let mut body = json!({});
    if let Some(d) = u.displayname {
        body["displayname"] = json!(d);
    }
    if let Some(a) = u.avatar_url {
        body["avatar_url"] = json!(a);
    }
    Ok(Response::ok(body))
}

/// # `GET /_matrix/client/v3/profile/{userId}/{keyName}`
pub async fn get_field_route(ctx: &Ctx, _req: &Request, user_id: &str, key: &str) -> Result<Response> {
    let u = load(ctx, user_id).await?;
    let value = match field(key)? {
        ProfileField::Displayname => u.displayname,
        ProfileField::AvatarUrl => u.avatar_url,
    };
    match value {
        Some(v) => Ok(Response::ok(json!({ key: v }))),
        None => Err(err!(NotFound, "Profile field not set")),
    }
}

/// # `PUT /_matrix/client/v3/profile/{userId}/{keyName}`
/// Only for yourself. `displayname` at most 256 characters; `avatar_url` an `mxc://` URI.
/// `null` or `""` clears the field.
pub async fn set_field_route(ctx: &Ctx, req: &Request, user_id: &str, key: &str) -> Result<Response> {
    let me = authenticate(ctx, req).await?;
    let target = parse_client_user_id(user_id)?;
    if target != me.user_id {
        return Err(err!(Forbidden, "You can only change your own profile"));
    }
    let f = field(key).map_err(|_| err!(InvalidParam, "Unsupported profile field"))?;
    let body = req.json_value()?;
    let value = match body.get(key) {
        None => return Err(err!(BadJson, "Missing key '{key}'")),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(err!(BadJson, "'{key}' must be a string")),
    };
    if let Some(v) = &value {
        match f {
            ProfileField::Displayname if v.chars().count() > 256 => return Err(err!(InvalidParam, "Display name too long (256 characters at most)")),
            ProfileField::AvatarUrl if !v.starts_with("mxc://") || v.len() > 1000 => {
                return Err(err!(InvalidParam, "avatar_url must be an mxc:// URI"))
            }
            _ => {}
        }
    }
    accounts::set_profile_field(&ctx.db, me.user_id.as_str(), f, value.as_deref()).await?;
    propagate_to_rooms(ctx, &me.user_id).await?;
    Ok(Response::ok(json!({})))
}

/// Like Synapse, a profile change updates the user's member event in every joined room, so
/// that other members see the new name (bounded: the first 100 rooms).
async fn propagate_to_rooms(ctx: &Ctx, user_id: &UserId) -> Result<()> {
    let Some(user) = accounts::get_user(&ctx.db, user_id.as_str()).await? else { return Ok(()) };
    for room in crate::store::rooms::rooms_with_membership(&ctx.db, user_id.as_str(), "join").await?.into_iter().take(100) {
        let Ok(room_id) = ruma::RoomId::parse(&room) else { continue };
        let mut content = json!({ "membership": "join" });
        if let Some(d) = &user.displayname {
            content["displayname"] = json!(d);
        }
        if let Some(a) = &user.avatar_url {
            content["avatar_url"] = json!(a);
        }
        let ev = crate::core::room::pdu::NewEvent {
            kind: "m.room.member".into(),
            state_key: Some(user_id.to_string()),
            content,
            sender: user_id.to_owned(),
            redacts: None,
        };
        // A room that refuses the update (e.g. power levels) keeps the old name.
        if let Err(e) = crate::service::timeline::append_via_room(ctx, &room_id, &[ev], None).await {
            crate::error::log_error(&format!("profile update in {room}: {e}"));
        }
    }
    Ok(())
}
