//! The Worker's fetch entry point: converts the runtime's request into [`crate::http::Request`],
//! hands it to [`crate::api::handle`], and converts the answer back.

use worker::{event, Env, Headers, ResponseBody};

use crate::api;
use crate::core::media::declared_length_exceeds;
use crate::core::meter::{user_hash, RequestLog};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::http::{parse_query, BodyStream, Method, Request, Response};
use crate::router::{route_name, streams_body};

#[event(fetch)]
pub async fn fetch(req: worker::Request, env: Env, wctx: worker::Context) -> worker::Result<worker::Response> {
    let started = now_ms();
    let method = Method::parse(req.method().as_ref());
    let path = req.path();
    let request_id = req.headers().get("cf-ray").ok().flatten().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let resp = match Ctx::new(env, Some(wctx)) {
        Ok(ctx) => {
            let resp = match read_request(req, ctx.config.max_json_body_bytes).await {
                Ok(r) => api::handle(&ctx, r).await,
                Err(resp) => resp,
            };
            observe(&ctx, method, &path, &request_id, started, resp)
        }
        Err(e) => Response::from_error(&e),
    };
    to_worker(resp.with_cors())
}

/// The request's log line (issue #18: one JSON line per request, for `wrangler tail` and
/// Workers Logs; no path, body, token or user ID in it) and, with `DEV_COST_HEADER=on`, its
/// billable units as `X-Stratus-Cost` and `X-Stratus-D1-Round-Trips` (issue #17).
fn observe(ctx: &Ctx, method: Method, path: &str, request_id: &str, started: u64, mut resp: Response) -> Response {
    let mut units = ctx.meter.units();
    // A handler whose round trips were partly made for it elsewhere (a send: the `Room`
    // object's batch) names the whole count in its header; the log line says the same.
    let d1_round_trips = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("X-Stratus-D1-Round-Trips"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| ctx.db.round_trips());
    if ctx.config.dev_cost_header {
        units.sub = ctx.meter.outbound_since_start();
    }
    let line = RequestLog {
        msg: "request",
        request_id,
        method: method.as_str(),
        route: route_name(method, path),
        status: resp.status,
        duration_ms: now_ms().saturating_sub(started),
        d1_round_trips,
        user: ctx.meter.user().map(|u| user_hash(&u)),
        cost: &units,
    }
    .to_line();
    worker::console_log!("{line}");
    if ctx.config.dev_cost_header {
        resp.headers.push(("X-Stratus-Cost".into(), units.header()));
        if !resp.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("X-Stratus-D1-Round-Trips")) {
            resp.headers.push(("X-Stratus-D1-Round-Trips".into(), d1_round_trips.to_string()));
        }
    }
    resp
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
/// ([`crate::service::cleanup`]) and up to 10 s of unfinished admin room deletions (so a
/// deletion nobody polls still ends), one JSON log line per run.
#[event(scheduled)]
pub async fn scheduled(event: worker::ScheduledEvent, env: Env, _sctx: worker::ScheduleContext) {
    let line = match Ctx::new(env, None) {
        Ok(ctx) => {
            let report = crate::service::cleanup::run(&ctx).await;
            let deletes = crate::service::admin::rooms::run_unfinished(&ctx, 10_000).await.err().map(|e| e.to_string());
            serde_json::json!({ "event": "cleanup", "cron": event.cron(), "report": report, "room_deletes_error": deletes })
        }
        Err(e) => serde_json::json!({ "event": "cleanup", "cron": event.cron(), "error": e.to_string() }),
    };
    worker::console_log!("{line}");
}
