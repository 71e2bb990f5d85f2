//! Downloads, authenticated (MSC3916) and the deprecated unauthenticated form. Media of other
//! servers is fetched over federation and cached ([`crate::service::media::remote`]).

use super::remote_answer;
use crate::api::auth::Authed;
use crate::core::media::{content_disposition, content_key, normalise_content_type, parse_range, serving_headers, ByteRange};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::service::media::{load, remote, Access};
use crate::store::media;

/// # `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`
/// Spec: authed-content-repo.yaml `getContentAuthed` / `getContentOverrideNameAuthed`.
/// Streamed from R2 with `Content-Disposition` (`inline` only for the spec's inline-safe
/// types), `X-Content-Type-Options: nosniff` and a `sandbox` CSP. Remote media comes from the
/// cache or from its server (502 `M_TOO_LARGE` over `REMOTE_MEDIA_MAX_BYTES`).
pub async fn download_route(ctx: &Ctx, req: &Request, _me: &Authed, server: &str, media_id: &str, filename: Option<&str>) -> Result<Response> {
    download(ctx, req, server, media_id, filename, Access::Authenticated).await
}

/// # `GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]`
/// Deprecated, unauthenticated; frozen unless `LEGACY_MEDIA=serve` (see
/// [`crate::service::media::legacy_allowed`]; checked before any wait for pending media).
/// Remote media as Synapse with `enable_authenticated_media`: frozen too (not fetched).
pub async fn legacy_download_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str, filename: Option<&str>) -> Result<Response> {
    download(ctx, req, server, media_id, filename, Access::Legacy).await
}

async fn download(ctx: &Ctx, req: &Request, server: &str, media_id: &str, filename: Option<&str>, access: Access) -> Result<Response> {
    if server == ctx.server_name() {
        let served = load(ctx, req, server, media_id, access).await?;
        let content_type = normalise_content_type(served.media.content_type.as_deref());
        let size = served.media.size.unwrap_or(0.0) as u64;
        let what = Stored { sha256: &served.sha256, content_type, name: filename.or(served.media.filename.as_deref()), size };
        return serve(ctx, req, what).await;
    }
    remote_answer(
        async {
            let cached = remote::download(ctx, server, media_id, access).await?;
            let what = Stored {
                sha256: &cached.sha256,
                content_type: cached.content_type.clone(),
                name: filename.or(cached.filename.as_deref()),
                size: cached.size,
            };
            serve(ctx, req, what).await
        }
        .await,
    )
}

/// Content in R2 to serve.
struct Stored<'a> {
    sha256: &'a str,
    content_type: String,
    name: Option<&'a str>,
    size: u64,
}

/// Streams the content from R2. A single `Range` is honoured (206 with `Content-Range`, or
/// 416), so players can seek in large media without fetching all of it.
async fn serve(ctx: &Ctx, req: &Request, what: Stored<'_>) -> Result<Response> {
    // Stored types are normalised when stored; normalise again so old rows are safe too.
    let content_type = normalise_content_type(Some(&what.content_type));
    let disposition = content_disposition(&content_type, what.name);
    let size = what.size;
    let range = match parse_range(req.header("range"), size) {
        ByteRange::Full => None,
        ByteRange::Partial { start, end } => Some((start, end)),
        ByteRange::Unsatisfiable => {
            let mut h = serving_headers(&content_type, disposition, Some(0));
            h.push(("Content-Range".into(), format!("bytes */{size}")));
            return Ok(Response::bytes(416, h, Vec::new()));
        }
    };
    let (stream, _) = media::open(&ctx.media()?, &content_key(what.sha256), range)
        .await?
        .ok_or_else(|| Error::internal(format!("R2 object missing for content {}", what.sha256)))?;
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
