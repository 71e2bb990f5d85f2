//! The implementation's name and version.

use serde_json::json;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// # `GET /_matrix/federation/v1/version`
/// Spec: server-server-api, "Server implementation": name and version of this homeserver;
/// the version carries the commit built (`core::provenance`).
pub async fn version_route(_ctx: &Ctx, _req: &Request) -> Result<Response> {
    Ok(Response::ok(json!({ "server": { "name": "Stratus", "version": crate::core::provenance::server_version() } })))
}
