//! The Worker's fetch entry point: converts the runtime's request into [`crate::http::Request`],
//! hands it to [`crate::api::handle`], and converts the answer back.

use worker::{event, Env, Headers, ResponseBody};

use crate::api;
use crate::core::media::declared_length_exceeds;
use crate::ctx::Ctx;
use crate::err;
use crate::http::{parse_query, BodyStream, Method, Request, Response};
use crate::router::streams_body;

#[event(fetch)]
pub async fn fetch(req: worker::Request, env: Env, wctx: worker::Context) -> worker::Result<worker::Response> {
    let resp = match Ctx::new(env, Some(wctx)) {
        Ok(ctx) => match read_request(req, ctx.config.max_json_body_bytes).await {
            Ok(r) => api::handle(&ctx, r).await,
            Err(resp) => resp,
        },
        Err(e) => Response::from_error(&e),
    };
    to_worker(resp.with_cors())
}

/// Reads method, path, query, headers and body. Bodies over `max_body` are refused with 413
/// before they are read when `Content-Length` says so, and after otherwise.
async fn read_request(mut req: worker::Request, max_body: usize) -> Result<Request, Response> {
    let url = req.url().map_err(|_| Response::from_error(&err!(Unrecognized, "Bad URL")))?;
    let method = Method::parse(req.method().as_ref());
    let headers: Vec<(String, String)> = req.headers().entries().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let too_large = || Response::from_error(&err!(TooLarge, "Request body too large"));
    // Media uploads are streamed to the handler, which enforces its own limit
    // (MAX_UPLOAD_BYTES) on the bytes received (store::media::store_content).
    let streamed = streams_body(method, url.path());
    let declared = headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.as_str());
    if !streamed && declared.is_some_and(|v| declared_length_exceeds(v, max_body as u64)) {
        return Err(too_large());
    }
    let (body, body_stream) = match method {
        _ if streamed => (Vec::new(), req.inner().body().map(BodyStream)),
        Method::Get | Method::Options => (Vec::new(), None),
        _ => (req.bytes().await.map_err(|_| Response::from_error(&err!(BadJson, "Could not read body")))?, None),
    };
    if body.len() > max_body {
        return Err(too_large());
    }
    let client_ip = headers.iter().find(|(k, _)| k == "cf-connecting-ip").map(|(_, v)| v.clone());
    Ok(Request {
        method,
        path: url.path().to_owned(),
        query: parse_query(url.query().unwrap_or("")),
        raw_query: url.query().map(str::to_owned),
        headers,
        body,
        client_ip,
        body_stream,
    })
}

fn to_worker(resp: Response) -> worker::Result<worker::Response> {
    let headers = Headers::new();
    for (k, v) in &resp.headers {
        headers.append(k, v)?;
    }
    let body = match resp.stream {
        // Media downloads: the R2 object's stream goes straight to the client.
        Some(BodyStream(s)) => ResponseBody::Stream(s),
        None => ResponseBody::Body(resp.body),
    };
    Ok(worker::Response::from_body(body)?.with_status(resp.status).with_headers(headers))
}

/// The Cron Trigger (`[triggers] crons` in wrangler.toml): the scheduled clean-up
/// ([`crate::service::cleanup`]), one JSON log line per run.
#[event(scheduled)]
pub async fn scheduled(event: worker::ScheduledEvent, env: Env, _sctx: worker::ScheduleContext) {
    let line = match Ctx::new(env, None) {
        Ok(ctx) => {
            let report = crate::service::cleanup::run(&ctx).await;
            serde_json::json!({ "event": "cleanup", "cron": event.cron(), "report": report })
        }
        Err(e) => serde_json::json!({ "event": "cleanup", "cron": event.cron(), "error": e.to_string() }),
    };
    worker::console_log!("{line}");
}
