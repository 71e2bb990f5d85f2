//! Account data, global and per room, and room tags (spec: client-server-api, "Client
//! Config" (`modules/account_data.md`) and "Room Tagging" (`tags.md`)). Every change moves
//! the account-data stream and wakes the user's syncs.

use crate::core::json::JsonExt;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::params::room_id as parse_room_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::account_data::put;
use crate::store::sync as sstore;

fn own(me: &Authed, user_id: &str) -> Result<()> {
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot access another user's account data"));
    }
    Ok(())
}

/// Types the server manages through their own APIs (spec: "Server behaviour").
fn check_settable(kind: &str) -> Result<()> {
    if matches!(kind, "m.fully_read" | "m.push_rules") {
        return Err(err!(ServerManaged, "{kind} is managed by the server; use its own API"));
    }
    Ok(())
}

/// # `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn put_global_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str, kind: &str) -> Result<Response> {
    own(me, user_id)?;
    check_settable(kind)?;
    let content = req.json_value()?;
    put(ctx, user_id, "", kind, &content).await?;
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn get_global_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, kind: &str) -> Result<Response> {
    own(me, user_id)?;
    let v = sstore::get_account_data(&ctx.db, user_id, "", kind).await?.ok_or_else(|| err!(NotFound, "No account data of that type"))?;
    Ok(Response::ok(v))
}

/// # `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn put_room_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str, room_id: &str, kind: &str) -> Result<Response> {
    own(me, user_id)?;
    let room = parse_room_id(room_id)?;
    check_settable(kind)?;
    let content = req.json_value()?;
    put(ctx, user_id, room.as_str(), kind, &content).await?;
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, room_id: &str, kind: &str) -> Result<Response> {
    own(me, user_id)?;
    let room = parse_room_id(room_id)?;
    let v = sstore::get_account_data(&ctx.db, user_id, room.as_str(), kind).await?.ok_or_else(|| err!(NotFound, "No account data of that type"))?;
    Ok(Response::ok(v))
}

/// # `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
pub async fn get_tags_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, room_id: &str) -> Result<Response> {
    own(me, user_id)?;
    let room = parse_room_id(room_id)?;
    let v = sstore::get_account_data(&ctx.db, user_id, room.as_str(), "m.tag").await?.unwrap_or_else(|| json!({ "tags": {} }));
    Ok(Response::ok(json!({ "tags": v.get("tags").cloned().unwrap_or(json!({})) })))
}

/// # `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn put_tag_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str, room_id: &str, tag: &str) -> Result<Response> {
    own(me, user_id)?;
    let room = parse_room_id(room_id)?;
    let body = req.json_value()?;
    if let Some(o) = body.get("order") {
        if !o.is_number() {
            return Err(err!(BadJson, "order must be a number"));
        }
    }
    let mut v = sstore::get_account_data(&ctx.db, user_id, room.as_str(), "m.tag").await?.unwrap_or_else(|| json!({ "tags": {} }));
    // Stored account data is whatever the client put: make `tags` an object if it is not.
    if let Some(tags) = v.object_at("tags") {
        tags.insert(tag.to_owned(), body);
    }
    put(ctx, user_id, room.as_str(), "m.tag", &v).await?;
    Ok(Response::ok(json!({})))
}

/// # `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete_tag_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, room_id: &str, tag: &str) -> Result<Response> {
    own(me, user_id)?;
    let room = parse_room_id(room_id)?;
    let mut v = sstore::get_account_data(&ctx.db, user_id, room.as_str(), "m.tag").await?.unwrap_or_else(|| json!({ "tags": {} }));
    if let Some(t) = v.get_mut("tags").and_then(Value::as_object_mut) {
        t.remove(tag);
    }
    put(ctx, user_id, room.as_str(), "m.tag", &v).await?;
    Ok(Response::ok(json!({})))
}
