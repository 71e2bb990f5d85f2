//! Signed requests to other homeservers (spec: server-server-api, "Request Authentication",
//! "Resolving server names").
//!
//! Port 443 goes through `fetch()`; any other port through a TCP socket with TLS
//! ([`super::socket`]), because a deployed Worker's `fetch()` ignores custom ports, and so
//! does a request whose `Host` `fetch()` cannot send (an SRV target on 443)
//! (`FEDERATION_TRANSPORT` forces one path). Every request has a deadline
//! (`FEDERATION_TIMEOUT_MS`) and a response size cap; a remote failure becomes our own
//! `M_UNKNOWN`, never the remote body.

use futures_util::StreamExt;
use ruma::ServerName;
use serde_json::Value;
use worker::{AbortController, Fetch, Headers, RequestInit};

use super::{resolve, socket};
use crate::core::federation::http1;
use crate::core::federation::xmatrix;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{log_error, Result};
use crate::http::Method;
use crate::service::deadline::before;

/// A remote server's answer: its status and JSON body (`Null` when the body was not JSON).
#[derive(Debug)]
pub struct RemoteResponse {
    pub status: u16,
    pub body: Value,
}

impl RemoteResponse {
    /// The remote `errcode`, for callers that react to one (e.g. `M_NOT_FOUND`).
    pub fn errcode(&self) -> Option<&str> {
        self.body.get("errcode").and_then(Value::as_str)
    }
}

/// Sends a signed request to `destination` (`path_and_query` as it goes on the wire) and
/// returns its JSON body. A remote error becomes our own error, never relayed raw.
pub async fn request(ctx: &Ctx, destination: &ServerName, method: Method, path_and_query: &str, body: Option<&Value>) -> Result<Value> {
    request_via(ctx, None, destination, method, path_and_query, body).await
}

