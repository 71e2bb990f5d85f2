//! Receipts and read markers (spec: client-server-api, "Receipts" (`modules/receipts.md`),
//! "Read and unread markers" (`modules/read_markers.md`)). `m.read` is shared with the room;
//! `m.read.private` only with the user; `m.fully_read` is room account data. Read receipts
//! (public or private) reset the unread counts. Public ones also go to the room's other
//! servers (`service::federation::edu::receipt`).

use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::params::room_id as parse_room_id;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::edu;
use crate::service::{account_data, wakeups};
use crate::store::{rooms, sync as sstore};

/// Records one receipt or marker and wakes whoever sees it.
async fn set_marker(ctx: &Ctx, me: &Authed, room_id: &str, kind: &str, event_id: &str, thread_id: Option<&str>) -> Result<()> {
    let row = rooms::get_event(&ctx.db, event_id).await?.filter(|r| r.room_id == room_id).ok_or_else(|| err!(NotFound, "Event not found"))?;
    let user = me.user_id.as_str();
    match kind {
        "m.fully_read" => {
            if thread_id.is_some() {
                return Err(err!(BadJson, "m.fully_read cannot be threaded"));
            }
            account_data::put(ctx, user, room_id, "m.fully_read", &json!({ "event_id": event_id })).await
        }
        "m.read" | "m.read.private" => {
            sstore::put_receipt(&ctx.db, room_id, user, kind, thread_id.unwrap_or(""), event_id, row.stream()).await?;
            let who = if kind == "m.read" { rooms::members_with(&ctx.db, room_id, "join").await? } else { vec![user.to_owned()] };
            wakeups::notify_users(&ctx.env, &ctx.config, who).await;
            if kind == "m.read" {
                // Public receipts are shared with the room's other servers; private ones stay here.
                edu::receipt::send(ctx, room_id, user, event_id, thread_id, now_ms()).await?;
            }
            Ok(())
        }
        _ => Err(err!(InvalidParam, "Unknown receipt type")),
    }
}

async fn check_joined(ctx: &Ctx, me: &Authed, room_id: &str) -> Result<()> {
    if rooms::membership(&ctx.db, room_id, me.user_id.as_str()).await?.as_deref() != Some("join") {
        return Err(err!(Forbidden, "You are not in this room"));
    }
    Ok(())
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
/// With `thread_id` for threaded receipts (`main` for the main timeline).
pub async fn receipt_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, kind: &str, event_id: &str) -> Result<Response> {
    let room = parse_room_id(room_id)?;
    let body = req.json_value_or_empty()?;
    if !matches!(kind, "m.read" | "m.read.private" | "m.fully_read") {
        return Err(err!(InvalidParam, "Unknown receipt type"));
    }
    let thread = match body.get("thread_id") {
        None => None,
        Some(Value::String(t)) if !t.is_empty() => Some(t.as_str()),
        Some(_) => return Err(err!(InvalidParam, "thread_id must be a non-empty string")),
    };
    check_joined(ctx, me, room.as_str()).await?;
    set_marker(ctx, me, room.as_str(), kind, event_id, thread).await?;
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
pub async fn read_markers_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let room = parse_room_id(room_id)?;
    let body = req.json_value()?;
    check_joined(ctx, me, room.as_str()).await?;
    for kind in ["m.fully_read", "m.read", "m.read.private"] {
        match body.get(kind) {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) => set_marker(ctx, me, room.as_str(), kind, e, None).await?,
            Some(_) => return Err(err!(BadJson, "{kind} must be an event ID")),
        }
    }
    Ok(Response::ok(json!({})))
}
