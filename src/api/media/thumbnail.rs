//! Thumbnails (spec: "Thumbnails"; authed-content-repo.yaml `getContentThumbnailAuthed`).
//! Local ones are generated and cached by [`crate::service::media::local_thumbnail`]; remote
//! ones are asked of the media's server and cached ([`crate::service::media::remote`]).

use super::remote_answer;
use crate::api::auth::Authed;
use crate::core::media::{disposition, serving_headers};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::media::{load, local_thumbnail, remote, thumbnail_params, Access, Body, Thumb};

/// # `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
/// `crop` and `scale` for PNG, JPEG, GIF (first frame) and WebP. A request not smaller than
/// the image gets the original ("servers should return the original content"). `animated`
/// is accepted; thumbnails are never animated, which the spec allows.
pub async fn thumbnail_route(ctx: &Ctx, req: &Request, _me: &Authed, server: &str, media_id: &str) -> Result<Response> {
    thumbnail(ctx, req, server, media_id, Access::Authenticated).await
}

/// # `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}`
/// Deprecated, unauthenticated; frozen unless `LEGACY_MEDIA=serve`.
pub async fn legacy_thumbnail_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str) -> Result<Response> {
    thumbnail(ctx, req, server, media_id, Access::Legacy).await
}

async fn thumbnail(ctx: &Ctx, req: &Request, server: &str, media_id: &str, access: Access) -> Result<Response> {
    let params = thumbnail_params(req)?;
    if server == ctx.server_name() {
        let served = load(ctx, req, server, media_id, access).await?;
        return Ok(thumb_response(local_thumbnail(ctx, &served, params).await?));
    }
    remote_answer(remote::thumbnail(ctx, server, media_id, params, access).await.map(thumb_response))
}

/// A thumbnail is always `inline` with a file name (spec v1.12+).
fn thumb_response(t: Thumb) -> Response {
    let ext = match t.content_type.as_str() {
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => "png",
    };
    let headers = serving_headers(&t.content_type, disposition("inline", Some(&format!("thumbnail.{ext}"))), Some(t.len));
    match t.body {
        Body::Bytes(b) => Response::bytes(200, headers, b),
        Body::Stream(s) => {
            let mut resp = Response::bytes(200, headers, Vec::new());
            resp.stream = Some(s);
            resp
        }
    }
}
