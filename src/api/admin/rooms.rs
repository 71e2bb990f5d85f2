//! Room administration (Synapse: docs/admin_api/rooms.md).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{backwards, page, room_param};
use crate::api::auth::Authed;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::{audit, media as media_service, rooms as service};
use crate::store::admin::{self as store, RoomListRow};

fn room_json(r: &RoomListRow) -> Value {
    json!({
        "room_id": r.room_id,
        "name": r.name,
        "canonical_alias": r.canonical_alias,
        "topic": r.topic,
        "avatar": r.avatar,
        "joined_members": r.joined_members as u64,
        "joined_local_members": r.joined_local_members as u64,
        "invited_members": r.invited_members as u64,
        "version": r.room_version,
        "creator": r.creator,
        "encryption": r.encryption,
        "federatable": true,
        "public": r.is_public != 0,
        "join_rules": r.join_rules,
        "guest_access": r.guest_access,
        "history_visibility": r.history_visibility,
        "state_events": r.state_events as u64,
        "room_type": r.room_type,
    })
}

/// # `GET /_synapse/admin/v1/rooms`
/// Paged with `from`/`limit` (`next_batch`, `total_rooms`), `order_by` (Synapse's names),
/// `dir`, `search_term` (name, canonical alias or room ID), `empty_rooms` (true: only rooms
/// nobody is joined to; false: only the others).
pub async fn list_rooms_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let (from, limit) = page(req, 100)?;
    let order_by = req.query("order_by").unwrap_or("size");
    if !store::ROOM_ORDER.iter().any(|(k, _)| *k == order_by) {
        return Err(err!(InvalidParam, "Unknown value for order_by"));
    }
    let search = req.query("search_term").filter(|s| !s.is_empty());
    audit(me.user_id.as_str(), "list_rooms", search.unwrap_or(""));
    let empty = super::bool_query(req, "empty_rooms")?;
    let filter = store::RoomFilter { search, empty, order_by, backwards: backwards(req)?, from, limit };
    let (rooms, total) = store::list_rooms(&ctx.db, ctx.server_name(), &filter).await?;
    let mut body = json!({
        "rooms": rooms.iter().map(room_json).collect::<Vec<_>>(),
        "offset": from,
        "total_rooms": total,
    });
    if let Some(o) = body.as_object_mut() {
        if let Some(next) = crate::core::admin::next_token(from, rooms.len(), total) {
            o.insert("next_batch".into(), json!(next.parse::<u64>().unwrap_or(0)));
        }
        if from > 0 {
            o.insert("prev_batch".into(), json!(from.saturating_sub(limit as u64)));
        }
    }
    Ok(Response::ok(body))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}`
pub async fn room_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room = room_param(room_id)?;
    audit(me.user_id.as_str(), "room_details", room.as_str());
    let r = store::room_details(&ctx.db, ctx.server_name(), room.as_str()).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    Ok(Response::ok(room_json(&r)))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}/members`
pub async fn members_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room = room_param(room_id)?;
    audit(me.user_id.as_str(), "room_members", room.as_str());
    if crate::store::rooms::get_room(&ctx.db, room.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    let members = store::room_members(&ctx.db, room.as_str()).await?;
    Ok(Response::ok(json!({ "total": members.len(), "members": members })))
}

/// # `GET /_synapse/admin/v1/rooms/{roomId}/state`
/// The current state, as client events.
pub async fn state_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room = room_param(room_id)?;
    audit(me.user_id.as_str(), "room_state", room.as_str());
    if crate::store::rooms::get_room(&ctx.db, room.as_str()).await?.is_none() {
        return Err(err!(NotFound, "Room not found"));
    }
    let mut state = Vec::new();
    for (event_id, pdu) in store::room_state_json(&ctx.db, room.as_str()).await? {
        let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(&pdu) else { continue };
        for k in ["signatures", "hashes", "auth_events", "prev_events", "depth", "origin"] {
            o.remove(k);
        }
        o.insert("event_id".into(), json!(event_id));
        state.push(Value::Object(o));
    }
    Ok(Response::ok(json!({ "state": state })))
}

#[derive(Deserialize)]
struct DeleteBody {
    new_room_user_id: Option<String>,
    #[serde(default)]
    block: bool,
    #[serde(default = "yes")]
    purge: bool,
    #[serde(default)]
    force_purge: bool,
}

