//! User profiles (spec: client-server-api, "Profiles"; `profile.yaml`). Since v1.16
//! (MSC4133) a profile holds any namespaced key besides `displayname` and `avatar_url`,
//! `m.tz` among them, up to 64 KiB in all.

use crate::core::json::JsonExt;
use ruma::UserId;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::core::ids::parse_client_user_id;
use crate::core::profile::{self as rules, check_custom_value, parse_key, ProfileKey, MAX_PROFILE_BYTES};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::accounts::{self, ProfileField, User};
use crate::store::profile as fields;

fn parse_user(ctx: &Ctx, user_id: &str) -> Result<ruma::OwnedUserId> {
    let id = parse_client_user_id(user_id)?;
    if id.server_name() != ctx.config.server_name {
        return Err(err!(NotFound, "Profile not found"));
    }
    Ok(id)
}

/// Another server's user, whose profile that server is asked for.
fn remote_user(ctx: &Ctx, user_id: &str) -> Result<Option<ruma::OwnedUserId>> {
    let id = parse_client_user_id(user_id)?;
    Ok((id.server_name() != ctx.config.server_name).then_some(id))
}

async fn load(ctx: &Ctx, user_id: &str) -> Result<User> {
    let id = parse_user(ctx, user_id)?;
    match accounts::get_user(&ctx.db, id.as_str()).await? {
        Some(u) if u.deactivated == 0 => Ok(u),
        _ => Err(err!(NotFound, "Profile not found")),
    }
}

/// # `GET /_matrix/client/v3/profile/{userId}`
/// Display name, avatar and every custom field that is set.
pub async fn profile_route(ctx: &Ctx, _req: &Request, user_id: &str) -> Result<Response> {
    if let Some(remote) = remote_user(ctx, user_id)? {
        return Ok(Response::ok(crate::service::federation::query::profile(ctx, &remote, None).await?));
    }
    let id = parse_user(ctx, user_id)?;
    let body = crate::service::profile::public_profile(ctx, id.as_str()).await?;
    Ok(Response::ok(Value::Object(body)))
}

/// # `GET /_matrix/client/v3/profile/{userId}/{keyName}`
/// 404 when the user or the field does not exist.
pub async fn get_field_route(ctx: &Ctx, _req: &Request, user_id: &str, key: &str) -> Result<Response> {
    if let Some(remote) = remote_user(ctx, user_id)? {
        parse_key(key)?;
        let profile = crate::service::federation::query::profile(ctx, &remote, Some(key)).await?;
        return match profile.get(key) {
            Some(v) if !v.is_null() => Ok(Response::ok(json!({ key: v }))),
            _ => Err(err!(NotFound, "Profile field not set")),
        };
    }
    parse_user(ctx, user_id)?;
    let k = parse_key(key)?;
    let u = load(ctx, user_id).await?;
    let value: Option<Value> = match k {
        ProfileKey::Displayname => u.displayname.map(Value::String),
        ProfileKey::AvatarUrl => u.avatar_url.map(Value::String),
        ProfileKey::Custom(k) => fields::field(&ctx.db, &u.user_id, k).await?.map(|t| serde_json::from_str(&t)).transpose()?,
    };
    match value {
        Some(v) => Ok(Response::ok(json!({ key: v }))),
        None => Err(err!(NotFound, "Profile field not set")),
    }
}

/// The user's own profile and the parsed key: authentication first, then the key, then
/// the path must name the user (only users change their own profile: 403 otherwise).
async fn own_profile<'k>(ctx: &Ctx, me: &Authed, user_id: &str, key: &'k str) -> Result<(User, ProfileKey<'k>)> {
    let target = parse_client_user_id(user_id)?;
    let k = parse_key(key)?;
    if target != me.user_id {
        return Err(err!(Forbidden, "You can only change your own profile"));
    }
    let user = accounts::get_user(&ctx.db, me.user_id.as_str()).await?.ok_or_else(|| err!(Forbidden, "You can only change your own profile"))?;
    Ok((user, k))
}

