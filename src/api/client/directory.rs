//! Room aliases and the room directory (spec: client-server-api, "Room aliases", "Listing
//! rooms").

use ruma::{RoomAliasId, RoomId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::client::rooms::parse_room_id;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::params;
use crate::service::events::check_can_read;
use crate::service::summary::room_summary;
use crate::service::timeline::user_level;
use crate::store::rooms;

/// `#name:server` for a local alias name, checked against the alias grammar.
pub fn alias_for_name(ctx: &Ctx, name: &str) -> Result<String> {
    if name.is_empty() || name.contains(':') || name.contains('#') || name.chars().any(char::is_whitespace) {
        return Err(err!(InvalidParam, "Invalid room alias name"));
    }
    let alias = format!("#{name}:{}", ctx.server_name());
    RoomAliasId::parse(&alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
    if alias.len() > 255 {
        return Err(err!(InvalidParam, "Room alias too long"));
    }
    Ok(alias)
}

/// Inserts an alias; `false` if it exists (the primary key is the guard).
pub async fn insert_alias(ctx: &Ctx, alias: &str, room_id: &RoomId, creator: &str) -> Result<bool> {
    ctx.db
        .insert_unique(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, ?)",
            params![alias, room_id.as_str(), creator, now_ms()],
        )
        .await
}

fn parse_local_alias(ctx: &Ctx, alias: &str) -> Result<String> {
    let a = RoomAliasId::parse(alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
    if a.server_name() != ctx.config.server_name {
        return Err(err!(InvalidParam, "Room alias must be on this server"));
    }
    Ok(a.to_string())
}

/// Resolves `!room` or `#alias` to a local room ID.
pub async fn resolve_room(ctx: &Ctx, id_or_alias: &str) -> Result<ruma::OwnedRoomId> {
    if id_or_alias.starts_with('#') {
        let a = RoomAliasId::parse(id_or_alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
        if a.server_name() != ctx.config.server_name {
            return Err(err!(NotFound, "Room alias not found (federation is not available yet)"));
        }
        let room = rooms::alias_room(&ctx.db, a.as_str()).await?.ok_or_else(|| err!(NotFound, "Room alias not found"))?;
        parse_room_id(&room)
    } else {
        parse_room_id(id_or_alias)
    }
}

#[derive(Deserialize)]
struct SetAlias {
    room_id: String,
}

/// # `PUT /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn set_alias_route(ctx: &Ctx, req: &Request, me: &Authed, alias: &str) -> Result<Response> {
    let alias = parse_local_alias(ctx, alias)?;
    let body: SetAlias = req.json()?;
    let room_id = parse_room_id(&body.room_id)?;
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    if rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?.as_deref() != Some("join") {
        return Err(err!(Forbidden, "You must be in the room to give it an alias"));
    }
    if !insert_alias(ctx, &alias, &room_id, me.user_id.as_str()).await? {
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
    #[derive(Deserialize)]
    struct Row {
        room_id: String,
        creator: String,
    }
    let row: Row = ctx
        .db
        .first("SELECT room_id, creator FROM room_aliases WHERE alias = ?", params![alias])
        .await?
        .ok_or_else(|| err!(NotFound, "Room alias not found"))?;
    if row.creator != me.user_id.as_str() && !can_send_state(ctx, &row.room_id, me.user_id.as_str(), "m.room.canonical_alias").await? {
        return Err(err!(Forbidden, "You may not delete this alias"));
    }
    ctx.db.run("DELETE FROM room_aliases WHERE alias = ?", params![alias]).await?;
    Ok(Response::ok(json!({})))
}

/// Whether a joined user's power level allows sending a state event of this type.
pub async fn can_send_state(ctx: &Ctx, room_id: &str, user: &str, kind: &str) -> Result<bool> {
    if rooms::membership(&ctx.db, room_id, user).await?.as_deref() != Some("join") {
        return Ok(false);
    }
    let Some(room) = rooms::get_room(&ctx.db, room_id).await? else {
        return Ok(false);
    };
    let state =
        rooms::current_state_keys(&ctx.db, room_id, &[("m.room.power_levels".into(), String::new()), ("m.room.create".into(), String::new())])
            .await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let get = |t: &str| state.get(&(t.to_owned(), String::new())).and_then(|e| pdus.get(e)).map(|p| p.content_value());
    let create = state.get(&("m.room.create".to_owned(), String::new())).and_then(|e| pdus.get(e));
    let is_creator = create.is_some_and(|c| c.names_creator(user));
    if is_creator && room.room_version == "12" {
        return Ok(true);
    }
    let pl = get("m.room.power_levels").unwrap_or(Value::Null);
    let level = user_level(&pl, user, is_creator);
    let needed = pl["events"][kind].as_i64().unwrap_or_else(|| pl["state_default"].as_i64().unwrap_or(if pl.is_null() { 0 } else { 50 }));
    Ok(level >= needed)
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/aliases`
pub async fn room_aliases_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    check_can_read(ctx, &me.user_id, room_id.as_str()).await?;
    #[derive(Deserialize)]
    struct R {
        alias: String,
    }
    let rows: Vec<R> = ctx.db.all("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", params![room_id.as_str()]).await?;
    Ok(Response::ok(json!({ "aliases": rows.into_iter().map(|r| r.alias).collect::<Vec<_>>() })))
}

/// # `GET /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn get_visibility_route(ctx: &Ctx, _req: &Request, room_id: &str) -> Result<Response> {
    let room = rooms::get_room(&ctx.db, parse_room_id(room_id)?.as_str()).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    Ok(Response::ok(json!({ "visibility": if room.is_public != 0 { "public" } else { "private" } })))
}

#[derive(Deserialize)]
struct Visibility {
    visibility: String,
}

/// # `PUT /_matrix/client/v3/directory/list/room/{roomId}`
/// Room members who may change `m.room.canonical_alias` may publish the room.
pub async fn set_visibility_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let body: Visibility = req.json()?;
    let public = match body.visibility.as_str() {
        "public" => 1,
        "private" => 0,
        _ => return Err(err!(InvalidParam, "visibility must be public or private")),
    };
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    if !can_send_state(ctx, room_id.as_str(), me.user_id.as_str(), "m.room.canonical_alias").await? {
        return Err(err!(Forbidden, "You may not publish this room"));
    }
    ctx.db.run("UPDATE rooms SET is_public = ? WHERE room_id = ?", params![public, room_id.as_str()]).await?;
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

async fn public_rooms(ctx: &Ctx, body: PublicRoomsBody) -> Result<Response> {
    if let Some(s) = &body.server {
        if s != ctx.server_name() {
            return Err(err!(NotFound, "Other servers' directories need federation, which is not available yet"));
        }
    }
    let limit = body.limit.unwrap_or(100).clamp(1, 500) as usize;
    let offset: usize = match &body.since {
        Some(s) => s.strip_prefix('o').and_then(|n| n.parse().ok()).ok_or_else(|| err!(InvalidParam, "Invalid since token"))?,
        None => 0,
    };
    #[derive(Deserialize)]
    struct R {
        room_id: String,
        joined: f64,
    }
    let rows: Vec<R> = ctx
        .db
        .all(
            "SELECT r.room_id AS room_id,
                    (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined
             FROM rooms r WHERE r.is_public = 1 ORDER BY joined DESC, r.room_id ASC",
            vec![],
        )
        .await?;
    let term = body.filter.as_ref().and_then(|f| f.generic_search_term.clone()).map(|t| t.to_lowercase());
    let types = body.filter.as_ref().and_then(|f| f.room_types.clone());
    let mut chunk = Vec::new();
    for r in rows {
        let summary = room_summary(ctx, &r.room_id, r.joined as u64).await?;
        if let Some(t) = &term {
            let hay = ["name", "topic", "canonical_alias", "room_id"]
                .iter()
                .filter_map(|k| summary[*k].as_str())
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !hay.contains(t.as_str()) {
                continue;
            }
        }
        if let Some(types) = &types {
            let rt = summary["room_type"].as_str().map(str::to_owned);
            if !types.is_empty() && !types.contains(&rt) {
                continue;
            }
        }
        chunk.push(summary);
    }
    let total = chunk.len();
    let page: Vec<Value> = chunk.into_iter().skip(offset).take(limit).collect();
    let mut resp = json!({ "chunk": page, "total_room_count_estimate": total });
    if offset + limit < total {
        resp["next_batch"] = json!(format!("o{}", offset + limit));
    }
    if offset > 0 {
        resp["prev_batch"] = json!(format!("o{}", offset.saturating_sub(limit)));
    }
    Ok(Response::ok(resp))
}
