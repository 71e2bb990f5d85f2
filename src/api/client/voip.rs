//! VoIP (spec: client-server-api, "Voice over IP"): TURN credentials for calls. The rules
//! and both credential sources are in `core::turn`; this file authenticates and, for
//! Cloudflare's TURN service, makes the one outbound call.

use std::cell::RefCell;

use serde_json::{json, Value};
use worker::{Fetch, Headers, Method, RequestInit};

use crate::api::auth::Authed;
use crate::core::time::now_ms;
use crate::core::turn::{self, TurnConfig};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

thread_local! {
    // Cloudflare's credentials are not tied to a user: one set serves every request on this
    // isolate until half its lifetime has passed, so calls cost a subrequest now and then,
    // not one each.
    static CLOUDFLARE_CACHE: RefCell<Option<(u64, Value)>> = const { RefCell::new(None) };
}

/// # `GET /_matrix/client/v3/voip/turnServer`
/// `{}` when no TURN source is configured (as Synapse), or when Cloudflare's API fails (the
/// failure is logged; the call then goes without a relay rather than not at all).
pub async fn turn_server_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let body = match &ctx.config.turn {
        TurnConfig::None => json!({}),
        TurnConfig::SharedSecret { uris, secret, lifetime_secs } => {
            turn::shared_secret_credentials(uris, secret, *lifetime_secs, me.user_id.as_str(), now_ms())
        }
        TurnConfig::Cloudflare { key_id, api_token, api_url, lifetime_secs } => {
            cloudflare(key_id, api_token, api_url, *lifetime_secs).await.unwrap_or_else(|e| {
                worker::console_error!("TURN credentials from Cloudflare: {e}");
                json!({})
            })
        }
    };
    Ok(Response::ok(body))
}

async fn cloudflare(key_id: &str, api_token: &str, api_url: &str, lifetime_secs: u64) -> std::result::Result<Value, String> {
    let now = now_ms();
    if let Some(v) = CLOUDFLARE_CACHE.with(|c| c.borrow().as_ref().filter(|(until, _)| *until > now).map(|(_, v)| v.clone())) {
        return Ok(v);
    }
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {api_token}")).map_err(|e| e.to_string())?;
    headers.set("Content-Type", "application/json").map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(turn::cloudflare_request(lifetime_secs).to_string().into()));
    let url = format!("{api_url}/turn/keys/{key_id}/credentials/generate-ice-servers");
    let request = worker::Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    crate::service::meter::outbound();
    let mut resp = Fetch::Request(request).send().await.map_err(|e| e.to_string())?;
    if !(200..300).contains(&resp.status_code()) {
        return Err(format!("status {}", resp.status_code()));
    }
    let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
    let creds = turn::from_cloudflare(&answer, lifetime_secs).ok_or("no TURN credentials in the answer")?;
    let until = now + lifetime_secs * 1000 / 2;
    CLOUDFLARE_CACHE.with(|c| *c.borrow_mut() = Some((until, creds.clone())));
    Ok(creds)
}
