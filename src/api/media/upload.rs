//! Uploads: `POST /upload`, `POST /create` then `PUT /upload/{serverName}/{mediaId}`, and
//! the media configuration.

use serde_json::json;

use crate::api::auth::{self, Authed};
use crate::core::media::{declared_length_exceeds, new_media_id, normalise_content_type, sanitise_filename, valid_media_id};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{ErrorKind, Result};
use crate::http::{Request, Response};
use crate::store::media::{self, Body};

/// The body: the streamed request body when `entry.rs` passed one, else the bytes read.
fn body_of(req: &Request) -> Body {
    match &req.body_stream {
        Some(s) => Body::Stream(s.clone()),
        None => Body::Bytes(req.body.clone()),
    }
}

/// Refuses at once, before any of the body is read, when `Content-Length` already says too
/// much; the real byte count is checked again while streaming.
fn check_declared_length(req: &Request, limit: u64) -> Result<()> {
    if req.header("content-length").is_some_and(|v| declared_length_exceeds(v, limit)) {
        return Err(err!(TooLarge, "Upload is larger than the limit of {limit} bytes"));
    }
    Ok(())
}

/// The `Content-Length` of the request, when it is a plain number.
fn declared_length(req: &Request) -> Option<u64> {
    req.header("content-length").and_then(|v| v.trim().parse::<u64>().ok())
}

/// Content type and file name of an upload (spec: the `Content-Type` header, default
/// `application/octet-stream`; the `filename` query parameter).
fn upload_meta(req: &Request) -> (String, Option<String>) {
    (normalise_content_type(req.header("content-type")), req.query("filename").and_then(sanitise_filename))
}

/// # `POST /_matrix/media/v3/upload`
/// Spec: content-repo.yaml `uploadContent`. The limit (`MAX_UPLOAD_BYTES`) is enforced on the
/// bytes received: 413 `M_TOO_LARGE`.
///
/// The caller's token may come from the isolate's cache unconfirmed: its check runs while the
/// body is read, before anything is stored, and every way out confirms it, so a revoked token
/// only ever gets `M_UNKNOWN_TOKEN` and stores nothing.
pub async fn upload_route(ctx: &Ctx, req: &Request, who: &Authed) -> Result<Response> {
    let out = upload(ctx, req, who).await;
    auth::ensure_confirmed(ctx, who).await?;
    out
}

async fn upload(ctx: &Ctx, req: &Request, who: &Authed) -> Result<Response> {
    let limit = ctx.config.media.max_upload_bytes;
    check_declared_length(req, limit)?;
    let (content_type, filename) = upload_meta(req);
    let user = who.user_id.as_str();
    let rate_limit = crate::service::ratelimit::check(ctx, crate::core::ratelimit::Bucket::MediaCreate, user);
    let bucket = ctx.media()?;
    let media_id = new_media_id();
    match (&req.body_stream, declared_length(req).filter(|n| media::fits_one_part(*n, limit))) {
        (Some(stream), Some(n)) => {
            // A body of one part: the token check, the rate limit and reading and hashing the
            // body (in the runtime, not in wasm) at once; then the row and the R2 put at once.
            let (confirmed, limited, held) = futures_util::join!(auth::ensure_confirmed(ctx, who), rate_limit, media::hold(stream.clone(), n, limit));
            confirmed?;
            limited?;
            let held = held?;
            let row = media::insert_uploaded(&ctx.db, &media_id, user, &held.stored, &content_type, filename.as_deref());
            let (put, row) = futures_util::join!(media::put_held(&bucket, &held), row);
            row?;
            if let Err(e) = put {
                // Nobody knows the media ID yet: the row goes, the upload fails.
                let _ = media::delete_row(&ctx.db, &media_id).await;
                return Err(e);
            }
        }
        _ => {
            let (confirmed, limited) = futures_util::join!(auth::ensure_confirmed(ctx, who), rate_limit);
            confirmed?;
            limited?;
            let stored = media::store_content(&bucket, body_of(req), limit).await?;
            media::insert_uploaded(&ctx.db, &media_id, user, &stored, &content_type, filename.as_deref()).await?;
        }
    }
    Ok(Response::ok(json!({ "content_uri": format!("mxc://{}/{media_id}", ctx.server_name()) })))
}

/// # `POST /_matrix/media/v1/create`
/// Spec: content-repo.yaml `createContent`: a media ID whose content follows within
/// `unused_expires_at`; at most `MAX_PENDING_UPLOADS` pending per user (429 `M_LIMIT_EXCEEDED`).
pub async fn create_route(ctx: &Ctx, _req: &Request, who: &Authed) -> Result<Response> {
    crate::service::ratelimit::check(ctx, crate::core::ratelimit::Bucket::MediaCreate, who.user_id.as_str()).await?;
    let cfg = &ctx.config.media;
    if media::count_pending(&ctx.db, who.user_id.as_str()).await? >= cfg.max_pending_uploads as u64 {
        return Err(err!(ErrorKind::LimitExceeded { retry_after_ms: 60_000 }, "Too many pending uploads"));
    }
    let media_id = new_media_id();
    let expires = now_ms() + cfg.unused_media_lifetime_ms;
    media::insert_pending(&ctx.db, &media_id, who.user_id.as_str(), expires).await?;
    Ok(Response::ok(json!({
        "content_uri": format!("mxc://{}/{media_id}", ctx.server_name()),
        "unused_expires_at": expires,
    })))
}

/// # `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
/// Spec: content-repo.yaml `uploadContentToMXC`: 404 for unknown or expired IDs, 403 for
/// another user's ID, 409 `M_CANNOT_OVERWRITE_MEDIA` once it has content.
pub async fn upload_to_route(ctx: &Ctx, req: &Request, who: &Authed, server: &str, media_id: &str) -> Result<Response> {
    if server != ctx.server_name() || !valid_media_id(media_id) {
        return Err(err!(NotFound, "Unknown media ID"));
    }
    let Some(m) = media::get(&ctx.db, media_id).await? else {
        return Err(err!(NotFound, "Unknown media ID"));
    };
    if m.user_id != who.user_id.as_str() {
        return Err(err!(Forbidden, "This media ID was created by another user"));
    }
    if m.sha256.is_some() {
        return Err(err!(CannotOverwriteMedia, "Media already uploaded"));
    }
    if m.unused_expires_ts.is_some_and(|t| (t as u64) <= now_ms()) {
        return Err(err!(NotFound, "This media ID has expired"));
    }
    let limit = ctx.config.media.max_upload_bytes;
    check_declared_length(req, limit)?;
    let (content_type, filename) = upload_meta(req);
    let stored = media::store_content(&ctx.media()?, body_of(req), limit).await?;
    if !media::complete_pending(&ctx.db, media_id, &stored, &content_type, filename.as_deref()).await? {
        return Err(err!(CannotOverwriteMedia, "Media already uploaded"));
    }
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v1/media/config`
/// Spec: authed-content-repo.yaml `getConfigAuthed` (also the deprecated
/// `/_matrix/media/v3/config`).
pub async fn config_route(ctx: &Ctx, _req: &Request, _me: &Authed) -> Result<Response> {
    Ok(Response::ok(json!({ "m.upload.size": ctx.config.media.max_upload_bytes })))
}
