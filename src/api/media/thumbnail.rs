//! Thumbnails (spec: "Thumbnails"; authed-content-repo.yaml `getContentThumbnailAuthed`).
//! Generated in the Worker by [`crate::core::thumbnail`] and cached in R2 under
//! `thumb/<sha256>/<width>x<height>-<method>` (keyed by the request, so a cache hit needs no
//! decoding; keyed by content hash, so identical uploads share thumbnails).

use crate::api::auth::Authed;
use crate::api::media::{load, Access, Served};
use crate::core::media::{content_key, disposition, normalise_content_type, serving_headers, thumbnail_key};
use crate::core::thumbnail::{self, Method, ThumbError};
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::store::media;

/// Largest width or height a client may ask for; larger requests get the original anyway
/// (we never decode anything bigger than [`thumbnail::MAX_SIDE`]).
const MAX_REQUEST_SIDE: u32 = thumbnail::MAX_SIDE;

/// # `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
/// `crop` and `scale` for PNG, JPEG, GIF (first frame) and WebP. A request not smaller than
/// the image gets the original ("servers should return the original content"). `animated`
/// is accepted; thumbnails are never animated, which the spec allows.
pub async fn thumbnail_route(ctx: &Ctx, req: &Request, _me: &Authed, server: &str, media_id: &str) -> Result<Response> {
    let params = params(req)?;
    let served = load(ctx, req, server, media_id, Access::Authenticated).await?;
    thumbnail(ctx, served, params).await
}

/// # `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}`
/// Deprecated, unauthenticated; frozen unless `LEGACY_MEDIA=serve`.
pub async fn legacy_thumbnail_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str) -> Result<Response> {
    let params = params(req)?;
    let served = load(ctx, req, server, media_id, Access::Legacy).await?;
    thumbnail(ctx, served, params).await
}

fn params(req: &Request) -> Result<(u32, u32, Method)> {
    let dim = |k: &str| -> Result<u32> {
        let v = req.query(k).ok_or_else(|| err!(MissingParam, "Missing {k}"))?;
        match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n.min(MAX_REQUEST_SIDE)),
            _ => Err(err!(InvalidParam, "{k} must be a positive integer")),
        }
    };
    let method = Method::parse(req.query("method")).ok_or_else(|| err!(InvalidParam, "method must be crop or scale"))?;
    Ok((dim("width")?, dim("height")?, method))
}

/// Headers of a thumbnail: always `inline` with a file name (spec v1.12+).
fn thumb_headers(content_type: &str, len: u64) -> Vec<(String, String)> {
    let ext = match content_type {
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "png",
    };
    serving_headers(content_type, disposition("inline", Some(&format!("thumbnail.{ext}"))), Some(len))
}

fn thumb_response(content_type: &str, bytes: Vec<u8>) -> Response {
    let len = bytes.len() as u64;
    Response::bytes(200, thumb_headers(content_type, len), bytes)
}

async fn thumbnail(ctx: &Ctx, served: Served, (w, h, method): (u32, u32, Method)) -> Result<Response> {
    let content_type = normalise_content_type(served.media.content_type.as_deref());
    let Some(format) = thumbnail::format_for(&content_type) else {
        return Err(err!(Unknown, "Cannot generate thumbnails for the requested content"));
    };
    let bucket = ctx.media()?;
    let key = thumbnail_key(&served.sha256, w, h, method.as_str());
    if let Some((stream, size, ct)) = media::open_with_type(&bucket, &key).await? {
        let ct = ct.filter(|c| thumbnail::format_for(c).is_some()).unwrap_or_else(|| "image/png".into());
        let mut resp = Response::bytes(200, thumb_headers(&ct, size), Vec::new());
        resp.stream = Some(stream);
        return Ok(resp);
    }
    let size = served.media.size.unwrap_or(0.0) as u64;
    if size > ctx.config.media.max_thumbnail_source_bytes {
        return Err(err!(TooLarge, "Content is too large to thumbnail"));
    }
    let data = media::read(&bucket, &content_key(&served.sha256))
        .await?
        .ok_or_else(|| Error::internal(format!("R2 object missing for media {}", served.media.media_id)))?;
    let unsupported = || err!(Unknown, "Cannot generate thumbnails for the requested content");
    let dims = thumbnail::dimensions(&data, format).map_err(|_| unsupported())?;
    thumbnail::check_bounds(dims).map_err(|_| err!(TooLarge, "Content is too large to thumbnail"))?;
    let Some(target) = thumbnail::target_size(dims, (w, h), method) else {
        // Not larger than the request: the original (an inline-safe image type).
        return Ok(thumb_response(thumbnail::content_type_of(format), data));
    };
    let t = thumbnail::generate(&data, format, target, method).map_err(|e| match e {
        ThumbError::TooLarge => err!(TooLarge, "Content is too large to thumbnail"),
        ThumbError::Unsupported(_) => unsupported(),
    })?;
    drop(data);
    media::put_bytes(&bucket, &key, t.bytes.clone(), t.content_type).await?;
    Ok(thumb_response(t.content_type, t.bytes))
}
