//! User administration (Synapse: docs/admin_api/user_admin_api.md).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{backwards, bool_query, local_user_param, page, user_param};
use crate::api::auth::Authed;
use crate::core::admin::next_token;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{parse_json, Request, Response};
use crate::service::admin::{audit, users as service};
use crate::store::{accounts, admin as store};

fn user_json(u: &store::UserRow) -> Value {
    json!({
        "name": u.user_id,
        "displayname": u.displayname,
        "avatar_url": u.avatar_url,
        "admin": u.is_admin != 0,
        "deactivated": u.deactivated != 0,
        "shadow_banned": u.shadow_banned != 0,
        "is_guest": false,
        "user_type": null,
        "locked": false,
        "erased": false,
        "approved": true,
        "creation_ts": u.created_ts as u64,
        "appservice_id": null,
        "threepids": [],
        "external_ids": [],
        "last_seen_ts": null,
    })
}

/// # `GET /_synapse/admin/v2/users`
/// Paged (`from`, `limit`, `next_token`, `total`); filters `name` (user ID or display name),
/// `user_id`, `deactivated`, `admins`, `guests` (there are no guests); `order_by`, `dir`.
pub async fn list_users_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let (from, limit) = page(req, 100)?;
    let order_by = req.query("order_by").unwrap_or("name");
    if !store::USER_ORDER.iter().any(|(k, _)| *k == order_by) {
        return Err(err!(InvalidParam, "Unknown order_by"));
    }
    let filter = store::UserFilter {
        name: req.query("name").filter(|s| !s.is_empty()),
        user_id: req.query("user_id").filter(|s| !s.is_empty()),
        deactivated: bool_query(req, "deactivated")?.unwrap_or(false),
        admins: bool_query(req, "admins")?,
        order_by,
        backwards: backwards(req)?,
        from,
        limit,
    };
    // `guests` is accepted and changes nothing: Stratus has no guest accounts.
    bool_query(req, "guests")?;
    audit(me.user_id.as_str(), "list_users", "");
    let (users, total) = store::list_users(&ctx.db, &filter).await?;
    let mut body = json!({ "users": users.iter().map(user_json).collect::<Vec<_>>(), "total": total });
    if let (Some(t), Some(o)) = (next_token(from, users.len(), total), body.as_object_mut()) {
        o.insert("next_token".into(), json!(t));
    }
    Ok(Response::ok(body))
}

/// # `GET /_synapse/admin/v2/users/{userId}`
pub async fn get_user_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    audit(me.user_id.as_str(), "get_user", user.as_str());
    let u = store::get_user(&ctx.db, user.as_str()).await?.ok_or_else(|| err!(NotFound, "User not found"))?;
    Ok(Response::ok(user_json(&u)))
}

#[derive(Deserialize, Default)]
struct PutUser {
    password: Option<String>,
    #[serde(default = "yes")]
    logout_devices: bool,
    displayname: Option<Value>,
    avatar_url: Option<Value>,
    admin: Option<bool>,
    deactivated: Option<bool>,
}

fn yes() -> bool {
    true
}

/// # `PUT /_synapse/admin/v2/users/{userId}`
/// Creates the account (201) or modifies it (200): `password` (with `logout_devices`, default
/// true), `displayname`, `avatar_url`, `admin`, `deactivated`. Threepids, external IDs, user
/// types and locking are not supported (ignored).
pub async fn put_user_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    let body: PutUser = parse_json(req.json_value()?)?;
    let string_or_null = |v: &Option<Value>, name: &str| -> Result<Option<Option<String>>> {
        match v {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(err!(InvalidParam, "{name} must be a string")),
        }
    };
    let displayname = string_or_null(&body.displayname, "displayname")?;
    let avatar_url = string_or_null(&body.avatar_url, "avatar_url")?;
    audit(me.user_id.as_str(), "put_user", user.as_str());
    let existing = store::get_user(&ctx.db, user.as_str()).await?;
    let created = existing.is_none();
    if created {
        // No password: the account cannot log in with one (as Synapse).
        let hash = match &body.password {
            Some(p) => Some(crate::api::auth::new_password_hash(ctx, p).await?),
            None => None,
        };
        crate::core::ids::validate_new_localpart(user.localpart(), &ctx.config.server_name, &[], true)?;
        let name = displayname.clone().flatten().unwrap_or_else(|| user.localpart().to_owned());
        if !store::create_user(&ctx.db, user.as_str(), hash.as_deref(), &name, body.admin.unwrap_or(false)).await? {
            return Err(err!(UserInUse, "User ID already taken"));
        }
    } else if let Some(p) = &body.password {
        service::set_password(ctx, &user, p, body.logout_devices).await?;
    }
    if !created {
        if let Some(d) = &displayname {
            accounts::set_profile_field(&ctx.db, user.as_str(), accounts::ProfileField::Displayname, d.as_deref()).await?;
        }
        if let Some(a) = body.admin {
            store::set_admin(&ctx.db, user.as_str(), a).await?;
        }
    }
    if let Some(a) = &avatar_url {
        accounts::set_profile_field(&ctx.db, user.as_str(), accounts::ProfileField::AvatarUrl, a.as_deref()).await?;
    }
    match (body.deactivated, existing.as_ref().map(|u| u.deactivated != 0)) {
        (Some(true), Some(false)) => service::deactivate(ctx, &user).await?,
        (Some(false), Some(true)) => {
            // Synapse needs a password to reactivate an account that has none.
            if body.password.is_none() && existing.as_ref().is_some_and(|u| u.has_password == 0) {
                return Err(err!(InvalidParam, "Must provide a password to re-activate an account"));
            }
            store::set_reactivated(&ctx.db, user.as_str()).await?;
        }
        _ => {}
    }
    let u = store::get_user(&ctx.db, user.as_str()).await?.ok_or_else(|| err!(NotFound, "User not found"))?;
    Ok(Response::json(if created { 201 } else { 200 }, &user_json(&u)))
}

