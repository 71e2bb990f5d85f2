//! Queries to other servers on a client's behalf (spec: server-server-api, "Querying for
//! information"): profiles of their users, their room directories.

use ruma::UserId;
use serde_json::Value;

use crate::core::federation::uri_component;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Method;
use crate::service::federation::client;

/// A remote user's profile (or one field of it). Any failure of the remote server is a
/// `404 M_NOT_FOUND` for the client, as Synapse answers.
pub async fn profile(ctx: &Ctx, user: &UserId, field: Option<&str>) -> Result<Value> {
    let mut path = format!("/_matrix/federation/v1/query/profile?user_id={}", uri_component(user.as_str()));
    if let Some(f) = field {
        path.push_str(&format!("&field={}", uri_component(f)));
    }
    match client::request(ctx, user.server_name(), Method::Get, &path, None).await {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(err!(NotFound, "Profile not found")),
    }
}

/// A page of another server's room directory (`POST /_matrix/federation/v1/publicRooms`,
/// spec: server-server-api "Public Room Directory"). An unreachable or refusing server is a
/// `404` for the client.
pub async fn public_rooms(ctx: &Ctx, server: &ruma::ServerName, query: &Value) -> Result<Value> {
    match client::request(ctx, server, Method::Post, "/_matrix/federation/v1/publicRooms", Some(query)).await {
        Ok(v) if v.get("chunk").is_some_and(Value::is_array) => Ok(v),
        _ => Err(err!(NotFound, "The room directory of {server} could not be fetched")),
    }
}
