//! Other servers' signing keys (spec: server-server-api, "Retrieving server keys"): fetched
//! from the server itself (`GET /_matrix/key/v2/server`), else from the trusted notaries
//! (`TRUSTED_KEY_SERVERS`, `POST /_matrix/key/v2/query`), checked, cached in D1; and the
//! signature checks other modules use ([`verify_event`], [`verify_json`]).

use std::cell::RefCell;
use std::collections::HashMap;

use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::{required_server_signatures_to_verify_event, Verified};
use ruma::{CanonicalJsonObject, CanonicalJsonValue, ServerName};
use serde_json::{json, Value};

use super::client;
use crate::core::federation::keys::{
    check_key_document, check_notary_signature, key_map, notary_sign, satisfied, signing_key_ids, usable, KeyDocument, Purpose, ServerKey,
    OWN_KEY_VALIDITY_MS,
};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{log_error, Result};
use crate::http::Method;
use crate::store::federation as store;

/// Fetches of one server's keys are at most this often per isolate (an event with an
/// unknown key ID must not make us hammer its server).
const REFETCH_COOLDOWN_MS: u64 = 30_000;
/// Key documents are trusted for at most a week from when we fetch them (spec: `valid_until_ts`
/// of `/_matrix/key/v2/server`: "the lesser of this field and 7 days into the future").
const MAX_VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;

/// How long an isolate reuses a server's keys read from D1 before reading them again (a
/// key document is valid for hours; a revoked key is at worst believed this much longer).
const ISOLATE_CACHE_MS: u64 = 300_000;

thread_local! {
    static LAST_FETCH: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    /// Keys per server as last read from D1 on this isolate, with when: every inbound
    /// request and every PDU checks a signature, and this saves each a D1 round trip.
    static CACHE: RefCell<HashMap<String, (Vec<ServerKey>, u64)>> = RefCell::new(HashMap::new());
}

fn cached(server: &str) -> Option<Vec<ServerKey>> {
    let now = now_ms();
    CACHE.with(|c| c.borrow().get(server).filter(|(_, at)| now.saturating_sub(*at) < ISOLATE_CACHE_MS).map(|(k, _)| k.clone()))
}

fn remember(server: &str, keys: &[ServerKey]) {
    CACHE.with(|c| c.borrow_mut().insert(server.to_owned(), (keys.to_vec(), now_ms())));
}

/// Our own key, as the others see it.
fn own_keys(ctx: &Ctx) -> Vec<ServerKey> {
    let k = &ctx.config.signing_key;
    vec![ServerKey { key_id: k.key_id(), key: k.public_key_base64(), valid_until_ts: u64::MAX, expired_ts: None }]
}

/// The keys of `server`, fetched when the cache cannot serve `key_ids` (empty: any key) for
/// `purpose`. May return keys that do not serve it (the caller's check then fails).
pub async fn server_keys(ctx: &Ctx, server: &ServerName, key_ids: &[String], purpose: Purpose) -> Result<Vec<ServerKey>> {
    if server.as_str() == ctx.server_name() {
        return Ok(own_keys(ctx));
    }
    if let Some(keys) = cached(server.as_str()).filter(|k| satisfied(k, key_ids, purpose)) {
        return Ok(keys);
    }
    let stored = store::keys(&ctx.db, server.as_str()).await?;
    if satisfied(&stored, key_ids, purpose) || !may_fetch(server.as_str()) {
        remember(server.as_str(), &stored);
        return Ok(stored);
    }
    match fetch_keys(ctx, server).await {
        Some(_) => {
            let keys = store::keys(&ctx.db, server.as_str()).await?;
            remember(server.as_str(), &keys);
            Ok(keys)
        }
        None => Ok(stored),
    }
}

fn may_fetch(server: &str) -> bool {
    let now = now_ms();
    LAST_FETCH.with(|m| {
        let mut m = m.borrow_mut();
        if m.get(server).is_some_and(|t| now.saturating_sub(*t) < REFETCH_COOLDOWN_MS) {
            return false;
        }
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(server.to_owned(), now);
        true
    })
}

/// Fetches and stores `server`'s key document: from the server, else from each trusted
/// notary in turn. `None` when nobody had a valid one.
async fn fetch_keys(ctx: &Ctx, server: &ServerName) -> Option<KeyDocument> {
    match fetch_direct(ctx, server).await {
        Ok(doc) => return Some(doc),
        Err(e) => log_error(&format!("keys of {server}: {e}")),
    }
    for notary in &ctx.config.federation_transport.trusted_key_servers {
        let Ok(notary) = ServerName::parse(notary) else { continue };
        match fetch_via_notary(ctx, &notary, server).await {
            Ok(doc) => return Some(doc),
            Err(e) => log_error(&format!("keys of {server} via {notary}: {e}")),
        }
    }
    None
}

/// `GET /_matrix/key/v2/server` on the server itself.
async fn fetch_direct(ctx: &Ctx, server: &ServerName) -> Result<KeyDocument, String> {
    let v = client::request(ctx, server, Method::Get, "/_matrix/key/v2/server", None).await.map_err(|e| e.to_string())?;
    let doc = checked(&v, server.as_str())?;
    store::store_document(&ctx.db, &doc, now_ms()).await.map_err(|e| e.to_string())?;
    Ok(doc)
}

