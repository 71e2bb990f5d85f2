//! Transactions from other servers (spec: server-server-api, "Transactions").

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedRoomId, RoomId, ServerName};
use serde_json::{json, Map, Value};

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::{acl, edu, room, sender};
use crate::store::graph::{self, TxnRoom};

/// The spec's limits on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

/// # `PUT /_matrix/federation/v1/send/{txnId}`
/// Each PDU goes through the checks on receipt in its room's `Room` object; the answer
/// reports each PDU's outcome (a refused PDU does not fail the transaction). A transaction
/// repeated by its origin gets the first answer and is not processed again. EDUs go to
/// [`edu::receive`] after the PDUs (a receipt may name an event of the same transaction).
pub async fn send_transaction_route(ctx: &Ctx, req: &Request, origin: &ServerName, txn_id: &str) -> Result<Response> {
    let body = req.json_value();
    let pdus = body.as_ref().ok().and_then(|b| b.get("pdus")).and_then(Value::as_array).cloned().unwrap_or_default();
    let n_pdus = pdus.len();
    // By room, keeping the order they came in.
    let mut by_room: BTreeMap<OwnedRoomId, Vec<Value>> = BTreeMap::new();
    for pdu in pdus {
        // Whoever relays it, a PDU must carry its sender's server's signature (checked on
        // receipt): a server cannot speak for another's users.
        match pdu.get("room_id").and_then(Value::as_str).and_then(|r| RoomId::parse(r).ok()) {
            Some(r) => by_room.entry(r).or_default().push(pdu),
            None => worker::console_warn!("transaction {txn_id} from {origin}: a PDU without a room"),
        }
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            // Only a repeat of an answered transaction is answered.
            return match graph::txn_answer(&ctx.db, origin.as_str(), txn_id).await? {
                Some(done) => {
                    wake(ctx, origin);
                    Ok(Response::ok(done))
                }
                None => Err(e),
            };
        }
    };
    let edus = body.get("edus").and_then(Value::as_array).cloned().unwrap_or_default();
    if n_pdus > MAX_PDUS || edus.len() > MAX_EDUS {
        return Err(err!(BadJson, "A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"));
    }
    // Whether the transaction was answered before is read beside the PDUs' ingest, not
    // ahead of it: a repeat's PDUs are known, and storing a known PDU again is a no-op.
    let (done, results) =
        futures_util::future::join(graph::txn_answer(&ctx.db, origin.as_str(), txn_id), pdus_to_rooms(ctx, origin, txn_id, by_room)).await;
    if let Some(done) = done? {
        wake(ctx, origin);
        return Ok(Response::ok(done));
    }
    let (results, room_trips) = results?;
    // After the PDUs, which it would only slow down.
    wake(ctx, origin);
    edu::receive(ctx, origin, &edus).await;
    // A transaction without EDUs whose PDUs were all taken is answered the same when
    // repeated (a known PDU is answered `{}` and not stored again): its answer is not
    // stored, which keeps a D1 write away from the woken members' syncs.
    let refused = results.values().any(|r| r.get("error").is_some());
    let answer = json!({ "pdus": results });
    if !edus.is_empty() || refused {
        graph::put_txn_response(&ctx.db, origin.as_str(), txn_id, &answer).await?;
    }
    // The rooms' objects' round trips count as the request's (its log line says so too).
    let mut resp = Response::ok(answer);
    resp.headers.push(("X-Stratus-D1-Round-Trips".into(), (ctx.db.round_trips() + room_trips).to_string()));
    Ok(resp)
}

/// Hands each room's PDUs to its `Room` object, which checks the origin against the room's
/// server ACL (spec: "Server Access Control Lists"); the outcome of each PDU by event ID. A
/// room this isolate has not seen is read first (one batch for all of them): a room we do
/// not know is refused here (no Durable Object for an arbitrary room ID), and a denied
/// origin is answered without the object. Also returns the D1 round trips the objects made.
async fn pdus_to_rooms(
    ctx: &Ctx,
    origin: &ServerName,
    txn_id: &str,
    by_room: BTreeMap<OwnedRoomId, Vec<Value>>,
) -> Result<(Map<String, Value>, u32)> {
    // Asked once, so that a room remembered meanwhile (by a concurrent transaction) still
    // finds the row read for it.
    let unseen: BTreeSet<String> = by_room.keys().filter(|r| !room::is_known(r)).map(|r| r.to_string()).collect();
    let read = graph::room_acls(&ctx.db, &unseen.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let mut results = Map::new();
    let mut trips = 0;
    for (room_id, pdus) in by_room {
        let outcome = match read.get(room_id.as_str()) {
            _ if !unseen.contains(room_id.as_str()) => room::ingest(ctx, &room_id, origin, pdus).await,
            None => Err(err!(NotFound, "Unknown room")),
            Some(TxnRoom { acl, room_version }) => {
                room::remember(&room_id);
                match acl::refusals(acl.as_ref(), room_version, origin, &pdus) {
                    Some(refused) => {
                        for (id, why) in refused {
                            results.insert(id, json!({ "error": why }));
                        }
                        Err(err!(Forbidden, "Server {origin} is denied by the room's server ACL"))
                    }
                    None => room::ingest(ctx, &room_id, origin, pdus).await,
                }
            }
        };
        match outcome {
            Ok((list, room_trips)) => {
                trips += room_trips;
                for r in list {
                    results.insert(r.event_id, r.error.map(|e| json!({ "error": e })).unwrap_or_else(|| json!({})));
                }
            }
            Err(e) => worker::console_warn!("transaction {txn_id} from {origin}: room {room_id}: {e}"),
        }
    }
    Ok((results, trips))
}

/// The origin is up: whatever we queued for it goes now, not at the end of its backoff (in
/// the background).
fn wake(ctx: &Ctx, origin: &ServerName) {
    if let Some(w) = &ctx.wctx {
        let (env, dest) = (ctx.env.clone(), origin.to_string());
        w.wait_until(async move {
            if let Err(e) = sender::wake(&env, &dest).await {
                worker::console_error!("waking the queue of {dest}: {e}");
            }
        });
    }
}
