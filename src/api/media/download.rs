//! Downloads, authenticated (MSC3916) and the deprecated unauthenticated form.

use crate::api::auth::Authed;
use crate::api::media::{load, Access, Served};
use crate::core::media::{content_disposition, content_key, normalise_content_type, parse_range, serving_headers, ByteRange};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::store::media;

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`
/// Spec: authed-content-repo.yaml `getContentAuthed` / `getContentOverrideNameAuthed`.
/// Streamed from R2 with `Content-Disposition` (`inline` only for the spec's inline-safe
/// types), `X-Content-Type-Options: nosniff` and a `sandbox` CSP.
pub async fn download_route(ctx: &Ctx, req: &Request, _me: &Authed, server: &str, media_id: &str, filename: Option<&str>) -> Result<Response> {
    let served = load(ctx, req, server, media_id, Access::Authenticated).await?;
    serve(ctx, req, served, filename).await
}

/// # `GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]`
/// Deprecated, unauthenticated; frozen unless `LEGACY_MEDIA=serve` (see
/// [`legacy_allowed`]; checked before any wait for pending media).
pub async fn legacy_download_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str, filename: Option<&str>) -> Result<Response> {
    let served = load(ctx, req, server, media_id, Access::Legacy).await?;
    serve(ctx, req, served, filename).await
}

/// Streams the content from R2. A single `Range` is honoured (206 with `Content-Range`, or
/// 416), so players can seek in large media without fetching all of it.
async fn serve(ctx: &Ctx, req: &Request, served: Served, filename: Option<&str>) -> Result<Response> {
    // Stored types are normalised at upload; normalise again so old rows are safe too.
    let content_type = normalise_content_type(served.media.content_type.as_deref());
    let name = filename.or(served.media.filename.as_deref());
    let disposition = content_disposition(&content_type, name);
    let size = served.media.size.unwrap_or(0.0) as u64;
    let range = match parse_range(req.header("range"), size) {
        ByteRange::Full => None,
        ByteRange::Partial { start, end } => Some((start, end)),
        ByteRange::Unsatisfiable => {
            let mut h = serving_headers(&content_type, disposition, Some(0));
            h.push(("Content-Range".into(), format!("bytes */{size}")));
            return Ok(Response::bytes(416, h, Vec::new()));
        }
    };
    let (stream, _) = media::open(&ctx.media()?, &content_key(&served.sha256), range)
        .await?
        .ok_or_else(|| Error::internal(format!("R2 object missing for media {}", served.media.media_id)))?;
    let (status, len) = match range {
        Some((start, end)) => (206, end - start + 1),
        None => (200, size),
    };
    let mut headers = serving_headers(&content_type, disposition, Some(len));
    headers.push(("Accept-Ranges".into(), "bytes".into()));
    if let Some((start, end)) = range {
        headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{size}")));
    }
    let mut resp = Response::bytes(status, headers, Vec::new());
    resp.stream = Some(stream);
    Ok(resp)
}
