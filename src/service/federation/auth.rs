//! Inbound request authentication (spec: server-server-api, "Request Authentication").

use ruma::OwnedServerName;

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Request;

/// Verifies the request's `X-Matrix` authorization (origin, destination, key, signature over
/// method, URI, origin, destination and body) and returns the origin. Called by the router
/// for every `Server` row before the handler runs.
pub async fn authenticate(_ctx: &Ctx, _req: &Request) -> Result<OwnedServerName> {
    Err(err!(Unauthorized, "Federation request authentication is not available yet"))
}
