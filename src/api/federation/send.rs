//! Transactions from other servers (spec: server-server-api, "Transactions").

use std::collections::BTreeMap;

use ruma::{OwnedRoomId, RoomId, ServerName};
use serde_json::{json, Map, Value};

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::{acl, edu, room, sender};
use crate::store::{graph, rooms};

/// The spec's limits on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

/// # `PUT /_matrix/federation/v1/send/{txnId}`
/// Each PDU goes through the checks on receipt in its room's `Room` object; the answer
/// reports each PDU's outcome (a refused PDU does not fail the transaction). A transaction
/// repeated by its origin gets the first answer and is not processed again. EDUs go to
/// [`edu::receive`] after the PDUs (a receipt may name an event of the same transaction).
pub async fn send_transaction_route(ctx: &Ctx, req: &Request, origin: &ServerName, txn_id: &str) -> Result<Response> {
    // The origin is up: whatever we queued for it goes now, not at the end of its backoff.
    if let Some(w) = &ctx.wctx {
        let (env, dest) = (ctx.env.clone(), origin.to_string());
        w.wait_until(async move {
            if let Err(e) = sender::wake(&env, &dest).await {
                worker::console_error!("waking the queue of {dest}: {e}");
            }
        });
    }
    if let Some(done) = graph::txn_response(&ctx.db, origin.as_str(), txn_id).await? {
        return Ok(Response::ok(done));
    }
    let body = req.json_value()?;
    let pdus = body.get("pdus").and_then(Value::as_array).cloned().unwrap_or_default();
    let edus = body.get("edus").and_then(Value::as_array).cloned().unwrap_or_default();
    if pdus.len() > MAX_PDUS || edus.len() > MAX_EDUS {
        return Err(err!(BadJson, "A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"));
    }
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
    let mut results = Map::new();
    for (room_id, pdus) in by_room {
        // A room we do not know is refused here (no Durable Object for an arbitrary room ID);
        // a server the room's ACL denies has its PDUs for that room dropped (spec: "Server
        // Access Control Lists"). Both reads at once.
        let (known, allowed) = futures_util::future::join(rooms::get_room(&ctx.db, room_id.as_str()), acl::check(ctx, &room_id, origin)).await;
        let outcome = match (known?, allowed) {
            (None, _) => Err(err!(NotFound, "Unknown room")),
            (Some(_), Err(e)) => Err(e),
            (Some(_), Ok(())) => room::ingest(ctx, &room_id, origin, pdus).await,
        };
        match outcome {
            Ok(list) => {
                for r in list {
                    results.insert(r.event_id, r.error.map(|e| json!({ "error": e })).unwrap_or_else(|| json!({})));
                }
            }
            Err(e) => worker::console_warn!("transaction {txn_id} from {origin}: room {room_id}: {e}"),
        }
    }
    edu::receive(ctx, origin, &edus).await;
    let answer = json!({ "pdus": results });
    graph::put_txn_response(&ctx.db, origin.as_str(), txn_id, &answer).await?;
    Ok(Response::ok(answer))
}
