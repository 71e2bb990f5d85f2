//! Registration tokens (Synapse: docs/usage/administration/admin_api/registration_tokens.md).
//! The same tokens pass `/register`'s `m.login.registration_token` stage
//! (`service::admin::tokens`).

use serde_json::{json, Value};

use super::bool_query;
use crate::api::auth::Authed;
use crate::core::crypto::random_alpha;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::audit;
use crate::store::admin::{self as store, RegToken};

fn token_json(t: &RegToken) -> Value {
    json!({
        "token": t.token,
        "uses_allowed": t.uses_allowed,
        "pending": t.pending,
        "completed": t.completed,
        "expiry_time": t.expiry_time,
    })
}

fn valid_now(t: &RegToken) -> bool {
    t.expiry_time.is_none_or(|e| e as u64 > now_ms()) && t.uses_allowed.is_none_or(|u| t.pending + t.completed < u)
}

/// `uses_allowed`: absent (`None`), null or a non-negative integer.
fn uses_field(body: &Value) -> Result<Option<Option<i64>>> {
    match body.get("uses_allowed") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(Some(n))),
            _ => Err(err!(InvalidParam, "uses_allowed must be a non-negative integer or null")),
        },
    }
}

/// `expiry_time`: absent, null or a time (ms) in the future.
fn expiry_field(body: &Value) -> Result<Option<Option<i64>>> {
    match body.get("expiry_time") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_i64() {
            Some(n) if n > now_ms() as i64 => Ok(Some(Some(n))),
            Some(_) => Err(err!(InvalidParam, "expiry_time must not be in the past")),
            None => Err(err!(InvalidParam, "expiry_time must be an integer or null")),
        },
    }
}

fn valid_token_chars(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// # `GET /_synapse/admin/v1/registration_tokens`
/// `valid=true|false` lists only the usable (or used-up/expired) ones.
pub async fn list_tokens_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let valid = bool_query(req, "valid")?;
    audit(me.user_id.as_str(), "list_registration_tokens", "");
    let tokens: Vec<Value> = store::list_tokens(&ctx.db).await?.iter().filter(|t| valid.is_none_or(|v| valid_now(t) == v)).map(token_json).collect();
    Ok(Response::ok(json!({ "registration_tokens": tokens })))
}

/// # `GET /_synapse/admin/v1/registration_tokens/{token}`
pub async fn get_token_route(ctx: &Ctx, _req: &Request, me: &Authed, token: &str) -> Result<Response> {
    audit(me.user_id.as_str(), "get_registration_token", token);
    let t = store::get_token(&ctx.db, token).await?.ok_or_else(|| err!(NotFound, "No such registration token: {token}"))?;
    Ok(Response::ok(token_json(&t)))
}

/// # `POST /_synapse/admin/v1/registration_tokens/new`
/// `token` (else a random one of `length`, default 16), `uses_allowed`, `expiry_time`.
pub async fn create_token_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value_or_empty()?;
    let uses = uses_field(&body)?.flatten();
    let expiry = expiry_field(&body)?.flatten();
    let token = match body.get("token") {
        None | Some(Value::Null) => {
            let length = match body.get("length") {
                None | Some(Value::Null) => 16,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=64).contains(&n) => n as usize,
                    _ => return Err(err!(InvalidParam, "length must be an integer from 1 to 64")),
                },
            };
            random_alpha(length)
        }
        Some(Value::String(t)) if valid_token_chars(t) => t.clone(),
        Some(_) => return Err(err!(InvalidParam, "token must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~' or '-'")),
    };
    audit(me.user_id.as_str(), "create_registration_token", &token);
    if !store::create_token(&ctx.db, &token, uses, expiry).await? {
        return Err(err!(InvalidParam, "Token already exists"));
    }
    let t = store::get_token(&ctx.db, &token).await?.ok_or_else(|| crate::error::Error::internal("token not stored"))?;
    Ok(Response::ok(token_json(&t)))
}

/// # `PUT /_synapse/admin/v1/registration_tokens/{token}`
pub async fn update_token_route(ctx: &Ctx, req: &Request, me: &Authed, token: &str) -> Result<Response> {
    let body = req.json_value_or_empty()?;
    let (uses, expiry) = (uses_field(&body)?, expiry_field(&body)?);
    audit(me.user_id.as_str(), "update_registration_token", token);
    if !store::update_token(&ctx.db, token, uses, expiry).await? {
        return Err(err!(NotFound, "No such registration token: {token}"));
    }
    let t = store::get_token(&ctx.db, token).await?.ok_or_else(|| err!(NotFound, "No such registration token: {token}"))?;
    Ok(Response::ok(token_json(&t)))
}

/// # `DELETE /_synapse/admin/v1/registration_tokens/{token}`
pub async fn delete_token_route(ctx: &Ctx, _req: &Request, me: &Authed, token: &str) -> Result<Response> {
    audit(me.user_id.as_str(), "delete_registration_token", token);
    if !store::delete_token(&ctx.db, token).await? {
        return Err(err!(NotFound, "No such registration token: {token}"));
    }
    Ok(Response::ok(json!({})))
}
