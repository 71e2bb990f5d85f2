//! Third-party networks (spec: client-server-api, "Third-party networks"). Stratus has no
//! application services, so there are no bridged protocols; Element asks at start-up.

use serde_json::json;

use crate::api::auth::Authed;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// # `GET /_matrix/client/v3/thirdparty/protocols`
/// No bridges: no protocols.
pub async fn protocols_route(_ctx: &Ctx, _req: &Request, _me: &Authed) -> Result<Response> {
    Ok(Response::ok(json!({})))
}
