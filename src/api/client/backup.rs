//! Server-side key backups (spec: client-server-api, "Server-side key backups" in
//! `modules/end_to_end_encryption.md`; the endpoints are in `key_backup.yaml`).
//!
//! Backups are per user: a user only ever sees and changes their own. Versions are `1`, `2`,
//! ... per user and the current one is the highest not deleted; keys are only written to the
//! current version. Where the spec is silent the answers follow Synapse: a version string
//! this server could not have issued is `404 M_NOT_FOUND`, an upload to a version that exists
//! but is not current is `403 M_WRONG_ROOM_KEYS_VERSION`, and to a version that does not
//! exist (or was deleted) `404`.

use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::core::backup as rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{ErrorKind, Result};
use crate::http::{Request, Response};
use crate::store::backup::{self as store, PutOutcome, Scope, VersionInfo};

fn version_json(v: &VersionInfo) -> Value {
    json!({
        "algorithm": v.algorithm,
        "auth_data": v.auth_data,
        "count": v.count,
        "etag": v.etag.to_string(),
        "version": v.version.to_string(),
    })
}

fn unknown_version() -> crate::Error {
    err!(NotFound, "Unknown backup version")
}

/// The required `?version=` of the `/room_keys/keys` endpoints.
fn version_query(req: &Request) -> Result<i64> {
    let v = req.query("version").ok_or_else(|| err!(MissingParam, "Missing version query parameter"))?;
    rules::parse_version(v)
}

/// The keys a path addresses: all, a room's, or one session's. Room and session IDs are
/// opaque to the server: only their shape and length are checked.
fn scope<'a>(room_id: Option<&'a str>, session_id: Option<&'a str>) -> Result<Scope<'a>> {
    if room_id.is_some_and(|r| !rules::valid_room_id(r)) {
        return Err(err!(InvalidParam, "Invalid room ID"));
    }
    if session_id.is_some_and(|s| !rules::valid_session_id(s)) {
        return Err(err!(InvalidParam, "Invalid session ID"));
    }
    Ok(match (room_id, session_id) {
        (Some(r), Some(s)) => Scope::Session(r, s),
        (Some(r), None) => Scope::Room(r),
        _ => Scope::All,
    })
}

/// # `POST /_matrix/client/v3/room_keys/version`
/// Creates a backup version; it becomes the current one.
pub async fn create_version_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = rules::parse_version_body(&req.json_value()?)?;
    let version = store::create_version(&ctx.db, me.user_id.as_str(), &body.algorithm, &body.auth_data).await?;
    Ok(Response::ok(json!({ "version": version.to_string() })))
}

/// # `GET /_matrix/client/v3/room_keys/version`
/// The current version: the latest not deleted.
pub async fn current_version_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let info = store::get_version(&ctx.db, me.user_id.as_str(), None).await?.ok_or_else(|| err!(NotFound, "No current backup version"))?;
    Ok(Response::ok(version_json(&info)))
}

/// # `GET /_matrix/client/v3/room_keys/version/{version}`
pub async fn get_version_route(ctx: &Ctx, _req: &Request, me: &Authed, version: &str) -> Result<Response> {
    let v = rules::parse_version(version)?;
    let info = store::get_version(&ctx.db, me.user_id.as_str(), Some(v)).await?.ok_or_else(unknown_version)?;
    Ok(Response::ok(version_json(&info)))
}

/// # `PUT /_matrix/client/v3/room_keys/version/{version}`
/// Only `auth_data` changes: `algorithm` must be the version's, and a `version` in the body
/// must be the one in the path (`400 M_INVALID_PARAM` otherwise).
pub async fn update_version_route(ctx: &Ctx, req: &Request, me: &Authed, version: &str) -> Result<Response> {
    let raw = req.json_value()?;
    if let Some(body_version) = raw.get("version") {
        if body_version.as_str() != Some(version) {
            return Err(err!(InvalidParam, "Version in body does not match"));
        }
    }
    let body = rules::parse_version_body(&raw)?;
    let v = rules::parse_version(version)?;
    let user = me.user_id.as_str();
    let info = store::get_version(&ctx.db, user, Some(v)).await?.ok_or_else(unknown_version)?;
    if info.algorithm != body.algorithm {
        return Err(err!(InvalidParam, "Algorithm does not match"));
    }
    // The algorithm never changes, so `false` here means the version was deleted meanwhile.
    if !store::update_auth_data(&ctx.db, user, v, &body.algorithm, &body.auth_data).await? {
        return Err(unknown_version());
    }
    Ok(Response::ok(json!({})))
}

