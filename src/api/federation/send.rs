//! Transactions from other servers (spec: server-server-api, "Transactions").

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, OwnedRoomId, RoomId, ServerName};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::core::federation::acl::allows;
use crate::core::federation::pdu::event_id_of;
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::{edu, room, sender};
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
    // The transaction's earlier answer, which of its rooms we know and their server ACLs:
    // one round trip before the PDUs go to their rooms.
    let room_ids: Vec<&str> = by_room.keys().map(|r| r.as_str()).collect();
    let reads = graph::txn_reads(&ctx.db, origin.as_str(), txn_id, &room_ids).await?;
    if let Some(done) = reads.done {
        wake(ctx, origin);
        return Ok(Response::ok(done));
    }
    let body = body?;
    let edus = body.get("edus").and_then(Value::as_array).cloned().unwrap_or_default();
    if n_pdus > MAX_PDUS || edus.len() > MAX_EDUS {
        return Err(err!(BadJson, "A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"));
    }
    let mut results = Map::new();
    for (room_id, pdus) in by_room {
        // A room we do not know is refused here (no Durable Object for an arbitrary room ID);
        // a server the room's ACL denies has its PDUs for that room dropped (spec: "Server
        // Access Control Lists").
        let outcome = match reads.rooms.get(room_id.as_str()) {
            None => Err(err!(NotFound, "Unknown room")),
            Some(TxnRoom { acl: Some(acl), room_version }) if !allows(acl, origin.as_str()) => {
                // Each of its PDUs is answered with the refusal (as Synapse does), so the origin
                // knows they were not taken.
                let why = format!("Server {origin} is denied by the room's server ACL");
                if let Ok((_, rules)) = version_rules(room_version) {
                    for pdu in &pdus {
                        if let Some(id) = CanonicalJsonObject::deserialize(pdu).ok().and_then(|o| event_id_of(&rules, &o).ok()) {
                            results.insert(id.to_string(), json!({ "error": why }));
                        }
                    }
                }
                Err(err!(Forbidden, "{why}"))
            }
            Some(_) => room::ingest(ctx, &room_id, origin, pdus).await,
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
    // After the PDUs, which it would only slow down.
    wake(ctx, origin);
    edu::receive(ctx, origin, &edus).await;
    let answer = json!({ "pdus": results });
    graph::put_txn_response(&ctx.db, origin.as_str(), txn_id, &answer).await?;
    Ok(Response::ok(answer))
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