/// [`request`], over `kept`'s connection when the socket transport is used (the sending
/// `Destination` object keeps one connection to its server; see [`socket::Kept`]).
pub async fn request_via(
    ctx: &Ctx,
    kept: Option<&socket::Kept>,
    destination: &ServerName,
    method: Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<Value> {
    let r = send_via(ctx, kept, destination, method, path_and_query, body).await?;
    if (200..300).contains(&r.status) {
        return Ok(r.body);
    }
    let code = r.errcode().filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')).unwrap_or("");
    // The refusals a client must tell apart keep their kind (a remote ban is our 403 too);
    // the remote's own message is not passed on.
    Err(match (r.status, code) {
        (403, "M_FORBIDDEN") => err!(Forbidden, "{destination} refused the request"),
        (404, "M_NOT_FOUND") => err!(NotFound, "{destination} does not know it"),
        (400, "M_UNSUPPORTED_ROOM_VERSION" | "M_INCOMPATIBLE_ROOM_VERSION") => {
            err!(UnsupportedRoomVersion, "{destination}: room version not supported")
        }
        _ => err!(Unknown, "{destination} refused the request (HTTP {} {code})", r.status),
    })
}

/// The exchange of [`request_via`]: any HTTP answer with its status (the caller maps it to
/// our error). Transport failures (unreachable, timeout, unparsable) and refusals
/// (ourselves, the allow/deny lists) are errors.
async fn send_via(
    ctx: &Ctx,
    kept: Option<&socket::Kept>,
    destination: &ServerName,
    method: Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<RemoteResponse> {
    let auth = xmatrix::sign_request(&ctx.config.signing_key, ctx.server_name(), destination.as_str(), method.as_str(), path_and_query, body)
        .map_err(|e| err!(BadJson, "Cannot sign the request: {e}"))?;
    let bytes = match body {
        Some(b) => Some(serde_json::to_vec(b)?),
        None => None,
    };
    let fail = |why: &str| {
        log_error(&format!("federation {} {destination}{path_and_query}: {why}", method.as_str()));
        err!(Unknown, "Could not reach {destination}")
    };
    let max = ctx.config.federation_transport.max_response_bytes;
    let r = exchange(ctx, kept, destination, method, path_and_query, Some(&auth), bytes.as_deref(), "application/json", max).await?;
    let r = r.map_err(|why| fail(&why))?;
    let body = if r.body.is_empty() { Value::Null } else { serde_json::from_slice(&r.body).unwrap_or(Value::Null) };
    if (200..300).contains(&r.status) && !body.is_object() && !body.is_array() {
        return Err(fail(&format!("HTTP {} without a JSON body", r.status)));
    }
    Ok(RemoteResponse { status: r.status, body })
}

/// A remote answer that is not JSON (federation media): status, `Content-Type`, raw body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The `errcode` of a JSON error body, if it is one.
    pub fn errcode(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("errcode").and_then(Value::as_str).map(str::to_owned)
    }
}

/// A `GET` of `path_and_query` on `destination` whose answer is returned raw, whatever its
/// status (spec: server-server-api, "Content Repository"). `signed` adds the X-Matrix
/// `Authorization` (the federation media endpoints); unsigned is for the deprecated
/// `/_matrix/media/v3` fallback. A body over `max_bytes` is `M_TOO_LARGE` (the caller
/// answers 502); other transport failures are `M_UNKNOWN`, as for [`send`].
pub async fn get_raw(ctx: &Ctx, destination: &ServerName, path_and_query: &str, signed: bool, max_bytes: usize) -> Result<RawResponse> {
    let auth = if signed {
        Some(
            xmatrix::sign_request(&ctx.config.signing_key, ctx.server_name(), destination.as_str(), "GET", path_and_query, None)
                .map_err(|e| err!(BadJson, "Cannot sign the request: {e}"))?,
        )
    } else {
        None
    };
    let r = exchange(ctx, None, destination, Method::Get, path_and_query, auth.as_deref(), None, "*/*", max_bytes).await?;
    let r = r.map_err(|why| raw_failure(destination.as_str(), path_and_query, &why))?;
    Ok(RawResponse { status: r.status, content_type: r.content_type, body: r.body })
}

/// A plain `GET` of an absolute `http(s)` URL (a federation media answer's `Location`), with
/// the federation deadline and `max_bytes`; redirects are followed by the runtime.
pub async fn get_url(ctx: &Ctx, url: &str, max_bytes: usize) -> Result<RawResponse> {
    let deadline = now_ms() + ctx.config.federation_transport.timeout_ms;
    let r = fetch("GET", url, &[("Accept", "*/*")], Vec::new(), deadline, max_bytes).await.map_err(|why| raw_failure("redirect", url, &why))?;
    Ok(RawResponse { status: r.status, content_type: r.content_type, body: r.body })
}

fn raw_failure(destination: &str, what: &str, why: &str) -> crate::error::Error {
    log_error(&format!("federation GET {destination} {what}: {why}"));
    if why == TOO_LARGE {
        err!(TooLarge, "The remote content is larger than this server accepts")
    } else {
        err!(Unknown, "Could not reach {destination}")
    }
}

/// The failure text of [`fetch`] and the socket path for a body over the cap.
const TOO_LARGE: &str = "response too large";

/// What [`exchange`] got.
struct Exchanged {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// The transport of [`send`] and [`get_raw`]: refuses ourselves and servers the allow/deny
/// lists exclude (outer error), resolves `destination`, and sends over `fetch` or the socket
/// within the federation deadline; the inner error is why the exchange failed.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    ctx: &Ctx,
    kept: Option<&socket::Kept>,
    destination: &ServerName,
    method: Method,
    path_and_query: &str,
    auth: Option<&str>,
    body: Option<&[u8]>,
    accept: &str,
    max: usize,
) -> Result<Result<Exchanged, String>> {
    let cfg = &ctx.config.federation_transport;
    if destination.as_str() == ctx.server_name() {
        return Err(err!(Forbidden, "Refusing to send a federation request to this server itself"));
    }
    if !cfg.domains.permits(destination.as_str()) {
        return Err(err!(Forbidden, "Federation with {destination} is not allowed by this server"));
    }
    let deadline = now_ms() + cfg.timeout_ms;
    let dest = resolve::resolve(ctx, destination, deadline).await?;
    let tls = !cfg.insecure_http;
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    headers.push(("Accept", accept));
    let bytes = body.map(<[u8]>::to_vec).unwrap_or_default();
    if cfg.transport.uses_socket(&dest) {
        let raw = http1::request(method.as_str(), &dest.host_header, path_and_query, &headers, &bytes, kept.is_some());
        let sent = match kept {
            Some(k) => socket::send_kept(k, &dest, tls, &raw, deadline, max).await,
            None => socket::send(&dest, tls, &raw, deadline, max).await,
        };
        Ok(sent.map(|r| Exchanged { status: r.status, content_type: r.header("content-type").map(str::to_owned), body: r.body }))
    } else {
        let url = format!("{}{path_and_query}", dest.base_url(tls));
        Ok(fetch(method.as_str(), &url, &headers, bytes, deadline, max).await.map(|r| Exchanged {
            status: r.status,
            content_type: r.content_type,
            body: r.body,
        }))
    }
}

/// What [`fetch`] got.
pub(crate) struct Fetched {
    pub status: u16,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// A `fetch()` with a deadline and a body cap (redirects followed by the runtime), or why it
/// failed.
pub(crate) async fn fetch(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>, deadline: u64, max: usize) -> Result<Fetched, String> {
    let h = Headers::new();
    for (k, v) in headers {
        h.set(k, v).map_err(|e| format!("header {k}: {e}"))?;
    }
    let mut init = RequestInit::new();
    init.with_method(worker::Method::from(method.to_owned())).with_headers(h);
    if !body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let req = worker::Request::new_with_init(url, &init).map_err(|e| format!("request: {e}"))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    crate::service::meter::outbound();
    let mut resp = match before(deadline, Fetch::Request(req).send_with_signal(&signal)).await {
        None => {
            controller.abort();
            return Err("timed out".into());
        }
        Some(r) => r.map_err(|e| format!("fetch: {e}"))?,
    };
    let status = resp.status_code();
    let cache_control = resp.headers().get("cache-control").ok().flatten();
    let content_type = resp.headers().get("content-type").ok().flatten();
    if let Ok(Some(len)) = resp.headers().get("content-length") {
        if len.parse::<usize>().is_ok_and(|n| n > max) {
            controller.abort();
            return Err("response too large".into());
        }
    }
    let mut out = Vec::new();
    let Ok(mut stream) = resp.stream() else {
        return Ok(Fetched { status, cache_control, content_type, body: out });
    };
    loop {
        match before(deadline, stream.next()).await {
            None => {
                controller.abort();
                return Err("timed out reading".into());
            }
            Some(None) => break,
            Some(Some(Err(e))) => return Err(format!("read: {e}")),
            Some(Some(Ok(chunk))) => {
                if chunk.len() > max.saturating_sub(out.len()) {
                    controller.abort();
                    return Err("response too large".into());
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
    Ok(Fetched { status, cache_control, content_type, body: out })
}
