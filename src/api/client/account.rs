//! The logged-in user's account: whoami, password change, deactivation.

use serde::Deserialize;
use serde_json::json;

use crate::api::auth::{new_password_hash, user_interactive_auth, Authed};
use crate::core::uia::{self, Flows};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{parse_json, Request, Response};
use crate::store::accounts;

/// # `GET /_matrix/client/v3/account/whoami`
pub async fn whoami_route(_ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    Ok(Response::ok(json!({ "user_id": me.user_id, "device_id": me.device_id, "is_guest": false })))
}

#[derive(Deserialize)]
struct PasswordBody {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

fn yes() -> bool {
    true
}

/// # `POST /_matrix/client/v3/account/password`
/// Needs the current password (UIA). Other devices are logged out unless
/// `logout_devices: false`; the calling device stays.
pub async fn change_password_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let value = req.json_value()?;
    let body: PasswordBody = parse_json(value.clone())?;
    let hash = new_password_hash(ctx, &body.new_password).await?;
    user_interactive_auth(ctx, req, &value, "change_password", &Flows::single(uia::PASSWORD), Some(&me.user_id)).await?;
    accounts::set_password(&ctx.db, me.user_id.as_str(), &hash).await?;
    if body.logout_devices {
        let others: Vec<String> =
            accounts::list_devices(&ctx.db, me.user_id.as_str()).await?.into_iter().map(|d| d.device_id).filter(|d| *d != me.device_id).collect();
        crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, me.user_id.as_str(), &others).await?;
    }
    Ok(Response::ok(json!({})))
}

/// # `POST /_matrix/client/v3/account/deactivate`
/// Needs the password (UIA). The account keeps its ID (never reused) and loses everything
/// that logs in.
pub async fn deactivate_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let value = req.json_value_or_empty()?;
    user_interactive_auth(ctx, req, &value, "deactivate", &Flows::single(uia::PASSWORD), Some(&me.user_id)).await?;
    crate::service::account::deactivate(ctx, &me.user_id).await?;
    Ok(Response::ok(json!({ "id_server_unbind_result": "no-support" })))
}

/// # `GET /_matrix/client/v3/account/3pid`
/// Stratus binds no third-party identifiers (no email or phone): always the empty list,
/// which Element's settings page asks for at start-up.
pub async fn threepids_route(_ctx: &Ctx, _req: &Request, _me: &Authed) -> Result<Response> {
    Ok(Response::ok(json!({ "threepids": [] })))
}
