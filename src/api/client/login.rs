//! Login, logout, token refresh and login tokens (spec: client-server-api, "Login",
//! "Refreshing access tokens", "POST /_matrix/client/v1/login/get_token").

use ruma::UserId;
use serde::Deserialize;
use serde_json::json;

use crate::api::auth::{check_password, identified_user, user_interactive_auth, Authed, Identifier};
use crate::core::uia::{self, Flows};
use crate::ctx::Ctx;
use crate::err;
use crate::error::{ErrorKind, Result};
use crate::http::{Request, Response};
use crate::service::session::{create_session, SessionRequest};
use crate::store::{accounts, tokens};

/// Lifetime of an `m.login.token`.
const LOGIN_TOKEN_LIFETIME_MS: u64 = 120_000;

/// # `GET /_matrix/client/v3/login`
/// No flows when `AUTH_MODE=oauth`: clients log in through the OAuth 2.0 API.
pub async fn login_flows_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    if !ctx.config.legacy_login() {
        return Ok(Response::ok(json!({ "flows": [] })));
    }
    Ok(Response::ok(json!({
        "flows": [ { "type": "m.login.password" }, { "type": "m.login.token" } ]
    })))
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    identifier: Option<Identifier>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

/// # `POST /_matrix/client/v3/login`
/// `m.login.password` (with `m.id.user`) and `m.login.token`. No type logs in without a
/// credential.
pub async fn login_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let body: LoginBody = req.json()?;
    let user_id = match body.kind.as_str() {
        "m.login.password" => {
            let password = body.password.as_deref().ok_or_else(|| err!(BadJson, "password is required"))?;
            let user_id = identified_user(ctx, body.identifier.as_ref(), body.user.as_deref())?;
            let user = check_password(ctx, req, user_id.as_deref(), password).await?;
            UserId::parse(&user.user_id).map_err(crate::Error::internal)?
        }
        "m.login.token" => {
            let token = body.token.as_deref().ok_or_else(|| err!(BadJson, "token is required"))?;
            let user_id = tokens::consume_login_token(&ctx.db, token).await?.ok_or_else(|| err!(Forbidden, "Invalid or expired login token"))?;
            let user = accounts::get_user(&ctx.db, &user_id).await?.ok_or_else(|| err!(Forbidden, "Invalid login token"))?;
            if user.deactivated != 0 {
                return Err(err!(UserDeactivated, "This account has been deactivated"));
            }
            UserId::parse(&user_id).map_err(crate::Error::internal)?
        }
        _ => return Err(err!(Unknown, "Unknown login type")),
    };
    let session = create_session(
        ctx,
        req,
        &user_id,
        SessionRequest { device_id: body.device_id, display_name: body.initial_device_display_name, refresh_token: body.refresh_token },
    )
    .await?;
    Ok(Response::ok(session))
}

/// # `POST /_matrix/client/v1/login/get_token`
/// A short-lived single-use `m.login.token`, after re-authentication with the password.
pub async fn get_login_token_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body = req.json_value_or_empty()?;
    user_interactive_auth(ctx, req, &body, "get_login_token", &Flows::single(uia::PASSWORD), Some(&me.user_id)).await?;
    let token = tokens::create_login_token(&ctx.db, me.user_id.as_str(), LOGIN_TOKEN_LIFETIME_MS).await?;
    Ok(Response::ok(json!({ "login_token": token, "expires_in_ms": LOGIN_TOKEN_LIFETIME_MS })))
}

/// # `POST /_matrix/client/v3/logout`
/// Ends this session: the token and its device go away.
pub async fn logout_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, me.user_id.as_str(), std::slice::from_ref(&me.device_id)).await?;
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/logout/all`
pub async fn logout_all_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let devices: Vec<String> = accounts::list_devices(&ctx.db, me.user_id.as_str()).await?.into_iter().map(|d| d.device_id).collect();
    crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, me.user_id.as_str(), &devices).await?;
    // Tokens of a device row that no longer exists, if any.
    tokens::delete_all_access_tokens(&ctx.db, me.user_id.as_str()).await?;
    Ok(Response::ok(json!({})))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// # `POST /_matrix/client/v3/refresh`
/// Rotates the refresh token; the old one dies once the new tokens are used.
pub async fn refresh_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let body: RefreshBody = req.json()?;
    let Some((_user, issued)) = tokens::refresh(&ctx.db, &body.refresh_token, ctx.config.access_token_lifetime_ms).await? else {
        return Err(err!(ErrorKind::UnknownToken { soft_logout: false }, "Unknown refresh token"));
    };
    Ok(Response::ok(json!({
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "expires_in_ms": issued.expires_in_ms,
    })))
}
