//! Queries another server makes about this one (spec: server-server-api, "Querying for
//! information"): a local room alias, a local user's profile.

use ruma::{RoomAliasId, ServerName, UserId};
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::rooms;

/// # `GET /_matrix/federation/v1/query/directory`
/// The room of a local alias and the servers of its joined members (this one first).
pub async fn directory_route(ctx: &Ctx, req: &Request, _origin: &ServerName) -> Result<Response> {
    let alias = req.query("room_alias").ok_or_else(|| err!(MissingParam, "Missing room_alias"))?;
    let alias = RoomAliasId::parse(alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
    if alias.server_name() != ctx.config.server_name {
        return Err(err!(NotFound, "Room alias not found"));
    }
    let room_id = rooms::alias_room(&ctx.db, alias.as_str()).await?.ok_or_else(|| err!(NotFound, "Room alias not found"))?;
    let mut servers = vec![ctx.server_name().to_owned()];
    for m in rooms::members_with(&ctx.db, &room_id, "join").await? {
        if let Ok(u) = UserId::parse(m.as_str()) {
            let s = u.server_name().to_string();
            if !servers.contains(&s) {
                servers.push(s);
            }
        }
    }
    Ok(Response::ok(json!({ "room_id": room_id, "servers": servers })))
}

/// # `GET /_matrix/federation/v1/query/profile`
/// A local user's profile, or only `field` (`404` when the user or the field does not exist).
pub async fn profile_route(ctx: &Ctx, req: &Request, _origin: &ServerName) -> Result<Response> {
    let user = req.query("user_id").ok_or_else(|| err!(MissingParam, "Missing user_id"))?;
    let user = UserId::parse(user).map_err(|_| err!(InvalidParam, "Invalid user ID"))?;
    if user.server_name() != ctx.config.server_name {
        return Err(err!(InvalidParam, "The user is not on this server"));
    }
    let mut body = crate::service::profile::public_profile(ctx, user.as_str()).await?;
    match req.query("field") {
        None => Ok(Response::ok(Value::Object(body))),
        Some(field) => match body.remove(field) {
            Some(v) => Ok(Response::ok(json!({ field: v }))),
            None => Err(err!(NotFound, "Profile field not set")),
        },
    }
}
