//! URL previews (spec: authed-content-repo.yaml `getUrlPreviewAuthed`).
//!
//! Safety: only `http(s)`, never `localhost` or an IP literal outside the public unicast
//! ranges ([`crate::core::preview::check_url`]); redirects are followed by hand (at most
//! [`MAX_REDIRECTS`]) and every target is checked again; at most [`MAX_PAGE_BYTES`] of a page
//! and [`MAX_IMAGE_BYTES`] of its `og:image` are read, within [`FETCH_TIMEOUT_MS`] in all.
//! The Worker cannot resolve DNS itself, so a public name that resolves to a private address
//! is not caught here; Cloudflare's egress does not reach private networks, which covers that
//! in production. Results are cached in KV for an hour.

use std::net::IpAddr;

use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use url::Url;
use worker::{AbortController, Fetch, Headers, RequestInit, RequestRedirect};

use crate::api::auth::Authed;
use crate::core::crypto::{hex, sha256};
use crate::core::media::{new_media_id, normalise_content_type};
use crate::core::preview::{check_parsed, is_html, parse_opengraph, redirect_target, MAX_PAGE_BYTES, MAX_REDIRECTS};
use crate::core::thumbnail;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::deadline::before;
use crate::store::media::{self, Body};

/// Most bytes of a preview image stored.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Time for all fetches of one preview.
pub const FETCH_TIMEOUT_MS: u64 = 10_000;
/// How long a preview is cached.
const CACHE_TTL_SECS: u64 = 3600;

/// # `GET /_matrix/client/v1/media/preview_url`
/// Also the deprecated `/_matrix/media/v3/preview_url`. Refused URLs: 403 `M_FORBIDDEN`;
/// unparsable: 400 `M_INVALID_PARAM`; unreachable pages: 502-like `M_UNKNOWN` (400).
pub async fn preview_url_route(ctx: &Ctx, req: &Request, who: &Authed) -> Result<Response> {
    let cfg = &ctx.config.media;
    if !cfg.url_previews {
        return Err(err!(Forbidden, "URL previews are disabled on this server"));
    }
    let raw = req.query("url").ok_or_else(|| err!(MissingParam, "Missing url"))?;
    let url = Url::parse(raw).map_err(|_| err!(InvalidParam, "Invalid URL"))?;
    check_parsed(&url, &cfg.url_preview_ip_allowlist).map_err(|m| err!(Forbidden, "{m}"))?;

    let kv = ctx.kv()?;
    let cache_key = format!("preview:{}", hex(&sha256(url.as_str().as_bytes())));
    if let Ok(Some(cached)) = kv.get(&cache_key).json::<Value>().await {
        return Ok(Response::ok(cached));
    }

    let deadline = now_ms() + FETCH_TIMEOUT_MS;
    let allow = &cfg.url_preview_ip_allowlist;
    let page = fetch(url, allow, MAX_PAGE_BYTES, deadline).await?;
    let mut og = Map::new();
    if is_html(page.content_type.as_deref()) {
        let html = String::from_utf8_lossy(&page.body);
        og = parse_opengraph(&html, &page.url);
        if let Some(Value::String(image)) = og.get("og:image").cloned() {
            og.remove("og:image");
            if let Ok(img_url) = Url::parse(&image) {
                if let Ok(img) = fetch(img_url, allow, MAX_IMAGE_BYTES, deadline).await {
                    if let Some(fields) = store_image(ctx, who.user_id.as_str(), img).await? {
                        og.extend(fields);
                    }
                }
            }
        }
    } else if page.content_type.as_deref().is_some_and(|c| c.starts_with("image/")) {
        if let Some(fields) = store_image(ctx, who.user_id.as_str(), page).await? {
            og.extend(fields);
        }
    }
    let body = Value::Object(og);
    if let Ok(put) = kv.put(&cache_key, body.to_string()) {
        let _ = put.expiration_ttl(CACHE_TTL_SECS).execute().await;
    }
    Ok(Response::ok(body))
}

