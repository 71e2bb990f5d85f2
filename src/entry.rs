//! The Worker's fetch entry point: converts the runtime's request into [`crate::http::Request`],
//! hands it to [`crate::api::handle`], and converts the answer back.

use worker::{event, Env, Headers};

use crate::api;
use crate::ctx::Ctx;
use crate::err;
use crate::http::{parse_query, Method, Request, Response};

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
    if let Some(len) = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<usize>().ok()) {
        if len > max_body {
            return Err(too_large());
        }
    }
    let body = match method {
        Method::Get | Method::Options => Vec::new(),
        _ => req.bytes().await.map_err(|_| Response::from_error(&err!(BadJson, "Could not read body")))?,
    };
    if body.len() > max_body {
        return Err(too_large());
    }
    let client_ip = headers.iter().find(|(k, _)| k == "cf-connecting-ip").map(|(_, v)| v.clone());
    Ok(Request {
        method,
        path: url.path().to_owned(),
        query: parse_query(url.query().unwrap_or("")),
        headers,
        body,
        client_ip,
    })
}

fn to_worker(resp: Response) -> worker::Result<worker::Response> {
    let headers = Headers::new();
    for (k, v) in &resp.headers {
        headers.append(k, v)?;
    }
    Ok(worker::Response::from_bytes(resp.body)?.with_status(resp.status).with_headers(headers))
}