/// # `PUT /_matrix/client/v3/profile/{userId}/{keyName}`
/// Only for yourself. The body holds the key named in the path (`M_MISSING_PARAM` if not).
/// `displayname` (at most 256 characters) and `avatar_url` (an `mxc://` URI) keep their
/// rules: a string, `null` or `""` clearing it, and the change is sent into the user's rooms.
/// Custom keys take any JSON but `null`; `m.tz` a string. The whole profile stays under
/// 64 KiB (`M_PROFILE_TOO_LARGE`).
pub async fn set_field_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str, key: &str) -> Result<Response> {
    let (user, k) = own_profile(ctx, me, user_id, key).await?;
    let body = req.json_value()?;
    let Some(new) = body.get(key) else {
        return Err(err!(MissingParam, "Missing key '{key}'"));
    };
    let field = match k {
        ProfileKey::Displayname => ProfileField::Displayname,
        ProfileKey::AvatarUrl => ProfileField::AvatarUrl,
        ProfileKey::Custom(k) => {
            check_custom_value(k, new)?;
            let text = new.to_string();
            // Everything but the other custom fields, which the store adds atomically.
            let classic = classic_entries(user.displayname.as_deref(), user.avatar_url.as_deref());
            let base = rules::profile_bytes(classic.iter().map(|(k, v)| (*k, v.as_str())).chain([(k, text.as_str())]));
            if !fields::set_field_within_limit(&ctx.db, &user.user_id, k, &text, base).await? {
                return Err(err!(ProfileTooLarge, "The profile would exceed {MAX_PROFILE_BYTES} bytes"));
            }
            return Ok(Response::ok(json!({})));
        }
    };
    let value = match new {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(err!(BadJson, "'{key}' must be a string")),
    };
    if let Some(v) = &value {
        match field {
            ProfileField::Displayname if v.chars().count() > 256 => return Err(err!(InvalidParam, "Display name too long (256 characters at most)")),
            ProfileField::AvatarUrl if !v.starts_with("mxc://") || v.len() > 1000 => {
                return Err(err!(InvalidParam, "avatar_url must be an mxc:// URI"))
            }
            _ => {}
        }
    }
    let (displayname, avatar) = match field {
        ProfileField::Displayname => (value.as_deref(), user.avatar_url.as_deref()),
        ProfileField::AvatarUrl => (user.displayname.as_deref(), value.as_deref()),
    };
    check_size_with(ctx, &user.user_id, displayname, avatar).await?;
    accounts::set_profile_field(&ctx.db, &user.user_id, field, value.as_deref()).await?;
    propagate_to_rooms(ctx, &user.user_id).await?;
    Ok(Response::ok(json!({})))
}

/// # `DELETE /_matrix/client/v3/profile/{userId}/{keyName}`
/// Only for yourself; succeeds when the field was not set. Removing `displayname` or
/// `avatar_url` clears it and updates the user's rooms, as setting it to `""` does.
pub async fn delete_field_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, key: &str) -> Result<Response> {
    let (user, k) = own_profile(ctx, me, user_id, key).await?;
    let field = match k {
        ProfileKey::Displayname if user.displayname.is_some() => ProfileField::Displayname,
        ProfileKey::AvatarUrl if user.avatar_url.is_some() => ProfileField::AvatarUrl,
        ProfileKey::Displayname | ProfileKey::AvatarUrl => return Ok(Response::ok(json!({}))),
        ProfileKey::Custom(k) => {
            fields::delete_field(&ctx.db, &user.user_id, k).await?;
            return Ok(Response::ok(json!({})));
        }
    };
    accounts::set_profile_field(&ctx.db, &user.user_id, field, None).await?;
    propagate_to_rooms(ctx, &user.user_id).await?;
    Ok(Response::ok(json!({})))
}

/// `("displayname", json)` and `("avatar_url", json)` members, for those that are set.
fn classic_entries(displayname: Option<&str>, avatar: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(d) = displayname {
        out.push(("displayname", rules::string_json(d)));
    }
    if let Some(a) = avatar {
        out.push(("avatar_url", rules::string_json(a)));
    }
    out
}

/// `M_PROFILE_TOO_LARGE` if the profile with this display name and avatar would exceed 64 KiB.
async fn check_size_with(ctx: &Ctx, user_id: &str, displayname: Option<&str>, avatar: Option<&str>) -> Result<()> {
    let custom = fields::fields(&ctx.db, user_id).await?;
    let classic = classic_entries(displayname, avatar);
    let size = rules::profile_bytes(classic.iter().map(|(k, v)| (*k, v.as_str())).chain(custom.iter().map(|f| (f.key.as_str(), f.value.as_str()))));
    if size > MAX_PROFILE_BYTES {
        return Err(err!(ProfileTooLarge, "The profile would exceed {MAX_PROFILE_BYTES} bytes"));
    }
    Ok(())
}

/// Like Synapse, a profile change updates the user's member event in every joined room, so
/// that other members see the new name (bounded: the first 100 rooms).
async fn propagate_to_rooms(ctx: &Ctx, user_id: &str) -> Result<()> {
    let Ok(user_id) = UserId::parse(user_id) else {
        return Ok(());
    };
    let Some(user) = accounts::get_user(&ctx.db, user_id.as_str()).await? else {
        return Ok(());
    };
    for room in crate::store::rooms::rooms_with_membership(&ctx.db, user_id.as_str(), "join").await?.into_iter().take(100) {
        let Ok(room_id) = ruma::RoomId::parse(&room) else {
            continue;
        };
        let mut content = json!({ "membership": "join" });
        if let Some(d) = &user.displayname {
            content.set("displayname", json!(d));
        }
        if let Some(a) = &user.avatar_url {
            content.set("avatar_url", json!(a));
        }
        let ev = crate::core::room::pdu::NewEvent {
            kind: "m.room.member".into(),
            state_key: Some(user_id.to_string()),
            content,
            sender: user_id.clone(),
            redacts: None,
        };
        // A room that refuses the update (e.g. power levels) keeps the old name.
        if let Err(e) = crate::service::timeline::append_via_room(ctx, &room_id, &[ev], None).await {
            crate::error::log_error(&format!("profile update in {room}: {e}"));
        }
    }
    Ok(())
}
