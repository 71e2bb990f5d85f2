//! Media administration: deleting local media (row and, once unused, the R2 content and its
//! thumbnails) and quarantining what a room's events reference.

use ruma::RoomId;

use crate::core::admin::mxc_uris;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::{admin as store, media, remote_media};

/// Events of a room scanned for media references (a bound on one request's work).
const ROOM_SCAN_LIMIT: u32 = 5000;

/// Deletes local media `media_id`; false if there was none.
pub async fn delete_local(ctx: &Ctx, media_id: &str) -> Result<bool> {
    let (found, unused_content) = store::delete_media_row(&ctx.db, media_id).await?;
    if let Some(sha) = unused_content {
        media::delete_content(&ctx.media()?, &sha).await?;
    }
    Ok(found)
}

/// Quarantines the media referenced by a room's events (local, and remote media cached here);
/// returns how many were quarantined.
pub async fn quarantine_room(ctx: &Ctx, room_id: &RoomId) -> Result<u64> {
    let mut n = 0;
    let mut seen = Vec::new();
    for json in store::room_media_event_json(&ctx.db, room_id.as_str(), ROOM_SCAN_LIMIT).await? {
        for (server, id) in mxc_uris(&json) {
            if seen.contains(&(server.clone(), id.clone())) {
                continue;
            }
            let done = if server == ctx.server_name() {
                media::set_quarantined(&ctx.db, &id, true).await?
            } else {
                remote_media::set_quarantined(&ctx.db, &server, &id, true).await?
            };
            n += done as u64;
            seen.push((server, id));
        }
    }
    Ok(n)
}
