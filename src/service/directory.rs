//! Room aliases: the local alias grammar, resolving `#alias` or `!room` to a room, and the
//! rule of who may remove an alias or publish a room.

use ruma::{OwnedRoomId, RoomAliasId, RoomId, UserId};

use crate::core::room::parse_room_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::service::power;
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

/// A full alias that must be on this server.
pub fn parse_local_alias(ctx: &Ctx, alias: &str) -> Result<String> {
    let a = RoomAliasId::parse(alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
    if a.server_name() != ctx.config.server_name {
        return Err(err!(InvalidParam, "Room alias must be on this server"));
    }
    Ok(a.to_string())
}

/// Resolves `!room` or `#alias` to a local room ID.
pub async fn resolve_room(ctx: &Ctx, id_or_alias: &str) -> Result<OwnedRoomId> {
    Ok(resolve_room_servers(ctx, id_or_alias).await?.0)
}

/// A room ID or alias as a room ID, with the servers an alias lookup named as able to join
/// it: a local alias from D1, another server's from that server (`GET
/// /_matrix/federation/v1/query/directory`, spec: server-server-api "Room Aliases").
pub async fn resolve_room_servers(ctx: &Ctx, id_or_alias: &str) -> Result<(OwnedRoomId, Vec<ruma::OwnedServerName>)> {
    if !id_or_alias.starts_with('#') {
        return Ok((parse_room_id(id_or_alias)?, vec![]));
    }
    let a = RoomAliasId::parse(id_or_alias).map_err(|_| err!(InvalidParam, "Invalid room alias"))?;
    if a.server_name() == ctx.config.server_name {
        let room = rooms::alias_room(&ctx.db, a.as_str()).await?.ok_or_else(|| err!(NotFound, "Room alias not found"))?;
        return Ok((parse_room_id(&room)?, vec![]));
    }
    let path = format!("/_matrix/federation/v1/query/directory?room_alias={}", crate::core::federation::uri_component(a.as_str()));
    let answer = crate::service::federation::client::request(ctx, a.server_name(), crate::http::Method::Get, &path, None)
        .await
        .map_err(|_| err!(NotFound, "Room alias not found"))?;
    let room = answer.get("room_id").and_then(serde_json::Value::as_str).ok_or_else(|| err!(NotFound, "Room alias not found"))?;
    let mut servers: Vec<ruma::OwnedServerName> = answer
        .get("servers")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str()).filter_map(|s| ruma::ServerName::parse(s).ok()).collect())
        .unwrap_or_default();
    servers.push(a.server_name().to_owned());
    Ok((parse_room_id(room)?, servers))
}

/// Gives a room an alias; `false` if the alias exists.
pub async fn insert_alias(ctx: &Ctx, alias: &str, room_id: &RoomId, creator: &UserId) -> Result<bool> {
    rooms::insert_alias(&ctx.db, alias, room_id.as_str(), creator.as_str()).await
}

/// Who may delete an alias: its creator, or a room member allowed to change
/// `m.room.canonical_alias`. `404` for an unknown alias, `403` otherwise.
pub async fn delete_alias(ctx: &Ctx, alias: &str, user: &UserId) -> Result<()> {
    let row = rooms::get_alias(&ctx.db, alias).await?.ok_or_else(|| err!(NotFound, "Room alias not found"))?;
    if row.creator != user.as_str() && !power::can_send_state(ctx, &row.room_id, user, "m.room.canonical_alias").await? {
        return Err(err!(Forbidden, "You may not delete this alias"));
    }
    rooms::delete_alias(&ctx.db, alias).await
}

/// Publishes a room in the directory or takes it out: for room members who may change
/// `m.room.canonical_alias`.
pub async fn set_visibility(ctx: &Ctx, room_id: &RoomId, user: &UserId, public: bool) -> Result<()> {
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    if !power::can_send_state(ctx, room_id.as_str(), user, "m.room.canonical_alias").await? {
        return Err(err!(Forbidden, "You may not publish this room"));
    }
    rooms::set_public(&ctx.db, room_id.as_str(), public).await
}

/// A page of the published room directory (spec: `publicRooms`, client and federation
/// forms): most members first, filtered by `term` (name, topic, alias or room ID) and room
/// types, paged by offset tokens `o<N>`.
pub async fn public_rooms_page(
    ctx: &Ctx,
    limit: Option<u32>,
    since: Option<&str>,
    term: Option<&str>,
    room_types: Option<&[Option<String>]>,
) -> Result<serde_json::Value> {
    use serde_json::{json, Value};
    let limit = limit.filter(|l| *l > 0).unwrap_or(100).clamp(1, 500) as usize;
    let offset: usize = match since {
        Some(s) => s.strip_prefix('o').and_then(|n| n.parse().ok()).ok_or_else(|| err!(InvalidParam, "Invalid since token"))?,
        None => 0,
    };
    let term = term.map(str::to_lowercase);
    let mut chunk = Vec::new();
    for (room_id, joined) in rooms::public_rooms(&ctx.db).await? {
        let summary = crate::service::summary::room_summary(ctx, &room_id, joined).await?;
        if let Some(t) = &term {
            let hay = ["name", "topic", "canonical_alias", "room_id"]
                .iter()
                .filter_map(|k| summary.get(*k).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !hay.contains(t.as_str()) {
                continue;
            }
        }
        if let Some(types) = room_types {
            let rt = summary.get("room_type").and_then(Value::as_str).map(str::to_owned);
            if !types.is_empty() && !types.contains(&rt) {
                continue;
            }
        }
        chunk.push(summary);
    }
    let total = chunk.len();
    let page: Vec<Value> = chunk.into_iter().skip(offset).take(limit).collect();
    let mut resp = serde_json::Map::new();
    resp.insert("chunk".into(), json!(page));
    resp.insert("total_room_count_estimate".into(), json!(total));
    if offset + limit < total {
        resp.insert("next_batch".into(), json!(format!("o{}", offset + limit)));
    }
    if offset > 0 {
        resp.insert("prev_batch".into(), json!(format!("o{}", offset.saturating_sub(limit))));
    }
    Ok(Value::Object(resp))
}
