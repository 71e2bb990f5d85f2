//! Serving media (spec v1.19: client-server-api, "Content repository"; server-server-api,
//! "Content Repository"): finding local media ([`load`]), local thumbnails
//! ([`local_thumbnail`], shared by the client and federation endpoints), the
//! `multipart/mixed` answer of the federation endpoints ([`framed`]), and other servers'
//! media fetched over federation and cached ([`remote`]). Storage is [`crate::store::media`]
//! (R2 and the `media` table) and [`crate::store::remote_media`]; the pure rules are in
//! [`crate::core::media`], [`crate::core::thumbnail`] and [`crate::core::multipart`].

pub mod remote;

use std::time::Duration;

use futures_util::StreamExt;

use crate::core::config::LegacyMedia;
use crate::core::media::{content_key, thumbnail_key, valid_media_id};
use crate::core::thumbnail::{self, Method, ThumbError};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::http::{BodyStream, Request};
use crate::store::media::{self, Media};

/// Longest we wait for created-but-not-uploaded media (`timeout_ms`, default 20 s).
const MAX_WAIT_MS: u64 = 20_000;

/// Largest width or height a client may ask for; larger requests get the original anyway
/// (we never decode anything bigger than [`thumbnail::MAX_SIDE`]).
const MAX_REQUEST_SIDE: u32 = thumbnail::MAX_SIDE;

/// Uploaded, unquarantined local media with its content hash.
pub struct Served {
    pub media: Media,
    pub sha256: String,
}

/// Which endpoint asks: the authenticated ones (client v1 and federation), or the deprecated
/// unauthenticated ones (which only serve what [`legacy_allowed`] allows).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Authenticated,
    Legacy,
}

/// Finds local media to serve (`server` must be ours: remote media is [`remote`]'s).
/// Quarantined media is never served (404). Media that was created but not uploaded is
/// waited for up to `timeout_ms`, then 504 `M_NOT_YET_UPLOADED`. For [`Access::Legacy`] the
/// freeze is checked first, on the row alone: media the legacy endpoints may not serve is
/// 404 at once, like unknown media, whether or not it has been uploaded (no wait, nothing
/// that tells it exists).
pub async fn load(ctx: &Ctx, req: &Request, server: &str, media_id: &str, access: Access) -> Result<Served> {
    if server != ctx.server_name() || !valid_media_id(media_id) {
        return Err(err!(NotFound, "Media not found"));
    }
    let timeout = req.query("timeout_ms").and_then(|t| t.parse::<u64>().ok()).unwrap_or(MAX_WAIT_MS).min(MAX_WAIT_MS);
    let start = now_ms();
    loop {
        let Some(m) = media::get(&ctx.db, media_id).await? else {
            return Err(err!(NotFound, "Media not found"));
        };
        if m.quarantined != 0 {
            return Err(err!(NotFound, "Media not found"));
        }
        if access == Access::Legacy {
            legacy_allowed(ctx, m.created_ts as u64)?;
        }
        if let Some(sha256) = m.sha256.clone() {
            return Ok(Served { media: m, sha256 });
        }
        if m.unused_expires_ts.is_some_and(|t| (t as u64) <= now_ms()) {
            return Err(err!(NotFound, "Media not found"));
        }
        if now_ms().saturating_sub(start) >= timeout {
            return Err(err!(NotYetUploaded, "Content has not yet been uploaded"));
        }
        worker::Delay::from(Duration::from_millis(500)).await;
    }
}

/// The deprecated unauthenticated endpoints: with `LEGACY_MEDIA=freeze` (the default) only
/// media created (remote media: cached) before `LEGACY_MEDIA_FREEZE_TS` is served there,
/// everything else is 404 `M_NOT_FOUND` (spec: "Client behaviour", the v1.11 freeze).
pub fn legacy_allowed(ctx: &Ctx, created_ts: u64) -> Result<()> {
    match ctx.config.media.legacy {
        LegacyMedia::Serve => Ok(()),
        LegacyMedia::Freeze { freeze_ts } if created_ts < freeze_ts => Ok(()),
        // The same answer as for unknown media: nothing tells the media exists.
        LegacyMedia::Freeze { .. } => Err(err!(NotFound, "Media not found")),
    }
}

