//! `server_version`.

use serde_json::json;

use crate::api::auth::Authed;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::SERVER_VERSION;

/// # `GET /_synapse/admin/v1/server_version`
/// The version string is `service::admin::SERVER_VERSION` (provenance will add the commit).
pub async fn server_version_route(_ctx: &Ctx, _req: &Request, _me: &Authed) -> Result<Response> {
    Ok(Response::ok(json!({ "server_version": SERVER_VERSION })))
}
