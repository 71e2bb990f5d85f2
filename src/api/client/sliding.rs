//! Simplified sliding sync (MSC4186) at the unstable endpoint clients use today. The engine
//! is `service::sliding`; this handler parses the request (`pos` and `timeout` as query
//! parameters or in the body), long-polls and answers.
//!
//! Long-polling follows `/sync` v3 (`api::client::sync`): the `UserSync` change counter is
//! read (with the connection state, in the same call) *before* the stores are looked at, so
//! a change committed in between wakes the wait at once. A response with nothing keeps the
//! `pos` it was given; one with something stores the connection's new state under a new
//! `pos`.

use crate::api::auth::Authed;
use crate::core::sliding::extensions::ExtensionsRequest;
use crate::core::sliding::request::SlidingRequest;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::{sliding, wakeups};

/// Long-poll waits are capped (clients ask for 30 s).
const MAX_TIMEOUT_MS: u64 = 60_000;

/// # `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`
/// MSC4186. The response carries `X-Stratus-D1-Round-Trips`: the D1 calls this request made.
pub async fn sliding_sync_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let mut resp = sliding_inner(ctx, req, me).await?;
    resp.headers.push(("X-Stratus-D1-Round-Trips".into(), ctx.db.round_trips().to_string()));
    Ok(resp)
}

async fn sliding_inner(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value_or_empty()?;
    let ext: ExtensionsRequest = body.get("extensions").cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let r = SlidingRequest::parse(body, me.user_id.as_str())?;
    let pos = req.query("pos").map(str::to_owned).or_else(|| r.pos.clone());
    let timeout = match req.query("timeout") {
        Some(t) => t.parse::<u64>().map_err(|_| err!(InvalidParam, "timeout must be an integer"))?,
        None => r.timeout.unwrap_or(0),
    }
    .min(MAX_TIMEOUT_MS);
    let set_presence = req.query("set_presence").map(str::to_owned).or_else(|| r.set_presence.clone());
    let presence = match set_presence.as_deref().unwrap_or("online") {
        "offline" => None,
        s @ ("online" | "unavailable") => Some(s.to_owned()),
        _ => return Err(err!(InvalidParam, "set_presence must be online, offline or unavailable")),
    };
    // Presence is no part of a sliding sync response (no extension carries it), so its
    // write runs alongside the sync rather than before it; a wake-up it causes is at worst
    // one spurious recomputation.
    let presence = async {
        match presence {
            Some(s) => crate::service::sync::presence::set_by_sync(ctx, me.user_id.as_str(), &s).await,
            None => Ok(()),
        }
    };
    let ((), resp) = futures_util::future::try_join(presence, sync(ctx, me, &r, &ext, pos.as_deref(), timeout)).await?;
    Ok(resp)
}

async fn sync(ctx: &Ctx, me: &Authed, r: &SlidingRequest, ext: &ExtensionsRequest, pos: Option<&str>, timeout: u64) -> Result<Response> {
    // A new connection never waits: it needs neither a stored state nor the wake-up
    // counter, so it skips the `UserSync` call that reads them.
    let Some(given) = pos else {
        let out = sliding::compute(ctx, me, r, ext, None).await?;
        return answer(ctx, me, &r.conn_id, true, None, out).await;
    };
    let (prev, mut seen) = sliding::load(ctx, me, &r.conn_id, given).await?;
    let deadline = now_ms() + timeout;
    for _ in 0..20 {
        let out = sliding::compute(ctx, me, r, ext, Some(&prev)).await?;
        let now = now_ms();
        if out.has_updates || now >= deadline {
            return answer(ctx, me, &r.conn_id, false, pos, out).await;
        }
        match wakeups::wait(&ctx.env, me.user_id.as_str(), &seen, deadline - now).await? {
            Some(next) => seen = next,
            // Timed out with nothing new: the same pos back.
            None => return answer(ctx, me, &r.conn_id, false, pos, out).await,
        }
    }
    let out = sliding::compute(ctx, me, r, ext, Some(&prev)).await?;
    answer(ctx, me, &r.conn_id, false, pos, out).await
}

/// Stores the connection's new state when the response holds something (or starts the
/// connection) and answers with its `pos`; otherwise answers with the `pos` given.
async fn answer(ctx: &Ctx, me: &Authed, conn_id: &str, fresh: bool, pos: Option<&str>, out: sliding::Outcome) -> Result<Response> {
    let mut response = out.response;
    response.pos = match pos {
        Some(p) if !out.has_updates && !fresh => p.to_owned(),
        _ => sliding::save(ctx, me, conn_id, fresh, &out.next).await?,
    };
    Ok(Response::ok(serde_json::to_value(response)?))
}
