//! `m.receipt` both ways (spec: server-server-api, "Receipts"; schema
//! `definitions/event-schemas/m.receipt.yaml`):
//! `{room_id: {"m.read": {user_id: {event_ids: [..], data: {ts, thread_id?}}}}}`.
//!
//! Out: public read receipts (`m.read`) only; private ones (`m.read.private`) never leave
//! the server. A threaded receipt carries its `thread_id` in `data`.
//! In: each receipt is accepted only for a user of the origin who is joined to the room,
//! and only for an event we have in that room (a receipt for an unknown event is dropped);
//! it is stored as a local one is and wakes the room's local members. Receipts the EDU does
//! not name are left alone.

use ruma::{RoomId, ServerName, UserId};
use serde_json::{json, Map, Value};

use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::federation::sender;
use crate::service::wakeups;
use crate::store::{rooms, servers, sync as sstore};

/// Event IDs looked at per receipt (the spec allows one).
const MAX_EVENT_IDS: usize = 10;

/// Sends a local user's public read receipt in `room_id` to the room's other servers.
pub async fn send(ctx: &Ctx, room_id: &str, user_id: &str, event_id: &str, thread_id: Option<&str>, ts: u64) -> Result<()> {
    let joined = servers::joined_servers(&ctx.db, room_id).await?;
    if joined.iter().all(|s| s == ctx.config.server_name.as_str()) {
        return Ok(());
    }
    let mut data = json!({ "ts": ts });
    if let (Some(t), Some(d)) = (thread_id, data.as_object_mut()) {
        d.insert("thread_id".into(), json!(t));
    }
    let edu = json!({
        "edu_type": "m.receipt",
        "content": { room_id: { "m.read": { user_id: { "event_ids": [event_id], "data": data } } } },
    });
    sender::send_edu(&ctx.env, &ctx.config, joined.iter().map(String::as_str), &edu).await;
    Ok(())
}

/// Applies one `m.receipt` EDU from `origin`. A receipt that is not acceptable is skipped
/// (logged) and the others still apply.
pub async fn receive(ctx: &Ctx, origin: &ServerName, content: &Value) -> Result<()> {
    let Some(by_room) = content.as_object() else { return Ok(()) };
    for (room, types) in by_room {
        let Ok(room_id) = RoomId::parse(room.as_str()) else { continue };
        let Some(reads) = types.get("m.read").and_then(Value::as_object) else { continue };
        if receive_room(ctx, origin, &room_id, reads).await? {
            let members = rooms::members_with(&ctx.db, room_id.as_str(), "join").await?;
            wakeups::notify_users(&ctx.env, &ctx.config, members).await;
        }
    }
    Ok(())
}

/// Stores a room's acceptable receipts; true if any was.
async fn receive_room(ctx: &Ctx, origin: &ServerName, room_id: &RoomId, reads: &Map<String, Value>) -> Result<bool> {
    let mut stored = false;
    for (user, receipt) in reads {
        if !UserId::parse(user.as_str()).is_ok_and(|u| u.server_name() == origin) {
            worker::console_warn!("m.receipt from {origin} for {user}, not its user: dropped");
            continue;
        }
        if rooms::membership(&ctx.db, room_id.as_str(), user).await?.as_deref() != Some("join") {
            worker::console_warn!("m.receipt from {origin}: {user} is not joined to {room_id}: dropped");
            continue;
        }
        let thread_id = receipt.get("data").and_then(|d| d.get("thread_id")).and_then(Value::as_str).filter(|t| !t.is_empty()).unwrap_or("");
        // The spec allows one event ID; should a server send more, the latest we know wins.
        let ids: Vec<String> = receipt
            .get("event_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(MAX_EVENT_IDS)
            .map(str::to_owned)
            .collect();
        let known = rooms::get_events(&ctx.db, &ids).await?;
        let Some(event) = known.into_iter().filter(|e| e.room_id == room_id.as_str()).max_by_key(|e| e.stream()) else {
            continue;
        };
        sstore::put_receipt(&ctx.db, room_id.as_str(), user, "m.read", thread_id, &event.event_id, event.stream()).await?;
        stored = true;
    }
    Ok(stored)
}