/// `width`, `height` and `method` of a thumbnail request (spec: "Thumbnails"): positive
/// sizes (capped at [`MAX_REQUEST_SIDE`]), `crop` or `scale`.
pub fn thumbnail_params(req: &Request) -> Result<(u32, u32, Method)> {
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

/// Content ready to send: a stream (from R2) or bytes in memory.
pub enum Body {
    Stream(BodyStream),
    Bytes(Vec<u8>),
}

/// A thumbnail (or the original, when it is not larger than asked) to send.
pub struct Thumb {
    pub content_type: String,
    pub len: u64,
    pub body: Body,
}

/// A thumbnail of local media: from the R2 cache (`thumb/<sha256>/<w>x<h>-<method>`: keyed by
/// the request, so a hit needs no decoding; by content hash, so identical uploads share
/// thumbnails), else generated by [`crate::core::thumbnail`] and cached. `crop` and `scale`
/// for PNG, JPEG, GIF (first frame) and WebP; a request not smaller than the image gets the
/// original ("servers should return the original content"); never animated.
pub async fn local_thumbnail(ctx: &Ctx, served: &Served, (w, h, method): (u32, u32, Method)) -> Result<Thumb> {
    let content_type = crate::core::media::normalise_content_type(served.media.content_type.as_deref());
    let Some(format) = thumbnail::format_for(&content_type) else {
        return Err(err!(Unknown, "Cannot generate thumbnails for the requested content"));
    };
    let bucket = ctx.media()?;
    let key = thumbnail_key(&served.sha256, w, h, method.as_str());
    if let Some((stream, size, ct)) = media::open_with_type(&bucket, &key).await? {
        let ct = ct.filter(|c| thumbnail::format_for(c).is_some()).unwrap_or_else(|| "image/png".into());
        return Ok(Thumb { content_type: ct, len: size, body: Body::Stream(stream) });
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
        let len = data.len() as u64;
        return Ok(Thumb { content_type: thumbnail::content_type_of(format).to_owned(), len, body: Body::Bytes(data) });
    };
    let t = thumbnail::generate(&data, format, target, method).map_err(|e| match e {
        ThumbError::TooLarge => err!(TooLarge, "Content is too large to thumbnail"),
        ThumbError::Unsupported(_) => unsupported(),
    })?;
    drop(data);
    media::put_bytes(&bucket, &key, t.bytes.clone(), t.content_type).await?;
    let len = t.bytes.len() as u64;
    Ok(Thumb { content_type: t.content_type.to_owned(), len, body: Body::Bytes(t.bytes) })
}

/// `head`, then `body` (`len` bytes), then `tail`, as one stream of known length (so the
/// answer carries a `Content-Length`): the federation media answer around the R2 stream.
pub fn framed(head: Vec<u8>, body: Body, len: u64, tail: Vec<u8>) -> Result<BodyStream> {
    let total = head.len() as u64 + len + tail.len() as u64;
    let middle: std::pin::Pin<Box<dyn futures_util::Stream<Item = worker::Result<Vec<u8>>>>> = match body {
        Body::Stream(s) => Box::pin(worker::ByteStream::from(s.0)),
        Body::Bytes(b) => Box::pin(futures_util::stream::iter(std::iter::once(Ok(b)))),
    };
    let chunks = futures_util::stream::iter(std::iter::once(Ok(head))).chain(middle).chain(futures_util::stream::iter(std::iter::once(Ok(tail))));
    let fixed: worker::worker_sys::FixedLengthStream = worker::FixedLengthStream::wrap(chunks, total).into();
    Ok(BodyStream(fixed.readable()))
}
