//! Other servers' media (spec: server-server-api, "Content Repository"): fetched from the
//! media's server with `GET /_matrix/federation/v1/media/download/{mediaId}` (or
//! `/thumbnail/{mediaId}`), signed with X-Matrix; the `multipart/mixed` answer is parsed by
//! [`crate::core::multipart`] and a `Location` part followed with a plain `GET`. Originals are
//! cached in R2 under their content hash like local media, with a `remote_media` row
//! (server, media ID → hash, type, file name, size); thumbnails under
//! [`remote_thumbnail_key`], per size and method. Two concurrent requests for one uncached item
//! may both fetch it; both store the same content-addressed object and the first row stays.
//!
//! A remote that answers 404 `M_UNRECOGNIZED` (no federation media endpoints, before Matrix
//! v1.11) is asked the deprecated `/_matrix/media/v3` endpoint with `allow_remote=false`, as the
//! spec says, only with `REMOTE_MEDIA_LEGACY_FALLBACK=on`.
//!
//! Size: an answer over `REMOTE_MEDIA_MAX_BYTES` (default `MAX_UPLOAD_BYTES`) is refused with
//! `M_TOO_LARGE` (502 to the client) and nothing is cached.

use ruma::{OwnedServerName, ServerName};

use super::{legacy_allowed, Access, Body, Thumb};
use crate::core::config::LegacyMedia;
use crate::core::federation::uri_component;
use crate::core::media::{normalise_content_type, remote_thumbnail_key, sanitise_filename, valid_media_id};
use crate::core::multipart::{self, MediaAnswer};
use crate::core::thumbnail::{self, Method};
use crate::ctx::Ctx;
use crate::err;
use crate::error::{log_error, Result};
use crate::service::federation::client;
use crate::store::media;
use crate::store::remote_media;

/// Room for the multipart framing and metadata around the media bytes.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// Cached remote media, ready to stream from R2.
#[derive(Debug)]
pub struct Cached {
    pub sha256: String,
    pub content_type: String,
    pub filename: Option<String>,
    pub size: u64,
}

impl From<remote_media::RemoteMedia> for Cached {
    fn from(r: remote_media::RemoteMedia) -> Self {
        Cached { sha256: r.sha256, content_type: r.content_type, filename: r.filename, size: r.size as u64 }
    }
}

fn not_found() -> crate::error::Error {
    err!(NotFound, "Media not found")
}

/// A remote server name and media ID that may be asked for (else 404, like unknown media).
fn target(server: &str, media_id: &str) -> Result<OwnedServerName> {
    let server = ServerName::parse(server).map_err(|_| not_found())?;
    if !valid_media_id(media_id) {
        return Err(not_found());
    }
    Ok(server)
}

/// What the unauthenticated endpoints may do with remote media. As Synapse with
/// `enable_authenticated_media` (its default since 1.120): under `LEGACY_MEDIA=freeze`, only
/// media cached before the freeze is served and nothing is fetched for them;
/// `LEGACY_MEDIA=serve` serves and fetches.
fn may_fetch_for(ctx: &Ctx, access: Access) -> bool {
    access == Access::Authenticated || ctx.config.media.legacy == LegacyMedia::Serve
}

/// `mxc://{server}/{media_id}` from the cache, else fetched from `server` and cached.
pub async fn download(ctx: &Ctx, server: &str, media_id: &str, access: Access) -> Result<Cached> {
    let server = target(server, media_id)?;
    if let Some(row) = remote_media::get(&ctx.db, server.as_str(), media_id).await? {
        if row.quarantined != 0 {
            return Err(not_found());
        }
        if access == Access::Legacy {
            legacy_allowed(ctx, row.cached_ts as u64)?;
        }
        return Ok(row.into());
    }
    if !may_fetch_for(ctx, access) {
        return Err(not_found());
    }
    let id = uri_component(media_id);
    let fetched = fetch(
        ctx,
        &server,
        &format!("/_matrix/federation/v1/media/download/{id}"),
        &format!("/_matrix/media/v3/download/{}/{id}?allow_remote=false", uri_component(server.as_str())),
    )
    .await?;
    let content_type = normalise_content_type(fetched.content_type.as_deref());
    let filename = fetched.disposition.as_deref().and_then(multipart::disposition_filename).and_then(|f| sanitise_filename(&f));
    let limit = ctx.config.media.remote_max_bytes;
    let stored = media::store_content(&ctx.media()?, media::Body::Bytes(fetched.bytes), limit).await?;
    remote_media::insert(&ctx.db, server.as_str(), media_id, &stored.sha256, &content_type, filename.as_deref(), stored.size).await?;
    Ok(Cached { sha256: stored.sha256, content_type, filename, size: stored.size })
}

