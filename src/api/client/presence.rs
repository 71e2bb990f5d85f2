//! Presence (spec: client-server-api, "Presence", `modules/presence.md`): set and get; the
//! changes reach, through `/sync`, the users who share a room with the user, and their
//! servers (`service::federation::edu::presence`); other servers' users' presence comes
//! from theirs.

use crate::core::json::JsonExt;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::Authed;
use crate::core::ids::parse_client_user_id;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::edu;
use crate::service::wakeups;
use crate::store::{accounts, sync as sstore};

#[derive(Deserialize)]
struct Body {
    presence: String,
    #[serde(default, deserialize_with = "some")]
    status_msg: Option<Option<String>>,
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// # `PUT /_matrix/client/v3/presence/{userId}/status`
pub async fn set_presence_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    parse_client_user_id(user_id)?;
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot set another user's presence"));
    }
    let body: Body = req.json()?;
    if !matches!(body.presence.as_str(), "online" | "offline" | "unavailable") {
        return Err(err!(InvalidParam, "presence must be online, offline or unavailable"));
    }
    let msg = body.status_msg.as_ref().map(|m| m.as_deref());
    if sstore::set_presence(&ctx.db, user_id, &body.presence, msg).await? {
        let users = sstore::users_sharing_rooms(&ctx.db, user_id).await?;
        wakeups::notify_users(&ctx.env, &ctx.config, users.clone()).await;
        edu::presence::send(ctx, user_id, Some(users)).await?;
    }
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/presence/{userId}/status`
pub async fn get_presence_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let target = parse_client_user_id(user_id)?;
    // Other servers' users are known here through the rooms we share with them.
    let remote = target.server_name() != ctx.config.server_name;
    if me.user_id.as_str() != user_id {
        // Only users who share a room may see each other's presence.
        let sharing = sstore::users_sharing_rooms(&ctx.db, me.user_id.as_str()).await?;
        if !sharing.iter().any(|u| u == user_id) {
            if !remote && accounts::get_user(&ctx.db, user_id).await?.is_none() {
                return Err(err!(NotFound, "Unknown user"));
            }
            return Err(err!(Forbidden, "You do not share a room with this user"));
        }
    }
    let Some(p) = sstore::get_presence(&ctx.db, user_id).await? else {
        if !remote && accounts::get_user(&ctx.db, user_id).await?.is_none() {
            return Err(err!(NotFound, "Unknown user"));
        }
        return Ok(Response::ok(json!({ "presence": "offline" })));
    };
    let mut out = json!({
        "presence": p.presence,
        "last_active_ago": now_ms().saturating_sub(p.last_active_ts as u64),
        "currently_active": p.currently_active != 0.0,
    });
    if let Some(m) = p.status_msg {
        out.set("status_msg", json!(m));
    }
    Ok(Response::ok(out))
}