/// `POST /_matrix/key/v2/query` on a trusted notary: the document must carry the server's
/// own valid signature and the notary's (with the notary's keys, fetched from the notary).
async fn fetch_via_notary(ctx: &Ctx, notary: &ServerName, server: &ServerName) -> Result<KeyDocument, String> {
    let mut notary_keys = store::keys(&ctx.db, notary.as_str()).await.map_err(|e| e.to_string())?;
    if notary.as_str() != ctx.server_name() && !satisfied(&notary_keys, &[], Purpose::Now(now_ms())) {
        notary_keys = fetch_direct(ctx, notary).await?.keys;
    }
    let body = json!({"server_keys": {server.as_str(): {}}});
    let v = client::request(ctx, notary, Method::Post, "/_matrix/key/v2/query", Some(&body)).await.map_err(|e| e.to_string())?;
    let docs = v.get("server_keys").and_then(Value::as_array).ok_or("no server_keys")?;
    let mut best: Option<KeyDocument> = None;
    for d in docs.iter().filter(|d| d.get("server_name").and_then(Value::as_str) == Some(server.as_str())) {
        let Ok(doc) = checked(d, server.as_str()) else { continue };
        if check_notary_signature(&doc.raw, notary.as_str(), &notary_keys).is_err() {
            continue;
        }
        if best.as_ref().is_none_or(|b| doc.valid_until_ts > b.valid_until_ts) {
            best = Some(doc);
        }
    }
    let doc = best.ok_or("no valid document")?;
    store::store_document(&ctx.db, &doc, now_ms()).await.map_err(|e| e.to_string())?;
    Ok(doc)
}

/// A key document checked, its validity capped at a week from now.
fn checked(v: &Value, server: &str) -> Result<KeyDocument, String> {
    let mut doc = check_key_document(v, server)?;
    let cap = now_ms().saturating_add(MAX_VALIDITY_MS);
    doc.valid_until_ts = doc.valid_until_ts.min(cap);
    for k in doc.keys.iter_mut().filter(|k| k.expired_ts.is_none()) {
        k.valid_until_ts = k.valid_until_ts.min(cap);
    }
    Ok(doc)
}

/// Checks the signatures an event needs (spec: "Validating hashes and signatures on received
/// events"): the sender's server (unless a third-party invite), for room versions 1 and 2 the
/// event ID's server, and the `join_authorised_via_users_server`'s for restricted joins; each
/// with the keys valid at the event's `origin_server_ts` (old keys until their `expired_ts`;
/// `valid_until_ts` where the room version enforces it), fetching missing keys. `Verified::
/// Signatures` means the content hash did not match: the caller uses the redacted event.
pub async fn verify_event(ctx: &Ctx, rules: &RoomVersionRules, pdu: &CanonicalJsonObject) -> Result<Verified> {
    let bad = |e: &dyn std::fmt::Display| err!(Forbidden, "Event signature check failed: {e}");
    let servers = required_server_signatures_to_verify_event(pdu, &rules.signatures).map_err(|e| bad(&e))?;
    let ts = match pdu.get("origin_server_ts") {
        Some(CanonicalJsonValue::Integer(i)) => u64::try_from(i64::from(*i)).map_err(|_| bad(&"negative origin_server_ts"))?,
        _ => return Err(bad(&"no origin_server_ts")),
    };
    let purpose = Purpose::Event { ts, enforce_validity: rules.enforce_key_validity };
    let mut map = ruma::signatures::PublicKeyMap::new();
    for server in servers {
        let ids = signing_key_ids(pdu, server.as_str());
        let keys = server_keys(ctx, &server, &ids, purpose).await?;
        map.extend(key_map(server.as_str(), keys.iter().filter(|k| usable(k, purpose))));
    }
    ruma::signatures::verify_event(&map, pdu, rules).map_err(|e| bad(&e))
}

/// The key documents of `server` we vouch for as a notary (spec: "Querying Keys Through
/// Another Server"), countersigned by us: ours, or the cached one, fetched again when it is
/// missing or not valid until `min_valid_until_ts`. Empty when none can be had.
pub async fn notary_documents(ctx: &Ctx, server: &ServerName, min_valid_until_ts: u64) -> Result<Vec<Value>> {
    let now = now_ms();
    if server.as_str() == ctx.server_name() {
        let valid = now + OWN_KEY_VALIDITY_MS;
        return Ok(vec![ctx.config.signing_key.key_document(ctx.server_name(), valid)]);
    }
    let mut stored = store::document(&ctx.db, server.as_str()).await?;
    if stored.as_ref().is_none_or(|(_, valid)| *valid < min_valid_until_ts) && may_fetch(server.as_str()) {
        if let Some(doc) = fetch_keys(ctx, server).await {
            stored = Some((serde_json::to_value(&doc.raw)?, doc.valid_until_ts));
        }
    }
    let Some((doc, _)) = stored else { return Ok(Vec::new()) };
    let raw = match CanonicalJsonValue::try_from(doc) {
        Ok(CanonicalJsonValue::Object(o)) => o,
        _ => return Ok(Vec::new()),
    };
    Ok(vec![notary_sign(&raw, ctx.server_name(), &ctx.config.signing_key).map_err(crate::error::Error::internal)?])
}
