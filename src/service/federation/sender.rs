//! Outbound federation: our new events (and EDUs) go into the queue of each server that
//! should receive them, one `Destination` Durable Object per server, which sends them as
//! transactions and retries until they are delivered (spec: server-server-api,
//! "Transactions"; `durable_objects/destination.rs`). The rules (who receives what, batch
//! limits, backoff, catch-up) are in [`crate::core::federation::queue`].
//!
//! Enqueueing is one call per destination, in parallel (bounded): the sending itself
//! happens in each object's alarm, off the caller's path.

use futures_util::stream::{self, StreamExt};
use ruma::events::TimelineEventType;
use ruma::RoomId;
use serde_json::Value;
use worker::Env;

use crate::core::config::Config;
use crate::core::federation::queue::{self, Outgoing};
use crate::core::room::pdu::Pdu;
use crate::durable_objects::protocol::{DestinationProto, DestinationRequest, QueuedPduWire};
use crate::error::Result;
use crate::service::objects::call;
use crate::store::db::Db;
use crate::store::servers;

/// Destinations enqueued at once.
const PARALLEL: usize = 16;

/// Queues our events among `pdus` (all of `room_id`; others' are never forwarded) for the
/// servers of the room's joined members and of membership targets. Looks the servers up;
/// [`send_pdus_to`] is the same with the joined members already at hand.
#[allow(dead_code)] // for writers that have not loaded the members (`notify` has)
pub async fn send_pdus(env: &Env, db: &Db, config: &Config, room_id: &RoomId, pdus: &[Pdu]) -> Result<()> {
    if !pdus.iter().any(|p| p.room_id == room_id && is_ours(config, p)) {
        return Ok(());
    }
    let joined = servers::joined_servers(db, room_id.as_str()).await?;
    send_pdus_to(env, config, joined.iter().map(String::as_str), pdus).await
}

/// [`send_pdus`] with the server names of the room's joined members given by the caller
/// (e.g. read off the member list it already loaded, with [`queue::server_of`]).
pub async fn send_pdus_to<'a>(env: &Env, config: &Config, joined_servers: impl IntoIterator<Item = &'a str>, pdus: &[Pdu]) -> Result<()> {
    let ours: Vec<&Pdu> = pdus.iter().filter(|p| is_ours(config, p)).collect();
    if ours.is_empty() {
        return Ok(());
    }
    let outgoing: Vec<Outgoing> = ours.iter().map(|p| outgoing(p)).collect();
    let destinations = queue::destinations(config.server_name.as_str(), joined_servers, &outgoing);
    if destinations.is_empty() {
        return Ok(());
    }
    enqueue_pdus(env, destinations, &ours).await
}

/// Forwards a membership event another server's user sent through us (`send_join`,
/// `send_leave`, `send_knock`) to the other servers in the room, as the resident server
/// does: the sender's server only talked to us (Synapse's `send_on_behalf_of`).
pub async fn send_on_behalf(env: &Env, db: &Db, config: &Config, pdu: &Pdu, origin: &str) -> Result<()> {
    let joined = servers::joined_servers(db, pdu.room_id.as_str()).await?;
    let destinations: Vec<String> = joined.into_iter().filter(|s| s != origin && s != config.server_name.as_str()).collect();
    enqueue_pdus(env, destinations, &[pdu]).await
}

async fn enqueue_pdus(env: &Env, destinations: Vec<String>, pdus: &[&Pdu]) -> Result<()> {
    if destinations.is_empty() {
        return Ok(());
    }
    let mut wire = Vec::with_capacity(pdus.len());
    for p in pdus {
        wire.push(QueuedPduWire { room_id: p.room_id.to_string(), event_id: p.event_id.to_string(), pdu: serde_json::to_value(&p.json)? });
    }
    let wire = &wire;
    // Each destination's queue is independent: one unreachable object fails only its own.
    stream::iter(destinations)
        .for_each_concurrent(PARALLEL, |dest| async move {
            let request = DestinationRequest::Enqueue { destination: dest.clone(), pdus: wire.clone(), edus: vec![] };
            if let Err(e) = call::<DestinationProto>(env, &dest, &request).await {
                worker::console_error!("federation queue of {dest}: {e}");
            }
        })
        .await;
    Ok(())
}

/// Queues one EDU (`{"edu_type": …, "content": …}`) for each of `servers` but ourselves, in
/// parallel (bounded); one failing queue fails only its own delivery (logged).
pub async fn send_edu<'a>(env: &Env, config: &Config, servers: impl IntoIterator<Item = &'a str>, edu: &Value) {
    let ours = config.server_name.as_str();
    let mut destinations: Vec<&str> = servers.into_iter().filter(|s| *s != ours).collect();
    destinations.sort_unstable();
    destinations.dedup();
    stream::iter(destinations)
        .for_each_concurrent(PARALLEL, |dest| async move {
            if let Err(e) = enqueue_edus(env, dest, vec![edu.clone()]).await {
                worker::console_error!("federation queue of {dest}: {e}");
            }
        })
        .await;
}

/// Queues EDUs (`{"edu_type": …, "content": …}`) for one destination.
pub async fn enqueue_edus(env: &Env, destination: &str, edus: Vec<Value>) -> Result<()> {
    if edus.is_empty() {
        return Ok(());
    }
    let request = DestinationRequest::Enqueue { destination: destination.to_owned(), pdus: vec![], edus };
    call::<DestinationProto>(env, destination, &request).await.map(|_| ())
}

/// Ends a destination's backoff and sends its queue now: call when the server shows it is
/// back (e.g. it sent us a transaction).
pub async fn wake(env: &Env, destination: &str) -> Result<()> {
    call::<DestinationProto>(env, destination, &DestinationRequest::Wake { destination: destination.to_owned() }).await.map(|_| ())
}

fn outgoing(p: &Pdu) -> Outgoing<'_> {
    let member_target = if p.kind == TimelineEventType::RoomMember { p.state_key.as_deref() } else { None };
    Outgoing { sender: p.sender.as_str(), member_target }
}

fn is_ours(config: &Config, p: &Pdu) -> bool {
    queue::is_ours(config.server_name.as_str(), &outgoing(p))
}
