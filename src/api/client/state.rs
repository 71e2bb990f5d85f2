//! Room state: read and write state events, list members (spec: client-server-api,
//! "GET /state", "PUT /state", "GET /members", "GET /joined_members").

use crate::core::json::JsonExt;
use ruma::{RoomAliasId, RoomId};
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::params::{self, room_id as parse_room_id};
use crate::core::ids::{check_power_levels_users, parse_client_user_id};
use crate::core::room::pdu::NewEvent;
use crate::core::room::state::StateMap;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::events::{is_world_readable, to_client, Reader};
use crate::service::state;
use crate::service::timeline::append_via_room;
use crate::store::rooms;

/// The state a user may see: the current state while joined; after leaving, the state at
/// their leave; for a `world_readable` room, the current state. Otherwise `403`.
async fn visible_state(ctx: &Ctx, me: &Authed, room_id: &RoomId) -> Result<StateMap> {
    if rooms::get_room(&ctx.db, room_id.as_str()).await?.is_none() {
        return Err(err!(Forbidden, "You are not in this room"));
    }
    match rooms::membership_row(&ctx.db, room_id.as_str(), me.user_id.as_str()).await? {
        Some(m) if m.membership == "join" => rooms::current_state(&ctx.db, room_id.as_str()).await,
        Some(m) if m.membership == "leave" || m.membership == "ban" => match rooms::get_event(&ctx.db, &m.event_id).await? {
            Some(leave) if leave.state_after.is_some() => state::after_event(&ctx.db, &leave).await,
            _ => Err(err!(Forbidden, "You are not in this room")),
        },
        _ => {
            let current = rooms::current_state(&ctx.db, room_id.as_str()).await?;
            let hv = current.get(&("m.room.history_visibility".to_owned(), String::new()));
            if is_world_readable(ctx, hv.map(|e| e.as_ref())).await? {
                return Ok(current);
            }
            Err(err!(Forbidden, "You are not in this room"))
        }
    }
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/state`
pub async fn get_state_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let state = visible_state(ctx, me, &room_id).await?;
    let ids: Vec<String> = state.values().map(|e| e.to_string()).collect();
    let rows = rooms::get_events(&ctx.db, &ids).await?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    Ok(Response::ok(Value::Array(to_client(ctx, &reader, &rows).await?)))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
/// Returns the content, or the whole event with `?format=event`.
pub async fn get_state_event_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, kind: &str, key: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let state = visible_state(ctx, me, &room_id).await?;
    let id = state.get(&(kind.to_owned(), key.to_owned())).ok_or_else(|| err!(NotFound, "State event not found"))?;
    let rows = rooms::get_events(&ctx.db, &[id.to_string()]).await?;
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    let ev = to_client(ctx, &reader, &rows).await?.into_iter().next().ok_or_else(|| err!(NotFound, "State event not found"))?;
    if req.query("format") == Some("event") {
        return Ok(Response::ok(ev));
    }
    Ok(Response::ok(ev.get("content").cloned().unwrap_or_default()))
}

/// `m.room.canonical_alias` may only name aliases that exist and point to this room
/// (spec: "m.room.canonical_alias"; `M_BAD_ALIAS` otherwise).
async fn check_canonical_alias(ctx: &Ctx, room_id: &RoomId, content: &Value) -> Result<()> {
    let mut aliases: Vec<&Value> = Vec::new();
    if let Some(a) = content.get("alias").filter(|a| !a.is_null()) {
        aliases.push(a);
    }
    match content.get("alt_aliases") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => aliases.extend(list.iter()),
        Some(_) => return Err(err!(InvalidParam, "alt_aliases must be a list")),
    }
    for a in aliases {
        let s = a.as_str().ok_or_else(|| err!(InvalidParam, "aliases must be strings"))?;
        let alias = RoomAliasId::parse(s).map_err(|_| err!(InvalidParam, "Invalid alias {s}"))?;
        if alias.server_name() != ctx.config.server_name {
            return Err(err!(BadAlias, "Alias {s} is not on this server (federation is not available yet)"));
        }
        if rooms::alias_room(&ctx.db, alias.as_str()).await?.as_deref() != Some(room_id.as_str()) {
            return Err(err!(BadAlias, "Alias {s} does not point to this room"));
        }
    }
    Ok(())
}

/// # `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
/// Power levels and the auth rules decide; state keys starting with `@` must be the sender's
/// own user ID unless power allows otherwise.
pub async fn put_state_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, kind: &str, key: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let content = req.json_value()?;
    if kind == "m.room.canonical_alias" {
        check_canonical_alias(ctx, &room_id, &content).await?;
    }
    if kind == "m.room.create" {
        return Err(err!(Forbidden, "The create event cannot be replaced"));
    }
    // A member event's state key is a user ID, and power levels name users: refuse invalid
    // ones (400) before they become room state. The member content stays as the client
    // sent it.
    if kind == "m.room.member" {
        let target = parse_client_user_id(key)?;
        if content.get("membership").and_then(serde_json::Value::as_str) == Some("invite") {
            crate::service::membership::check_invite_allowed(ctx, &target).await?;
        }
    }
    if kind == "m.room.power_levels" {
        check_power_levels_users(&content)?;
    }
    let ev = NewEvent { kind: kind.to_owned(), state_key: Some(key.to_owned()), content, sender: me.user_id.clone(), redacts: None };
    let ids = append_via_room(ctx, &room_id, &[ev], None).await?;
    let id = ids.first().ok_or_else(|| crate::error::Error::internal("no event appended"))?;
    Ok(Response::ok(json!({ "event_id": id })))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/members`
/// `at` (a `/messages` or sync token) gives the members at that point; `membership` and
/// `not_membership` filter.
pub async fn members_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    let mut state = visible_state(ctx, me, &room_id).await?;
    if let Some(at) = req.query("at") {
        let pos = params::stream_token(at)?;
        // A user who has left sees nothing after their leave: `visible_state` already holds
        // the state at the leave, so only earlier positions are looked up.
        let left = !matches!(rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?.as_deref(), Some("join") | None);
        // History backfilled after a join (below 0) has no state stored: the current one.
        if let (false, Ok(pos)) = (left, u64::try_from(pos)) {
            state = state::at_stream(&ctx.db, room_id.as_str(), pos).await?;
        }
    }
    let ids: Vec<String> = state.iter().filter(|((t, _), _)| t == "m.room.member").map(|(_, e)| e.to_string()).collect();
    let rows = rooms::get_events(&ctx.db, &ids).await?;
    let only = req.query("membership");
    let not = req.query("not_membership");
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| {
            let m = r.membership.as_deref().unwrap_or("");
            only.is_none_or(|o| o == m) && not.is_none_or(|n| n != m)
        })
        .collect();
    let reader = Reader { user_id: &me.user_id, device_id: Some(&me.device_id) };
    Ok(Response::ok(json!({ "chunk": to_client(ctx, &reader, &rows).await? })))
}

/// # `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
pub async fn joined_members_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room_id = parse_room_id(room_id)?;
    if rooms::membership(&ctx.db, room_id.as_str(), me.user_id.as_str()).await?.as_deref() != Some("join") {
        return Err(err!(Forbidden, "You are not in this room"));
    }
    let state = rooms::current_state_of_type(&ctx.db, room_id.as_str(), "m.room.member").await?;
    let ids: Vec<String> = state.values().map(|e| e.to_string()).collect();
    let mut joined = serde_json::Map::new();
    for r in rooms::get_events(&ctx.db, &ids).await? {
        if r.membership.as_deref() == Some("join") {
            let v: Value = serde_json::from_str(&r.json)?;
            // `RoomMember` fields are strings, absent when the member event has none.
            let mut m = json!({});
            for (key, field) in [("display_name", "displayname"), ("avatar_url", "avatar_url")] {
                if let Some(s) = v.get("content").and_then(|x| x.get(field)).and_then(Value::as_str) {
                    m.set(key, json!(s));
                }
            }
            joined.insert(r.state_key.clone().unwrap_or_default(), m);
        }
    }
    Ok(Response::ok(json!({ "joined": joined })))
}
