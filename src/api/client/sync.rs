//! `/sync` (spec: client-server-api, "Syncing"; OpenAPI `sync.yaml`) and filters
//! (`filter.yaml`).
//!
//! The streams are built in `service::sync` (one snapshot batch, a bounded number of D1
//! round trips whatever the number of rooms); this handler parses the parameters, long-polls
//! and answers.
//!
//! Long-polling: with `timeout`, a sync that finds nothing waits on a watch of the user's
//! `UserSync` Durable Object, opened *before* checking the stores, so a change committed in
//! between wakes it at once (no lost wake-up). A sync that finds
//! nothing returns after the timeout with the same `next_batch` it was given.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::{json, Value};

use crate::api::auth::{self, Authed};
use crate::core::filter::Filter;
use crate::core::sync::KeyCounts;
use crate::core::sync_token::SyncToken;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::sync::{self, Params};
use crate::service::wakeups;
use crate::store::sync as sstore;

/// Long-poll waits are capped (clients ask for 30 s).
const MAX_TIMEOUT_MS: u64 = 60_000;

// Stored filters seen in this isolate, by (user, filter ID): a filter never changes once
// stored (there is no way to edit or delete one), so clients that sync with a filter ID do not
// pay a round trip for it on every sync. Bounded: emptied when full.
thread_local! {
    static KNOWN_FILTERS: RefCell<HashMap<(String, u64), Value>> = RefCell::new(HashMap::new());
}
const KNOWN_FILTERS_MAX: usize = 1024;

/// Loads the `filter` parameter: a stored filter ID or inline JSON.
pub async fn load_filter(ctx: &Ctx, me: &Authed, param: Option<&str>) -> Result<Filter> {
    let Some(p) = param else { return Ok(Filter::default()) };
    let v: Value = if p.trim_start().starts_with('{') {
        serde_json::from_str(p).map_err(|_| err!(BadJson, "filter is not valid JSON"))?
    } else {
        let id: u64 = p.parse().map_err(|_| err!(InvalidParam, "Unknown filter ID"))?;
        let key = (me.user_id.to_string(), id);
        match KNOWN_FILTERS.with(|k| k.borrow().get(&key).cloned()) {
            Some(v) => v,
            None => {
                let v = sstore::get_filter(&ctx.db, me.user_id.as_str(), id).await?.ok_or_else(|| err!(NotFound, "No such filter"))?;
                KNOWN_FILTERS.with(|k| {
                    let mut k = k.borrow_mut();
                    if k.len() >= KNOWN_FILTERS_MAX {
                        k.clear();
                    }
                    k.insert(key, v.clone());
                });
                v
            }
        }
    };
    Filter::parse(&v).map_err(|e| err!(BadJson, "{e}"))
}

/// # `GET /_matrix/client/v3/sync`
/// The response carries `X-Stratus-D1-Round-Trips`: the D1 calls this request made.
///
/// The caller's token may come from the isolate's cache unconfirmed: the first pass folds its
/// check into the snapshot batch, and every other way out (a bad parameter, an unknown
/// filter) confirms it here, so a revoked token never gets anything but `M_UNKNOWN_TOKEN`.
pub async fn sync_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let out = sync_inner(ctx, req, me).await;
    auth::ensure_confirmed(ctx, me).await?;
    let mut resp = out?;
    resp.headers.push(("X-Stratus-D1-Round-Trips".into(), ctx.db.round_trips().to_string()));
    Ok(resp)
}

async fn sync_inner(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let since = match req.query("since") {
        Some(s) => Some(SyncToken::decode(s).ok_or_else(|| err!(InvalidParam, "Invalid since token"))?),
        None => None,
    };
    let timeout = match req.query("timeout") {
        Some(t) => t.parse::<u64>().map_err(|_| err!(InvalidParam, "timeout must be an integer"))?.min(MAX_TIMEOUT_MS),
        None => 0,
    };
    let flag = |k: &str| req.query(k).is_some_and(|v| v == "true" || v == "1");
    // set_presence (spec: omitted means online; `offline` means "don't touch"); applied by the
    // first pass, whose snapshot batch reads the stored presence.
    let set_presence = match req.query("set_presence").unwrap_or("online") {
        "offline" => None,
        s @ ("online" | "unavailable") => Some(s.to_owned()),
        _ => return Err(err!(InvalidParam, "set_presence must be online, offline or unavailable")),
    };
    let mut p = Params {
        since,
        full_state: flag("full_state"),
        state_after: flag("use_state_after") || flag("org.matrix.msc4222.use_state_after"),
        filter: load_filter(ctx, me, req.query("filter")).await?,
        set_presence,
        device: Default::default(),
    };

    let deadline = now_ms() + timeout;
    let waits = p.since.is_some() && timeout > 0 && !p.full_state;
    // Watch before looking, so nothing committed after the look is missed.
    let mut watch = match p.since.filter(|_| waits) {
        Some(s) => Some(wakeups::Watch::open(&ctx.env, me.user_id.as_str(), &me.device_id, s.to_device).await?),
        None => None,
    };
    if let Some(w) = &watch {
        p.device.keys = w.state().keys.as_ref().map(|k| KeyCounts::new(&k.one_time, k.unused_fallback.clone()));
    }
    for _ in 0..20 {
        if let Some(w) = watch.as_mut() {
            p.device.skip_to_device = !w.take_to_device_due();
        }
        let out = sync::compute(ctx, me, &p).await?;
        p.set_presence = None;
        // Later passes reuse the counts: at most one key counts read per sync.
        p.device.keys = Some(out.keys.clone());
        let found = out.has_updates();
        let body = serde_json::to_value(out)?;
        let now = now_ms();
        let Some(w) = watch.as_mut().filter(|_| !found && now < deadline) else {
            return Ok(Response::ok(body));
        };
        if !w.changed(deadline - now).await? {
            // Timed out with nothing new: the same positions back.
            return Ok(Response::ok(body));
        }
    }
    Ok(Response::ok(serde_json::to_value(sync::compute(ctx, me, &p).await?)?))
}

/// # `POST /_matrix/client/v3/user/{userId}/filter`
pub async fn create_filter_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    crate::core::ids::parse_client_user_id(user_id)?;
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot create filters for other users"));
    }
    let body = req.json_value()?;
    Filter::parse(&body).map_err(|e| err!(BadJson, "{e}"))?;
    let id = sstore::put_filter(&ctx.db, user_id, &body.to_string()).await?;
    Ok(Response::ok(json!({ "filter_id": id.to_string() })))
}

/// # `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
pub async fn get_filter_route(ctx: &Ctx, _req: &Request, me: &Authed, user_id: &str, filter_id: &str) -> Result<Response> {
    crate::core::ids::parse_client_user_id(user_id)?;
    if me.user_id.as_str() != user_id {
        return Err(err!(Forbidden, "Cannot read filters of other users"));
    }
    let id: u64 = filter_id.parse().map_err(|_| err!(NotFound, "No such filter"))?;
    let f = sstore::get_filter(&ctx.db, user_id, id).await?.ok_or_else(|| err!(NotFound, "No such filter"))?;
    Ok(Response::ok(f))
}
