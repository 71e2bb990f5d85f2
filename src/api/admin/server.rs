//! `server_version`.

use serde_json::json;

use crate::api::auth::Authed;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::server_version;

/// # `GET /_synapse/admin/v1/server_version`
/// `Stratus <version>+<commit>` (`service::admin::server_version`).
pub async fn server_version_route(_ctx: &Ctx, _req: &Request, _me: &Authed) -> Result<Response> {
    Ok(Response::ok(json!({ "server_version": server_version() })))
}
