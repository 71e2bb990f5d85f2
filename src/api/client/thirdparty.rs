//! Third-party networks (spec: client-server-api, "Third-party networks"). Stratus has no
//! application services, so there are no bridged protocols; Element asks at start-up.

use serde_json::json;

use crate::api::auth::authenticate;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// # `GET /_matrix/client/v3/thirdparty/protocols`
/// No bridges: no protocols.
pub async fn protocols_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    authenticate(ctx, req).await?;
    Ok(Response::ok(json!({})))
}
