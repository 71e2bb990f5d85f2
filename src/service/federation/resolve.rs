//! Resolving server names (spec: server-server-api, "Resolving server names"): the lookups
//! (well-known over `fetch`, SRV over DNS-over-HTTPS) and their KV caches around the
//! decisions of [`crate::core::federation::discovery`].

use ruma::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::client::fetch;
use crate::core::federation::discovery::{
    after_srv, delegated, destination_ttl, direct, parse_srv_answer, parse_well_known, split, srv_names, well_known_ttl, Destination, WellKnownCache,
    MIN_CACHE_TTL_SECS, WELL_KNOWN_MAX_BYTES,
};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;

/// How long a well-known outcome stays in KV after it expired (for back-off).
const KEEP_WELL_KNOWN_SECS: u64 = 7 * 24 * 3600;
/// Time a well-known or DNS lookup may take (within the request's deadline).
const LOOKUP_TIMEOUT_MS: u64 = 5_000;

/// Where requests for `server` go. IP literals and explicit ports need no lookup; otherwise
/// the cached destination, or well-known then SRV then port 8448.
pub async fn resolve(ctx: &Ctx, server: &ServerName, deadline: u64) -> Result<Destination> {
    if let Some(d) = direct(server.as_str()) {
        return Ok(d);
    }
    let dest_key = format!("fed:dest:{server}");
    if let Some(d) = kv_get::<Destination>(ctx, &dest_key).await {
        return Ok(d);
    }
    let (host, _) = split(server.as_str()).ok_or_else(|| err!(InvalidParam, "Bad server name"))?;
    let lookup_deadline = deadline.min(now_ms() + LOOKUP_TIMEOUT_MS);
    let (wk, wk_secs) = well_known(ctx, &host, lookup_deadline).await;
    let (dest, srv_ttl) = match wk.delegated {
        Some(name) => match delegated(&name) {
            Some(d) => (d, None),
            None => srv(ctx, &split(&name).map(|(h, _)| h).unwrap_or(name), lookup_deadline).await,
        },
        None => srv(ctx, &host, lookup_deadline).await,
    };
    kv_put(ctx, &dest_key, &dest, destination_ttl(wk_secs, srv_ttl)).await;
    Ok(dest)
}

/// The (cached) well-known outcome for `host`, with the seconds it stays valid.
async fn well_known(ctx: &Ctx, host: &str, deadline: u64) -> (WellKnownCache, u64) {
    let key = format!("fed:wk:{host}");
    // Stored with its expiry and kept in KV longer than that, so that the next failure knows
    // the previous outcome (back-off, keeping a valid delegation through an outage).
    let cached = kv_get::<(WellKnownCache, u64)>(ctx, &key).await;
    if let Some((c, expires_ms)) = cached.as_ref() {
        let now = now_ms();
        if now < *expires_ms {
            return (c.clone(), (expires_ms - now) / 1000);
        }
    }
    let cached = cached.map(|(c, _)| c);
    let scheme = if ctx.config.federation_transport.insecure_http { "http" } else { "https" };
    let url = format!("{scheme}://{host}/.well-known/matrix/server");
    let got = fetch("GET", &url, &[("Accept", "application/json")], Vec::new(), deadline, WELL_KNOWN_MAX_BYTES).await;
    // `fetch` follows redirects (with the runtime's loop limit), as the spec asks.
    let parsed = got.ok().and_then(|r| parse_well_known(r.status, &r.body).map(|d| (d, r.cache_control)));
    let (entry, ttl) = match parsed {
        Some((d, cache_control)) => (WellKnownCache { delegated: Some(d), failures: 0 }, well_known_ttl(cache_control.as_deref())),
        None => WellKnownCache::after_failure(cached.as_ref()),
    };
    kv_put(ctx, &key, &(&entry, now_ms() + ttl * 1000), KEEP_WELL_KNOWN_SECS).await;
    (entry, ttl)
}

/// SRV `_matrix-fed._tcp`, then `_matrix._tcp`, then port 8448, for `host`; with the TTL of
/// the record found.
async fn srv(ctx: &Ctx, host: &str, deadline: u64) -> (Destination, Option<u64>) {
    for name in srv_names(host) {
        if let Some((target, port, ttl)) = srv_lookup(ctx, &name, deadline).await {
            return (after_srv(host, Some((target, port))), Some(ttl));
        }
    }
    (after_srv(host, None), None)
}

/// One SRV lookup over DNS-over-HTTPS (JSON API, `FEDERATION_DOH_URL`).
async fn srv_lookup(ctx: &Ctx, name: &str, deadline: u64) -> Option<(String, u16, u64)> {
    let base = &ctx.config.federation_transport.doh_url;
    let sep = if base.contains('?') { '&' } else { '?' };
    // `name` is a hostname of the server-name grammar (letters, digits, `-`, `.`): no escaping.
    let url = format!("{base}{sep}name={name}&type=SRV");
    let r = fetch("GET", &url, &[("Accept", "application/dns-json")], Vec::new(), deadline, 64 * 1024).await.ok()?;
    if r.status != 200 {
        return None;
    }
    parse_srv_answer(&serde_json::from_slice::<Value>(&r.body).ok()?)
}

async fn kv_get<T: DeserializeOwned>(ctx: &Ctx, key: &str) -> Option<T> {
    ctx.kv().ok()?.get(key).json::<T>().await.ok().flatten()
}

/// Best effort: a cache write that fails only costs a lookup later.
async fn kv_put<T: Serialize>(ctx: &Ctx, key: &str, value: &T, ttl_secs: u64) {
    let (Ok(kv), Ok(text)) = (ctx.kv(), serde_json::to_string(value)) else { return };
    if let Ok(put) = kv.put(key, text) {
        let _ = put.expiration_ttl(ttl_secs.max(MIN_CACHE_TTL_SECS)).execute().await;
    }
}
