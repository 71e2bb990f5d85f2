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
use crate::core::sliding::ext_standin::ExtensionsRequest;
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
    match set_presence.as_deref().unwrap_or("online") {
        "offline" => {}
        s @ ("online" | "unavailable") => crate::service::sync::presence::set_by_sync(ctx, me.user_id.as_str(), s).await?,
        _ => return Err(err!(InvalidParam, "set_presence must be online, offline or unavailable")),
    }

    let (prev, mut seen) = sliding::load(ctx, me, &r.conn_id, pos.as_deref()).await?;
    let deadline = now_ms() + timeout;
    for _ in 0..20 {
        let out = sliding::compute(ctx, me, &r, &ext, prev.as_ref()).await?;
        let now = now_ms();
        let waits = prev.is_some() && !out.has_updates && now < deadline;
        if !waits {
            return answer(ctx, me, &r.conn_id, prev.is_none(), pos.as_deref(), out).await;
        }
        match wakeups::wait(&ctx.env, me.user_id.as_str(), &seen, deadline - now).await? {
            Some(next) => seen = next,
            // Timed out with nothing new: the same pos back.
            None => return answer(ctx, me, &r.conn_id, false, pos.as_deref(), out).await,
        }
    }
    let out = sliding::compute(ctx, me, &r, &ext, prev.as_ref()).await?;
    answer(ctx, me, &r.conn_id, prev.is_none(), pos.as_deref(), out).await
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
