//! Room aliases and the room directory (spec: client-server-api, "Room aliases", "Listing
//! rooms").

use crate::core::json::JsonExt;
use ruma::RoomAliasId;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::Authed;
use crate::api::params;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::directory::{self, parse_local_alias};
use crate::service::events::check_can_read;
use crate::store::rooms;

#[derive(Deserialize)]
struct SetAlias {
    room_id: String,
}

/// # `PUT /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn set_alias_route(ctx: &Ctx, req: &Request, me: &Authed, alias: &str) -> Result<Response> {
    let alias = parse_local_alias(ctx, alias)?;
    let body: SetAlias = req.json()?;
    let room_id = params::room_id(&body.room_id)?;
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    if rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?.as_deref() != Some("join") {
        return Err(err!(Forbidden, "You must be in the room to give it an alias"));
    }
    if !directory::insert_alias(ctx, &alias, &room_id, &me.user_id).await? {
        return Err(err!(Conflict, "Room alias {alias} already exists"));
    }
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn get_alias_route(ctx: &Ctx, _req: &Request, alias: &str) -> Result<Response> {
    let a = RoomAliasId::parse(alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
    let room = match a.server_name() == ctx.config.server_name {
        true => rooms::alias_room(&ctx.db, a.as_str()).await?,
        false => None,
    };
    let room = room.ok_or_else(|| err!(NotFound, "Room alias {alias} not found"))?;
    Ok(Response::ok(json!({ "room_id": room, "servers": [ctx.server_name()] })))
}

/// # `DELETE /_matrix/client/v3/directory/room/{roomAlias}`
/// The alias's creator, or a room member allowed to change `m.room.canonical_alias`.
pub async fn delete_alias_route(ctx: &Ctx, _req: &Request, me: &Authed, alias: &str) -> Result<Response> {
    let alias = parse_local_alias(ctx, alias)?;
    directory::delete_alias(ctx, &alias, &me.user_id).await?;
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/aliases`
pub async fn room_aliases_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = params::room_id(room_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await?;
    let aliases = rooms::room_aliases(&ctx.db, room_id.as_str()).await?;
    Ok(Response::ok(json!({ "aliases": aliases })))
}

/// # `GET /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn get_visibility_route(ctx: &Ctx, _req: &Request, room_id: &str) -> Result<Response> {
    let room = rooms::get_room(&ctx.db, params::room_id(room_id)?.as_str()).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    Ok(Response::ok(json!({ "visibility": if room.is_public != 0 { "public" } else { "private" } })))
}

#[derive(Deserialize)]
struct Visibility {
    visibility: String,
}

/// # `PUT /_matrix/client/v3/directory/list/room/{roomId}`
/// Room members who may change `m.room.canonical_alias` may publish the room.
pub async fn set_visibility_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = params::room_id(room_id)?;
    let body: Visibility = req.json()?;
    let public = match body.visibility.as_str() {
        "public" => true,
        "private" => false,
        _ => return Err(err!(InvalidParam, "visibility must be public or private")),
    };
    directory::set_visibility(ctx, &room_id, &me.user_id, public).await?;
    Ok(Response::ok(json!({})))
}

#[derive(Deserialize, Default)]
struct PublicRoomsBody {
    limit: Option<u32>,
    since: Option<String>,
    server: Option<String>,
    filter: Option<PublicRoomsFilter>,
}

#[derive(Deserialize, Default)]
struct PublicRoomsFilter {
    generic_search_term: Option<String>,
    room_types: Option<Vec<Option<String>>>,
}

/// # `GET /_matrix/client/v3/publicRooms`
pub async fn public_rooms_get_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(l) => Some(l.parse::<u32>().map_err(|_| err!(InvalidParam, "limit must be a number"))?),
        None => None,
    };
    let body = PublicRoomsBody { limit, since: req.query("since").map(str::to_owned), server: req.query("server").map(str::to_owned), filter: None };
    public_rooms(ctx, body).await
}

/// # `POST /_matrix/client/v3/publicRooms`
pub async fn public_rooms_post_route(ctx: &Ctx, req: &Request, _me: &Authed) -> Result<Response> {
    let mut body: PublicRoomsBody = req.json()?;
    if let Some(s) = req.query("server") {
        body.server = Some(s.to_owned());
    }
    public_rooms(ctx, body).await
}

/// Ours from the directory (`service::directory::public_rooms_page`, shared with the
/// federation form); another server's through its federation `publicRooms`.
async fn public_rooms(ctx: &Ctx, body: PublicRoomsBody) -> Result<Response> {
    let term = body.filter.as_ref().and_then(|f| f.generic_search_term.clone());
    let types = body.filter.as_ref().and_then(|f| f.room_types.clone());
    if let Some(s) = body.server.as_deref().filter(|s| *s != ctx.server_name()) {
        let server = ruma::ServerName::parse(s).map_err(|_| err!(InvalidParam, "Invalid server name"))?;
        let mut filter = serde_json::Map::new();
        if let Some(t) = &term {
            filter.insert("generic_search_term".into(), json!(t));
        }
        if let Some(t) = &types {
            filter.insert("room_types".into(), json!(t));
        }
        let mut query = json!({ "filter": filter });
        if let Some(l) = body.limit {
            query.set("limit", json!(l));
        }
        if let Some(since) = &body.since {
            query.set("since", json!(since));
        }
        let page = crate::service::federation::query::public_rooms(ctx, &server, &query).await?;
        return Ok(Response::ok(page));
    }
    let page = crate::service::directory::public_rooms_page(ctx, body.limit, body.since.as_deref(), term.as_deref(), types.as_deref()).await?;
    Ok(Response::ok(page))
}