/// # `POST /_synapse/admin/v1/deactivate/{userId}`
/// `erase` is accepted; messages are not erased.
pub async fn deactivate_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    audit(me.user_id.as_str(), "deactivate", user.as_str());
    if store::get_user(&ctx.db, user.as_str()).await?.is_none() {
        return Err(err!(NotFound, "User not found"));
    }
    service::deactivate(ctx, &user).await?;
    Ok(Response::ok(json!({ "id_server_unbind_result": "success" })))
}

#[derive(Deserialize)]
struct ResetBody {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

/// # `POST /_synapse/admin/v1/reset_password/{userId}`
pub async fn reset_password_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    let body: ResetBody = req.json()?;
    audit(me.user_id.as_str(), "reset_password", user.as_str());
    if store::get_user(&ctx.db, user.as_str()).await?.is_none() {
        return Err(err!(NotFound, "User not found"));
    }
    service::set_password(ctx, &user, &body.new_password, body.logout_devices).await?;
    Ok(Response::ok(json!({})))
}

/// # `GET /_synapse/admin/v1/users/{userId}/joined_rooms`
pub async fn joined_rooms_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = user_param(user_id)?;
    audit(me.user_id.as_str(), "joined_rooms", user.as_str());
    let rooms = store::joined_rooms(&ctx.db, user.as_str()).await?;
    Ok(Response::ok(json!({ "total": rooms.len(), "joined_rooms": rooms })))
}

/// # `GET /_synapse/admin/v2/users/{userId}/devices`
pub async fn devices_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    audit(me.user_id.as_str(), "devices", user.as_str());
    let devices: Vec<Value> = accounts::list_devices(&ctx.db, user.as_str())
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "device_id": d.device_id, "display_name": d.display_name, "last_seen_ip": d.last_seen_ip,
                "last_seen_ts": d.last_seen_ts, "last_seen_user_agent": null, "user_id": user,
            })
        })
        .collect();
    Ok(Response::ok(json!({ "total": devices.len(), "devices": devices })))
}

/// # `GET /_synapse/admin/v1/whois/{userId}`
/// Devices with their last address and time (Stratus keeps one per device, not a session
/// history).
pub async fn whois_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    audit(me.user_id.as_str(), "whois", user.as_str());
    let mut devices = serde_json::Map::new();
    for d in accounts::list_devices(&ctx.db, user.as_str()).await? {
        let conns = match (&d.last_seen_ip, d.last_seen_ts) {
            (Some(ip), Some(ts)) => json!([{ "ip": ip, "last_seen": ts, "user_agent": null }]),
            _ => json!([]),
        };
        devices.insert(d.device_id, json!({ "sessions": [{ "connections": conns }] }));
    }
    Ok(Response::ok(json!({ "user_id": user, "devices": devices })))
}

/// # `POST /_synapse/admin/v1/users/{userId}/shadow_ban`
/// # `DELETE /_synapse/admin/v1/users/{userId}/shadow_ban`
/// A shadow-banned user's events are accepted with an event ID but never stored or sent.
pub async fn shadow_ban_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    let ban = req.method != crate::http::Method::Delete;
    audit(me.user_id.as_str(), if ban { "shadow_ban" } else { "shadow_unban" }, user.as_str());
    if !store::set_shadow_banned(&ctx.db, user.as_str(), ban).await? {
        return Err(err!(NotFound, "User not found"));
    }
    Ok(Response::ok(json!({})))
}
