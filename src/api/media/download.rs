//! Downloads, authenticated (MSC3916) and the deprecated unauthenticated form.

use crate::api::auth::authenticate;
use crate::api::media::{legacy_allowed, load, Served};
use crate::core::media::{content_disposition, content_key, normalise_content_type, serving_headers};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::store::media;

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`
/// Spec: authed-content-repo.yaml `getContentAuthed` / `getContentOverrideNameAuthed`.
/// Streamed from R2 with `Content-Disposition` (`inline` only for the spec's inline-safe
/// types), `X-Content-Type-Options: nosniff` and a `sandbox` CSP.
pub async fn download_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str, filename: Option<&str>) -> Result<Response> {
    authenticate(ctx, req).await?;
    let served = load(ctx, req, server, media_id).await?;
    serve(ctx, served, filename).await
}

/// # `GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]`
/// Deprecated, unauthenticated; frozen unless `LEGACY_MEDIA=serve` (see
/// [`legacy_allowed`]).
pub async fn legacy_download_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str, filename: Option<&str>) -> Result<Response> {
    let served = load(ctx, req, server, media_id).await?;
    legacy_allowed(ctx, &served.media)?;
    serve(ctx, served, filename).await
}

async fn serve(ctx: &Ctx, served: Served, filename: Option<&str>) -> Result<Response> {
    // Stored types are normalised at upload; normalise again so old rows are safe too.
    let content_type = normalise_content_type(served.media.content_type.as_deref());
    let name = filename.or(served.media.filename.as_deref());
    let disposition = content_disposition(&content_type, name);
    let (stream, size) = media::open(&ctx.media()?, &content_key(&served.sha256))
        .await?
        .ok_or_else(|| Error::internal(format!("R2 object missing for media {}", served.media.media_id)))?;
    let mut resp = Response::bytes(200, serving_headers(&content_type, disposition, Some(size)), Vec::new());
    resp.stream = Some(stream);
    Ok(resp)
}
