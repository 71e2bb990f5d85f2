//! Publishing the server's signing key, and answering key queries as a notary.

use ruma::ServerName;
use serde_json::{json, Value};

use crate::core::federation::keys::{parse_query_criteria, OWN_KEY_VALIDITY_MS};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::federation::keys::notary_documents;

/// Most servers one `POST /_matrix/key/v2/query` may ask about (each may cost a fetch).
const MAX_QUERY_SERVERS: usize = 20;

/// # `GET /_matrix/key/v2/server`
/// Spec: server-server-api, "Publishing Keys": the server's keys, self-signed, with
/// `valid_until_ts`. The deprecated `/server/{keyId}` form gets the same document.
pub async fn server_keys_route(ctx: &Ctx, _req: &Request, _key_id: Option<&str>) -> Result<Response> {
    let doc = ctx.config.signing_key.key_document(ctx.server_name(), now_ms() + OWN_KEY_VALIDITY_MS);
    Ok(Response::ok(doc))
}

/// # `POST /_matrix/key/v2/query`
/// Spec: server-server-api, "Querying Keys Through Another Server": for each server named,
/// its key document (ours, or the one we cached or fetch now), countersigned by us. Servers
/// whose keys cannot be had are left out; no servers, an empty list.
pub async fn query_keys_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let criteria = parse_query_criteria(&req.json_value()?, now_ms()).map_err(|e| err!(BadJson, "{e}"))?;
    if criteria.len() > MAX_QUERY_SERVERS {
        return Err(err!(InvalidParam, "At most {MAX_QUERY_SERVERS} servers per query"));
    }
    let mut out: Vec<Value> = Vec::new();
    for (server, min_valid) in criteria {
        let Ok(server) = ServerName::parse(&server) else { continue };
        out.extend(notary_documents(ctx, &server, min_valid).await?);
    }
    Ok(Response::ok(json!({ "server_keys": out })))
}

/// # `GET /_matrix/key/v2/query/{serverName}`
/// Spec: as `POST /_matrix/key/v2/query`, for one server; `minimum_valid_until_ts` defaults
/// to now.
pub async fn query_server_keys_route(ctx: &Ctx, req: &Request, server_name: &str) -> Result<Response> {
    let server = ServerName::parse(server_name).map_err(|_| err!(InvalidParam, "Invalid server name"))?;
    let min_valid = match req.query("minimum_valid_until_ts") {
        Some(v) => v.parse::<u64>().map_err(|_| err!(InvalidParam, "minimum_valid_until_ts must be an integer"))?,
        None => now_ms(),
    };
    Ok(Response::ok(json!({ "server_keys": notary_documents(ctx, &server, min_valid).await? })))
}
