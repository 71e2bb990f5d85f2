//! Publishing the server's signing key.

use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// How long other servers may cache our key document.
const KEY_VALIDITY_MS: u64 = 24 * 60 * 60 * 1000;

/// # `GET /_matrix/key/v2/server`
/// Spec: server-server-api, "Publishing Keys": the server's keys, self-signed, with
/// `valid_until_ts`. The deprecated `/server/{keyId}` form gets the same document.
pub async fn server_keys_route(ctx: &Ctx, _req: &Request, _key_id: Option<&str>) -> Result<Response> {
    let doc = ctx.config.signing_key.key_document(ctx.server_name(), now_ms() + KEY_VALIDITY_MS);
    Ok(Response::ok(doc))
}
