//! Calls into a room's `Room` Durable Object for federation: PDUs from other servers and
//! rooms joined on other servers go through the room's single writer.

use std::cell::RefCell;
use std::collections::HashSet;

use ruma::{OwnedRoomId, RoomId, ServerName};
use serde_json::Value;

use crate::ctx::Ctx;
use crate::durable_objects::protocol::{PduResult, RoomProto, RoomRequest, RoomResponse};
use crate::error::Result;
use crate::service::objects::{call, unexpected};

/// Rooms remembered per isolate, at most this many.
const KNOWN_ROOMS: usize = 4096;

thread_local! {
    /// Rooms this isolate has seen in D1: `PUT /send` hands their PDUs to the room's object
    /// at once (which checks the server ACL itself) instead of reading first. Only rooms that
    /// exist get an object this way; a purged room's object finds no room and refuses.
    static KNOWN: RefCell<HashSet<OwnedRoomId>> = RefCell::new(HashSet::new());
}

/// Whether this isolate has seen `room_id` in D1 ([`remember`]).
pub fn is_known(room_id: &RoomId) -> bool {
    KNOWN.with(|k| k.borrow().contains(room_id))
}

/// Notes that `room_id` exists in D1.
pub fn remember(room_id: &RoomId) {
    KNOWN.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KNOWN_ROOMS {
            k.clear();
        }
        k.insert(room_id.to_owned());
    });
}

/// Runs the checks on receipt for PDUs of one room and stores them; their outcomes and the
/// D1 round trips the room's object made for them.
pub async fn ingest(ctx: &Ctx, room_id: &RoomId, origin: &ServerName, pdus: Vec<Value>) -> Result<(Vec<PduResult>, u32)> {
    let request = RoomRequest::Ingest { room_id: room_id.to_string(), origin: origin.to_string(), pdus };
    match call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await? {
        RoomResponse::Ingested { results, d1_round_trips } => Ok((results, d1_round_trips)),
        _ => Err(unexpected::<RoomProto>()),
    }
}

/// Backfills up to `limit` events before `from` from a server in the room, through the
/// room's single writer; returns the IDs of the events stored.
pub async fn backfill(ctx: &Ctx, room_id: &RoomId, from: &[String], limit: u32) -> Result<Vec<String>> {
    let request = RoomRequest::Backfill { room_id: room_id.to_string(), from: from.to_vec(), limit };
    match call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await? {
        RoomResponse::Appended { event_ids } => Ok(event_ids),
        _ => Err(unexpected::<RoomProto>()),
    }
}

/// What the resident server answered to `send_join`, for the room's object to store.
pub struct JoinedRoom {
    pub room_version: String,
    pub join_event: Value,
    pub state: Vec<Value>,
    pub auth_chain: Vec<Value>,
}

/// Stores a room joined on `origin`; returns the join's event ID.
pub async fn store_join(ctx: &Ctx, room_id: &RoomId, origin: &ServerName, joined: JoinedRoom) -> Result<String> {
    let request = RoomRequest::JoinRemote {
        room_id: room_id.to_string(),
        room_version: joined.room_version,
        origin: origin.to_string(),
        join_event: joined.join_event,
        state: joined.state,
        auth_chain: joined.auth_chain,
    };
    match call::<RoomProto>(&ctx.env, room_id.as_str(), &request).await? {
        RoomResponse::Appended { event_ids } => event_ids.into_iter().next().ok_or_else(unexpected::<RoomProto>),
        _ => Err(unexpected::<RoomProto>()),
    }
}
