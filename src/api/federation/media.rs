//! Media for other servers (spec: server-server-api, "Content Repository";
//! ss-api `getContent` and `getContentThumbnail`): our local media as a `multipart/mixed`
//! answer of two parts, the metadata (`{}`) and the bytes (streamed from R2), framed by
//! [`crate::core::multipart::media_envelope`] as Synapse frames and parses it. The router has
//! checked the X-Matrix signature (`[Server]` rows: 401 without it). Unknown, pending past
//! `timeout_ms` or quarantined media: as on the client endpoints (404 `M_NOT_FOUND`).

use ruma::ServerName;

use crate::core::media::{content_disposition, content_key, disposition, normalise_content_type};
use crate::core::multipart::{media_content_type, media_envelope};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::http::{Request, Response};
use crate::service::media::{framed, load, local_thumbnail, thumbnail_params, Access, Body};
use crate::store::media;

/// # `GET /_matrix/federation/v1/media/download/{mediaId}`
pub async fn download_route(ctx: &Ctx, req: &Request, _origin: &ServerName, media_id: &str) -> Result<Response> {
    let served = load(ctx, req, ctx.server_name(), media_id, Access::Authenticated).await?;
    let content_type = normalise_content_type(served.media.content_type.as_deref());
    let disposition = content_disposition(&content_type, served.media.filename.as_deref());
    let (stream, size) = media::open(&ctx.media()?, &content_key(&served.sha256), None)
        .await?
        .ok_or_else(|| Error::internal(format!("R2 object missing for media {}", served.media.media_id)))?;
    multipart_answer(&content_type, &disposition, Body::Stream(stream), size)
}

/// # `GET /_matrix/federation/v1/media/thumbnail/{mediaId}`
/// The same thumbnails local clients get (`width`, `height`, `method`; never animated).
pub async fn thumbnail_route(ctx: &Ctx, req: &Request, _origin: &ServerName, media_id: &str) -> Result<Response> {
    let params = thumbnail_params(req)?;
    let served = load(ctx, req, ctx.server_name(), media_id, Access::Authenticated).await?;
    let t = local_thumbnail(ctx, &served, params).await?;
    let ext = t.content_type.rsplit('/').next().unwrap_or("png").replace("jpeg", "jpg");
    let disposition = disposition("inline", Some(&format!("thumbnail.{ext}")));
    multipart_answer(&t.content_type, &disposition, t.body, t.len)
}

fn multipart_answer(content_type: &str, disposition: &str, body: Body, len: u64) -> Result<Response> {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let (head, tail) = media_envelope(&boundary, content_type, disposition);
    let total = head.len() as u64 + len + tail.len() as u64;
    let stream = framed(head, body, len, tail)?;
    let headers = vec![("Content-Type".to_owned(), media_content_type(&boundary)), ("Content-Length".to_owned(), total.to_string())];
    let mut resp = Response::bytes(200, headers, Vec::new());
    resp.stream = Some(stream);
    Ok(resp)
}