/// A thumbnail of `mxc://{server}/{media_id}` as `server` makes it, cached per size and
/// method. Animated thumbnails are never asked for (we never serve them: the spec allows it).
pub async fn thumbnail(ctx: &Ctx, server: &str, media_id: &str, (w, h, method): (u32, u32, Method), access: Access) -> Result<Thumb> {
    let server = target(server, media_id)?;
    let row = remote_media::get(&ctx.db, server.as_str(), media_id).await?;
    if row.as_ref().is_some_and(|r| r.quarantined != 0) {
        return Err(not_found());
    }
    if access == Access::Legacy {
        // As for downloads: only what was cached before the freeze (or everything with
        // LEGACY_MEDIA=serve).
        match &row {
            Some(r) => legacy_allowed(ctx, r.cached_ts as u64)?,
            None if !may_fetch_for(ctx, access) => return Err(not_found()),
            None => {}
        }
    }
    let bucket = ctx.media()?;
    let key = remote_thumbnail_key(server.as_str(), media_id, w, h, method.as_str());
    if let Some((stream, size, ct)) = media::open_with_type(&bucket, &key).await? {
        let ct = ct.filter(|c| thumbnail::format_for(c).is_some()).unwrap_or_else(|| "image/png".into());
        return Ok(Thumb { content_type: ct, len: size, body: Body::Stream(stream) });
    }
    if access == Access::Legacy && !may_fetch_for(ctx, access) {
        return Err(not_found());
    }
    let id = uri_component(media_id);
    let query = format!("width={w}&height={h}&method={}", method.as_str());
    let fetched = fetch(
        ctx,
        &server,
        &format!("/_matrix/federation/v1/media/thumbnail/{id}?{query}&animated=false"),
        &format!("/_matrix/media/v3/thumbnail/{}/{id}?{query}&allow_remote=false", uri_component(server.as_str())),
    )
    .await?;
    // Served inline: only the image types we would make ourselves.
    let content_type = normalise_content_type(fetched.content_type.as_deref());
    if thumbnail::format_for(&content_type).is_none() {
        return Err(err!(Unknown, "{server} did not send an image thumbnail"));
    }
    media::put_bytes(&bucket, &key, fetched.bytes.clone(), &content_type).await?;
    let len = fetched.bytes.len() as u64;
    Ok(Thumb { content_type, len, body: Body::Bytes(fetched.bytes) })
}

/// What a remote sent for one media request.
struct Fetched {
    bytes: Vec<u8>,
    content_type: Option<String>,
    disposition: Option<String>,
}

/// Asks `server` for `fed_path` (signed), following a `Location` part, and falling back to the
/// unauthenticated `legacy_path` when allowed and the remote does not know the federation
/// endpoint. Remote errors become ours (404 stays 404; the remote's message is not relayed).
async fn fetch(ctx: &Ctx, server: &ServerName, fed_path: &str, legacy_path: &str) -> Result<Fetched> {
    let limit = ctx.config.media.remote_max_bytes;
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let r = client::get_raw(ctx, server, fed_path, true, limit_usize.saturating_add(ENVELOPE_BYTES)).await?;
    let too_large = || err!(TooLarge, "The remote content is larger than this server accepts ({limit} bytes)");
    match (r.status, r.errcode().as_deref()) {
        (200, _) => {}
        (404, Some("M_UNRECOGNIZED")) if ctx.config.media.remote_legacy_fallback => {
            let r = client::get_raw(ctx, server, legacy_path, false, limit_usize).await?;
            return match (r.status, r.errcode().as_deref()) {
                (200, _) => Ok(Fetched { bytes: r.body, content_type: r.content_type, disposition: None }),
                (_, Some("M_TOO_LARGE")) => Err(too_large()),
                (404, _) => Err(not_found()),
                (s, _) => Err(err!(Unknown, "{server} could not serve the media (HTTP {s})")),
            };
        }
        (_, Some("M_TOO_LARGE")) => return Err(too_large()),
        (404, _) => return Err(not_found()),
        (s, _) => return Err(err!(Unknown, "{server} could not serve the media (HTTP {s})")),
    }
    let content_type = r.content_type.unwrap_or_default();
    let mut body = r.body;
    let (range, part_type, disposition, location) = match multipart::parse_media(&content_type, &body) {
        Ok(MediaAnswer::Content { content_type, disposition, bytes, .. }) => {
            // The part as a range of the body, so the bytes are cut out of it, not copied.
            let start = (bytes.as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
            (Some((start, bytes.len())), content_type, disposition, None)
        }
        Ok(MediaAnswer::Redirect { location, .. }) => (None, None, None, Some(location)),
        Err(e) => {
            log_error(&format!("federation media from {server}{fed_path}: {e}"));
            return Err(err!(Unknown, "{server} sent an unreadable media answer"));
        }
    };
    if let Some(location) = location {
        // Not cached as a URL (the spec: it may expire); its content is cached like any other.
        let r = client::get_url(ctx, &location, limit_usize).await?;
        if r.status != 200 {
            return Err(err!(Unknown, "{server} redirected to media that could not be fetched (HTTP {})", r.status));
        }
        return Ok(Fetched { bytes: r.body, content_type: r.content_type, disposition: None });
    }
    let (start, len) = range.unwrap_or((0, 0));
    if len as u64 > limit {
        return Err(too_large());
    }
    body.truncate(start.saturating_add(len));
    body.drain(..start.min(body.len()));
    Ok(Fetched { bytes: body, content_type: part_type, disposition })
}