fn yes() -> bool {
    true
}

/// Time a delete request spends stepping the job before it answers.
const DELETE_BUDGET_MS: u64 = 5_000;
/// Time a status request spends stepping it.
const STATUS_BUDGET_MS: u64 = 2_000;
/// Time the synchronous (v1) delete may take.
const DELETE_V1_BUDGET_MS: u64 = 20_000;

async fn start(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<store::RoomDelete> {
    let room = room_param(room_id)?;
    let body: DeleteBody = req.json_or_empty()?;
    if body.new_room_user_id.is_some() {
        return Err(err!(InvalidParam, "new_room_user_id is not supported: members are removed, no new room is made"));
    }
    audit(me.user_id.as_str(), if body.purge { "delete_room_purge" } else { "delete_room" }, room.as_str());
    let known = crate::store::rooms::get_room(&ctx.db, room.as_str()).await?.is_some();
    if !known && !body.block {
        return Err(err!(NotFound, "Unknown room"));
    }
    if store::deletes_of_room(&ctx.db, room.as_str()).await?.iter().any(|d| matches!(d.status.as_str(), "scheduled" | "active")) {
        return Err(err!(InvalidParam, "A deletion of this room is already running"));
    }
    let id = service::start_delete(ctx, &me.user_id, &room, body.block, body.purge, body.force_purge).await?;
    store::get_delete(&ctx.db, &id).await?.ok_or_else(|| crate::error::Error::internal("deletion not stored"))
}

/// # `DELETE /_synapse/admin/v2/rooms/{roomId}`
/// Starts the deletion (`block`, `purge` default true, `force_purge`) and answers its
/// `delete_id`; the job runs in bounded steps, this request and the status requests
/// advancing it (see `service::admin::rooms`).
pub async fn delete_room_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let mut d = start(ctx, req, me, room_id).await?;
    service::run(ctx, &mut d, DELETE_BUDGET_MS).await?;
    Ok(Response::ok(json!({ "delete_id": d.delete_id })))
}

/// # `DELETE /_synapse/admin/v1/rooms/{roomId}`
/// The synchronous form: runs the deletion to its end (within a bound) and answers its result.
pub async fn delete_room_v1_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let mut d = start(ctx, req, me, room_id).await?;
    service::run(ctx, &mut d, DELETE_V1_BUDGET_MS).await?;
    let status = service::status_json(&d);
    Ok(Response::ok(status.get("shutdown_room").cloned().unwrap_or_else(|| json!({}))))
}

/// # `GET /_synapse/admin/v2/rooms/{roomId}/delete_status`
pub async fn delete_status_by_room_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room = room_param(room_id)?;
    audit(me.user_id.as_str(), "delete_status", room.as_str());
    let mut results = Vec::new();
    for mut d in store::deletes_of_room(&ctx.db, room.as_str()).await? {
        service::run(ctx, &mut d, STATUS_BUDGET_MS).await?;
        results.push(service::status_json(&d));
    }
    if results.is_empty() {
        return Err(err!(NotFound, "No delete task for room_id"));
    }
    Ok(Response::ok(json!({ "results": results })))
}

/// # `GET /_synapse/admin/v2/rooms/delete_status/{deleteId}`
pub async fn delete_status_route(ctx: &Ctx, _req: &Request, me: &Authed, delete_id: &str) -> Result<Response> {
    audit(me.user_id.as_str(), "delete_status", delete_id);
    let mut d = store::get_delete(&ctx.db, delete_id).await?.ok_or_else(|| err!(NotFound, "delete id not found"))?;
    service::run(ctx, &mut d, STATUS_BUDGET_MS).await?;
    Ok(Response::ok(service::status_json(&d)))
}

/// # `POST /_synapse/admin/v1/room/{roomId}/media/quarantine`
/// Quarantines the media the room's events reference.
pub async fn quarantine_room_media_route(ctx: &Ctx, _req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room = room_param(room_id)?;
    audit(me.user_id.as_str(), "quarantine_room_media", room.as_str());
    let n = media_service::quarantine_room(ctx, &room).await?;
    Ok(Response::ok(json!({ "num_quarantined": n })))
}
