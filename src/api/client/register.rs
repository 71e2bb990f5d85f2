//! Account registration (spec: client-server-api, "Account registration and management").

use serde::Deserialize;
use serde_json::json;

use crate::api::auth::{check_new_password, new_password_hash, user_interactive_auth};
use crate::core::config::RegistrationMode;
use crate::core::crypto::random_alpha;
use crate::core::ids::validate_new_localpart;
use crate::core::uia::{self, Flows};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{parse_json, Request, Response};
use crate::service::session::{create_session, SessionRequest};
use crate::store::accounts;

#[derive(Deserialize)]
struct RegisterBody {
    username: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    #[serde(default)]
    refresh_token: bool,
}

fn flows(ctx: &Ctx) -> Flows {
    match ctx.config.registration_mode {
        // Synapse's flow (token, then dummy), which clients such as matrix-nio expect.
        RegistrationMode::Token => Flows(vec![vec![uia::REGISTRATION_TOKEN, uia::DUMMY]]),
        _ => Flows::single(uia::DUMMY),
    }
}

/// # `POST /_matrix/client/v3/register`
/// Registration with user-interactive auth: `m.login.dummy` when registration is open,
/// `m.login.registration_token` when it needs a token. Guests are not supported.
pub async fn register_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    if req.query("kind").is_some_and(|k| k == "guest") {
        return Err(err!(GuestAccessForbidden, "Guest access is not enabled"));
    }
    if ctx.config.registration_mode == RegistrationMode::Closed {
        return Err(err!(Forbidden, "Registration has been disabled"));
    }
    let value = req.json_value()?;
    let body: RegisterBody = parse_json(value.clone())?;

    // Check what can be checked before the client goes through auth (Synapse does too).
    let localpart = match &body.username {
        Some(u) => {
            let lp = u.to_lowercase();
            validate_new_localpart(&lp, &ctx.config.server_name, &ctx.config.reserved_localparts, false)?;
            if accounts::get_user(&ctx.db, &format!("@{lp}:{}", ctx.server_name())).await?.is_some() {
                return Err(err!(UserInUse, "User ID already taken"));
            }
            Some(lp)
        }
        None => None,
    };
    // A request without `auth` only asks for the flows (Element's first request carries no
    // password): it gets the 401, as from Synapse. The password is needed once a stage is
    // attempted, and is checked before the stage so that a refusal does not use up the session.
    match body.password.as_deref() {
        Some(p) => check_new_password(p)?,
        None if value.get("auth").is_some_and(|a| !a.is_null()) => return Err(err!(MissingParam, "A password is required")),
        None => {}
    }

    user_interactive_auth(ctx, req, &value, "register", &flows(ctx), None).await?;
    let password = body.password.as_deref().ok_or_else(|| err!(MissingParam, "A password is required"))?;
    let hash = new_password_hash(ctx, password).await?;

    let localpart = localpart.unwrap_or_else(|| random_alpha(12).to_lowercase());
    let user_id = validate_new_localpart(&localpart, &ctx.config.server_name, &ctx.config.reserved_localparts, false)?;
    crate::service::ratelimit::check(ctx, crate::core::ratelimit::Bucket::Registration, crate::service::ratelimit::addr(req)).await?;
    if !accounts::create_user(&ctx.db, user_id.as_str(), &hash, &localpart, false).await? {
        return Err(err!(UserInUse, "User ID already taken"));
    }
    if body.inhibit_login {
        return Ok(Response::ok(json!({ "user_id": user_id, "home_server": ctx.server_name() })));
    }
    let session = create_session(
        ctx,
        req,
        &user_id,
        SessionRequest { device_id: body.device_id, display_name: body.initial_device_display_name, refresh_token: body.refresh_token },
    )
    .await?;
    Ok(Response::ok(session))
}

/// # `GET /_matrix/client/v3/register/available`
pub async fn available_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    crate::service::ratelimit::check(ctx, crate::core::ratelimit::Bucket::RegisterAvailable, crate::service::ratelimit::addr(req)).await?;
    let username = req.query("username").ok_or_else(|| err!(MissingParam, "Missing username"))?.to_lowercase();
    let user_id = validate_new_localpart(&username, &ctx.config.server_name, &ctx.config.reserved_localparts, false)?;
    if accounts::get_user(&ctx.db, user_id.as_str()).await?.is_some() {
        return Err(err!(UserInUse, "User ID already taken"));
    }
    Ok(Response::ok(json!({ "available": true })))
}

/// # `GET /_matrix/client/v1/register/m.login.registration_token/validity`
pub async fn token_validity_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let token = req.query("token").ok_or_else(|| err!(MissingParam, "Missing token"))?;
    if ctx.config.registration_mode == RegistrationMode::Closed {
        return Err(err!(Forbidden, "Registration has been disabled"));
    }
    let valid = crate::service::admin::tokens::is_valid(ctx, token).await?;
    Ok(Response::ok(json!({ "valid": valid })))
}
