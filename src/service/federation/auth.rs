//! Inbound request authentication (spec: server-server-api, "Request Authentication").

use ruma::OwnedServerName;
use serde_json::Value;

use super::keys::server_keys;
use crate::core::federation::keys::{usable, Purpose};
use crate::core::federation::xmatrix::{parse_all, screen, verify_request, Refusal};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Request;

/// Verifies the request's `X-Matrix` authorization (origin, destination, key, signature over
/// method, URI as sent, origin, destination and body) and returns the origin. Called by the
/// router for every `Server` row before the handler runs. Several credentials may be sent;
/// the first that verifies wins. 401 `M_UNAUTHORIZED` for anything that does not verify, 403
/// `M_FORBIDDEN` for an origin our allow/deny lists refuse.
pub async fn authenticate(ctx: &Ctx, req: &Request) -> Result<OwnedServerName> {
    let ours = ctx.server_name();
    let creds = req.header("authorization").map(parse_all).unwrap_or_default();
    let creds = screen(creds, ours, |o| ctx.config.federation_transport.domains.permits(o)).map_err(|r| match r {
        Refusal::Unauthorized(m) => err!(Unauthorized, "{m}"),
        Refusal::Forbidden(m) => err!(Forbidden, "{m}"),
    })?;
    let content: Option<Value> = if req.body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice(&req.body).map_err(|_| err!(Unauthorized, "X-Matrix authorization failed: the body is not JSON"))?)
    };
    let uri = req.uri();
    let mut why = String::new();
    for x in creds {
        let now = now_ms();
        let keys = server_keys(ctx, &x.origin, std::slice::from_ref(&x.key), Purpose::Now(now)).await?;
        let Some(key) = keys.iter().find(|k| k.key_id == x.key && usable(k, Purpose::Now(now))) else {
            why = format!("unknown or expired key {} of {}", x.key, x.origin);
            continue;
        };
        match verify_request(&x, &key.key, req.method.as_str(), &uri, ours, content.as_ref()) {
            Ok(()) => return Ok(x.origin),
            Err(e) => why = e,
        }
    }
    Err(err!(Unauthorized, "X-Matrix authorization failed: {why}"))
}