struct Fetched {
    url: Url,
    content_type: Option<String>,
    body: Vec<u8>,
    /// Whether the body was cut at the byte limit.
    truncated: bool,
}

/// GETs `url`, following at most [`MAX_REDIRECTS`] redirects by hand (each target checked),
/// reading at most `max_bytes` of the body, all before `deadline`.
async fn fetch(mut url: Url, allow: &[IpAddr], max_bytes: usize, deadline: u64) -> Result<Fetched> {
    let fail = |m: &str| err!(Unknown, "Could not preview the URL: {m}");
    for _ in 0..=MAX_REDIRECTS {
        check_parsed(&url, allow).map_err(|m| err!(Forbidden, "{m}"))?;
        let headers = Headers::new();
        let _ = headers.set("User-Agent", "Stratus Matrix homeserver (URL preview)");
        let _ = headers.set("Accept", "text/html, application/xhtml+xml, image/*;q=0.8, */*;q=0.1");
        let mut init = RequestInit::new();
        init.with_redirect(RequestRedirect::Manual).with_headers(headers);
        let request = worker::Request::new_with_init(url.as_str(), &init).map_err(|_| fail("bad request"))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        crate::service::meter::outbound();
        let sent = before(deadline, Fetch::Request(request).send_with_signal(&signal)).await;
        let mut resp = match sent {
            None => {
                controller.abort();
                return Err(fail("timed out"));
            }
            Some(Err(_)) => return Err(fail("unreachable")),
            Some(Ok(r)) => r,
        };
        let status = resp.status_code();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = resp.headers().get("location").ok().flatten().ok_or_else(|| fail("redirect without location"))?;
            url = redirect_target(&url, &location).ok_or_else(|| fail("bad redirect"))?;
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(fail(&format!("status {status}")));
        }
        let content_type = resp.headers().get("content-type").ok().flatten();
        let mut stream = resp.stream().map_err(|_| fail("no body"))?;
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match before(deadline, stream.next()).await {
                None => {
                    controller.abort();
                    return Err(fail("timed out"));
                }
                Some(None) => break,
                Some(Some(Err(_))) => return Err(fail("read error")),
                Some(Some(Ok(chunk))) => {
                    let room = max_bytes.saturating_sub(body.len());
                    if chunk.len() > room {
                        body.extend(chunk.iter().take(room));
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        if truncated {
            controller.abort();
        }
        return Ok(Fetched { url, content_type, body, truncated });
    }
    Err(fail("too many redirects"))
}

/// Stores a fetched preview image as media of the requesting user: `og:image` (mxc),
/// `og:image:type`, `matrix:image:size` and, for formats we read, width and height.
async fn store_image(ctx: &Ctx, user_id: &str, img: Fetched) -> Result<Option<Map<String, Value>>> {
    let content_type = normalise_content_type(img.content_type.as_deref());
    if img.truncated || !content_type.starts_with("image/") || img.body.is_empty() {
        return Ok(None);
    }
    let dims = thumbnail::format_for(&content_type).and_then(|f| thumbnail::dimensions(&img.body, f).ok());
    let size = img.body.len();
    let stored = media::store_content(&ctx.media()?, Body::Bytes(img.body), MAX_IMAGE_BYTES as u64).await?;
    let media_id = new_media_id();
    media::insert_uploaded(&ctx.db, &media_id, user_id, &stored, &content_type, None).await?;
    let mut m = Map::new();
    m.insert("og:image".into(), json!(format!("mxc://{}/{media_id}", ctx.server_name())));
    m.insert("og:image:type".into(), json!(content_type));
    m.insert("matrix:image:size".into(), json!(size));
    if let Some((w, h)) = dims {
        m.insert("og:image:width".into(), json!(w));
        m.insert("og:image:height".into(), json!(h));
    }
    Ok(Some(m))
}
