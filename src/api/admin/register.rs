//! Synapse's shared-secret registration API, so that admin scripts and tools (and our tests)
//! can create users in any registration mode.

use serde::Deserialize;
use serde_json::json;

use crate::api::auth::new_password_hash;
use crate::core::crypto::{ct_eq, hex, hmac_sha1_hex, random_bytes};
use crate::core::ids::validate_new_localpart;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::session::{create_session, SessionRequest};
use crate::store::accounts;

/// A nonce must be used within a minute (Synapse's window).
const NONCE_LIFETIME_MS: u64 = 60_000;

/// # `GET /_synapse/admin/v1/register`
pub async fn nonce_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    if ctx.config.registration_shared_secret.is_none() {
        return Err(err!(Forbidden, "Shared secret registration is not enabled"));
    }
    let nonce = hex(&random_bytes(32));
    accounts::create_nonce(&ctx.db, &nonce).await?;
    Ok(Response::ok(json!({ "nonce": nonce })))
}

#[derive(Deserialize)]
struct Body {
    nonce: String,
    username: String,
    password: String,
    mac: String,
    #[serde(default)]
    admin: bool,
    displayname: Option<String>,
}

/// # `POST /_synapse/admin/v1/register`
/// `mac` = hex HMAC-SHA1(secret, nonce NUL username NUL password NUL admin|notadmin).
pub async fn register_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let Some(secret) = ctx.config.registration_shared_secret.as_deref() else {
        return Err(err!(Forbidden, "Shared secret registration is not enabled"));
    };
    let body: Body = req.json()?;
    // Consume first: a nonce is single use whatever happens next.
    if !accounts::consume_nonce(&ctx.db, &body.nonce, NONCE_LIFETIME_MS).await? {
        return Err(err!(Unknown, "Unrecognised nonce"));
    }
    let msg = format!("{}\0{}\0{}\0{}", body.nonce, body.username, body.password, if body.admin { "admin" } else { "notadmin" });
    let want = hmac_sha1_hex(secret.as_bytes(), msg.as_bytes());
    if !ct_eq(want.as_bytes(), body.mac.to_ascii_lowercase().as_bytes()) {
        return Err(err!(Forbidden, "HMAC incorrect"));
    }
    let localpart = body.username.to_lowercase();
    let user_id = validate_new_localpart(&localpart, &ctx.config.server_name, &ctx.config.reserved_localparts, true)?;
    let hash = new_password_hash(ctx, &body.password).await?;
    let displayname = body.displayname.unwrap_or_else(|| localpart.clone());
    if !accounts::create_user(&ctx.db, user_id.as_str(), &hash, &displayname, body.admin).await? {
        return Err(err!(UserInUse, "User ID already taken"));
    }
    let session = create_session(ctx, req, &user_id, SessionRequest { device_id: None, display_name: None, refresh_token: false }).await?;
    Ok(Response::ok(json!({
        "user_id": user_id,
        "home_server": ctx.server_name(),
        "access_token": session.get("access_token"),
        "device_id": session.get("device_id"),
    })))
}