/// # `DELETE /_matrix/client/v3/room_keys/version/{version}`
/// Deletes the version and all its keys; deleting it again succeeds.
pub async fn delete_version_route(ctx: &Ctx, _req: &Request, me: &Authed, version: &str) -> Result<Response> {
    let v = rules::parse_version(version)?;
    if !store::delete_version(&ctx.db, me.user_id.as_str(), v).await? {
        return Err(unknown_version());
    }
    Ok(Response::ok(json!({})))
}

/// Stores keys in the current version; `{etag, count}` afterwards. The body is the one the
/// path's level takes: `{"rooms": …}`, `{"sessions": …}` or one `KeyBackupData`.
async fn put_keys(ctx: &Ctx, req: &Request, me: &Authed, room_id: Option<&str>, session_id: Option<&str>) -> Result<Response> {
    let scope = scope(room_id, session_id)?;
    let version = version_query(req)?;
    let body = req.json_value()?;
    let keys = match scope {
        Scope::All => rules::parse_keys_body(&body)?,
        Scope::Room(r) => rules::parse_room_body(r, &body)?,
        Scope::Session(r, s) => vec![rules::parse_key_data(r, s, &body)?],
    };
    match store::put_keys(&ctx.db, me.user_id.as_str(), version, &keys).await? {
        PutOutcome::Stored { etag, count } => Ok(Response::ok(json!({ "etag": etag.to_string(), "count": count }))),
        PutOutcome::NotCurrent { current } => {
            Err(err!(ErrorKind::WrongRoomKeysVersion { current_version: current.to_string() }, "Wrong backup version."))
        }
        PutOutcome::NotFound => Err(unknown_version()),
    }
}

/// # `PUT /_matrix/client/v3/room_keys/keys`
pub async fn put_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    put_keys(ctx, req, me, None, None).await
}

/// # `PUT /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn put_room_keys_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    put_keys(ctx, req, me, Some(room_id), None).await
}

/// # `PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn put_session_key_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, session_id: &str) -> Result<Response> {
    put_keys(ctx, req, me, Some(room_id), Some(session_id)).await
}

/// Reads keys of an existing version (current or not) at the path's level.
async fn get_keys(ctx: &Ctx, req: &Request, me: &Authed, room_id: Option<&str>, session_id: Option<&str>) -> Result<Vec<(String, String, Value)>> {
    let scope = scope(room_id, session_id)?;
    let version = version_query(req)?;
    let rows = store::get_keys(&ctx.db, me.user_id.as_str(), version, scope).await?.ok_or_else(unknown_version)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let key = rules::key_json(&r.meta(), r.session_data());
            (r.room_id, r.session_id, key)
        })
        .collect())
}

/// # `GET /_matrix/client/v3/room_keys/keys`
/// No keys: `{"rooms": {}}`.
pub async fn get_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    Ok(Response::ok(rules::group_keys(get_keys(ctx, req, me, None, None).await?)))
}

/// # `GET /_matrix/client/v3/room_keys/keys/{roomId}`
/// No keys for the room: `{"sessions": {}}`.
pub async fn get_room_keys_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let sessions: serde_json::Map<String, Value> = get_keys(ctx, req, me, Some(room_id), None).await?.into_iter().map(|(_, s, k)| (s, k)).collect();
    Ok(Response::ok(json!({ "sessions": sessions })))
}

/// # `GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
/// A session without a key: `404 M_NOT_FOUND`.
pub async fn get_session_key_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, session_id: &str) -> Result<Response> {
    let key = get_keys(ctx, req, me, Some(room_id), Some(session_id)).await?.into_iter().next();
    key.map(|(_, _, k)| Response::ok(k)).ok_or_else(|| err!(NotFound, "Key not found"))
}

/// Deletes keys of an existing version (current or not) at the path's level; `{etag, count}`.
async fn delete_keys(ctx: &Ctx, req: &Request, me: &Authed, room_id: Option<&str>, session_id: Option<&str>) -> Result<Response> {
    let scope = scope(room_id, session_id)?;
    let version = version_query(req)?;
    let (etag, count) = store::delete_keys(&ctx.db, me.user_id.as_str(), version, scope).await?.ok_or_else(unknown_version)?;
    Ok(Response::ok(json!({ "etag": etag.to_string(), "count": count })))
}

/// # `DELETE /_matrix/client/v3/room_keys/keys`
pub async fn delete_keys_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    delete_keys(ctx, req, me, None, None).await
}

/// # `DELETE /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn delete_room_keys_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    delete_keys(ctx, req, me, Some(room_id), None).await
}

/// # `DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn delete_session_key_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str, session_id: &str) -> Result<Response> {
    delete_keys(ctx, req, me, Some(room_id), Some(session_id)).await
}
