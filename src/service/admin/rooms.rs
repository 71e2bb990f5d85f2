//! Room deletion (Synapse's `DELETE /_synapse/admin/v2/rooms/{roomId}`) as a job of bounded
//! steps: first the local members leave (a few per step), the room's aliases and directory
//! entry go; then, with `purge`, the room's rows are deleted a chunk per table per step
//! (`store::admin::purge_step`), the room's row last. Each request runs steps within a
//! budget and the job resumes from its stored state on the next request (the status
//! endpoints step it too, and [`run_unfinished`] is there for a scheduled run), so no request
//! outlives a Worker's limits and an interrupted deletion finishes later.

use ruma::{RoomId, UserId};
use serde_json::Value;

use crate::core::crypto::random_alpha;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::store::admin::{self as store, RoomDelete};

/// Members removed per step (each is one event through the room's writer).
const LEAVES_PER_STEP: u32 = 10;

/// Starts deleting `room_id`; returns the delete ID. Blocking takes effect at once.
pub async fn start_delete(ctx: &Ctx, admin: &UserId, room_id: &RoomId, block: bool, purge: bool, force_purge: bool) -> Result<String> {
    if block {
        store::block_room(&ctx.db, room_id.as_str(), admin.as_str()).await?;
    }
    let d = RoomDelete {
        delete_id: random_alpha(16),
        room_id: room_id.to_string(),
        requester: admin.to_string(),
        block: block as i64,
        purge: purge as i64,
        force_purge: force_purge as i64,
        status: "scheduled".into(),
        kicked_users: "[]".into(),
        failed_to_kick_users: "[]".into(),
        local_aliases: "[]".into(),
        error: None,
    };
    store::insert_delete(&ctx.db, &d).await?;
    Ok(d.delete_id)
}

fn list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

fn text(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Runs one bounded step of a deletion and stores its progress. Returns whether the job is
/// finished (complete or failed).
pub async fn step(ctx: &Ctx, d: &mut RoomDelete) -> Result<bool> {
    if matches!(d.status.as_str(), "complete" | "failed") {
        return Ok(true);
    }
    let Ok(room_id) = RoomId::parse(&d.room_id) else {
        d.status = "failed".into();
        d.error = Some("invalid room ID".into());
        store::update_delete(&ctx.db, d).await?;
        return Ok(true);
    };
    if d.status == "scheduled" {
        // First step: the aliases and the directory entry go (recorded for the status).
        let aliases = crate::store::rooms::room_aliases(&ctx.db, room_id.as_str()).await?;
        store::unpublish_room(&ctx.db, room_id.as_str()).await?;
        d.local_aliases = text(&aliases);
        d.status = "active".into();
        store::update_delete(&ctx.db, d).await?;
        return Ok(false);
    }
    // Then the local members leave, a few per step. One that cannot (the room's rules refuse
    // it) is recorded and, unless the purge is forced, stops the purge.
    let mut kicked = list(&d.kicked_users);
    let mut failed = list(&d.failed_to_kick_users);
    let members = store::local_members_to_remove(&ctx.db, room_id.as_str(), ctx.server_name(), LEAVES_PER_STEP + failed.len() as u32).await?;
    let todo: Vec<String> = members.into_iter().filter(|m| !failed.contains(m)).take(LEAVES_PER_STEP as usize).collect();
    if !todo.is_empty() {
        for m in todo {
            let Ok(user) = UserId::parse(&m) else {
                failed.push(m);
                continue;
            };
            match super::users::leave(ctx, &user, &room_id).await {
                Ok(()) => kicked.push(m),
                Err(e) => {
                    crate::error::log_error(&format!("room delete {}: {m} could not leave: {e}", d.delete_id));
                    failed.push(m);
                }
            }
        }
        d.kicked_users = text(&kicked);
        d.failed_to_kick_users = text(&failed);
        store::update_delete(&ctx.db, d).await?;
        return Ok(false);
    }
    if d.purge == 0 {
        d.status = "complete".into();
        store::update_delete(&ctx.db, d).await?;
        return Ok(true);
    }
    if !failed.is_empty() && d.force_purge == 0 {
        d.status = "failed".into();
        d.error = Some(format!("{} local users could not leave; use force_purge", failed.len()));
        store::update_delete(&ctx.db, d).await?;
        return Ok(true);
    }
    let deleted = purge_step(ctx, &room_id).await?;
    if deleted == 0 {
        d.status = "complete".into();
        store::update_delete(&ctx.db, d).await?;
        return Ok(true);
    }
    // Progress is in the tables themselves; touch the row so a scheduled run sees it alive.
    store::update_delete(&ctx.db, d).await?;
    Ok(false)
}

/// Runs steps of a deletion until it finishes or `budget_ms` has passed.
pub async fn run(ctx: &Ctx, d: &mut RoomDelete, budget_ms: u64) -> Result<()> {
    let until = now_ms() + budget_ms;
    while !step(ctx, d).await? {
        if now_ms() >= until {
            break;
        }
    }
    Ok(())
}

/// Resumes unfinished deletions, oldest first, within `budget_ms` (for a scheduled run: the
/// cron handler of the "ops" work calls it).
#[allow(dead_code)]
pub async fn run_unfinished(ctx: &Ctx, budget_ms: u64) -> Result<()> {
    let until = now_ms() + budget_ms;
    for mut d in store::unfinished_deletes(&ctx.db, 10).await? {
        let left = until.saturating_sub(now_ms());
        if left == 0 {
            break;
        }
        run(ctx, &mut d, left).await?;
    }
    Ok(())
}

/// Synapse's status object of a deletion.
pub fn status_json(d: &RoomDelete) -> Value {
    let mut v = serde_json::json!({
        "delete_id": d.delete_id,
        "room_id": d.room_id,
        "status": if d.status == "scheduled" { "active" } else { d.status.as_str() },
        "shutdown_room": {
            "kicked_users": list(&d.kicked_users),
            "failed_to_kick_users": list(&d.failed_to_kick_users),
            "local_aliases": list(&d.local_aliases),
            "new_room_id": Value::Null,
        },
    });
    if let (Some(e), Some(o)) = (&d.error, v.as_object_mut()) {
        o.insert("error".into(), Value::String(e.clone()));
    }
    v
}

/// Refuses a join (or knock) to a room an admin blocked (`403 M_FORBIDDEN`).
pub async fn check_not_blocked(ctx: &Ctx, room_id: &RoomId) -> Result<()> {
    if store::is_room_blocked(&ctx.db, room_id.as_str()).await? {
        return Err(err!(Forbidden, "This room has been blocked on this server"));
    }
    Ok(())
}

/// One purge step, run by the room's `Room` object: under its writer lock (no append
/// interleaves) and dropping its cached head and state, which the step deletes.
async fn purge_step(ctx: &Ctx, room_id: &RoomId) -> Result<u64> {
    use crate::durable_objects::protocol::{RoomProto, RoomRequest, RoomResponse};
    use crate::service::objects::{call, unexpected};
    match call::<RoomProto>(&ctx.env, room_id.as_str(), &RoomRequest::Purge { room_id: room_id.to_string() }).await? {
        RoomResponse::Purged { rows } => Ok(rows),
        _ => Err(unexpected::<RoomProto>()),
    }
}
