//! The provenance record of the running build (issue 18, "A verified deploy").

use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::core::provenance;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// # `GET /_stratus/admin/v1/provenance`
/// Server admins only (the route's `[Admin]` kind). `commit`/`dirty` are compiled in;
/// `build` is `build/provenance.json` of the deployed build as `make deploy` passed it
/// (`STRATUS_PROVENANCE`; `null` when deployed another way), whose hashes
/// `scripts/verify-deploy.sh` compares with a rebuild of `commit`.
pub async fn provenance_route(ctx: &Ctx, _req: &Request, _admin: &Authed) -> Result<Response> {
    let build = ctx.env.var("STRATUS_PROVENANCE").ok().and_then(|v| serde_json::from_str::<Value>(&v.to_string()).ok()).unwrap_or(Value::Null);
    Ok(Response::ok(json!({
        "server": { "name": "Stratus", "version": provenance::server_version() },
        "commit": provenance::commit(),
        "dirty": provenance::dirty(),
        "build": build,
    })))
}
