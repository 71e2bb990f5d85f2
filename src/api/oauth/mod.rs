//! The OAuth 2.0 / OpenID Connect provider's endpoints (MSC3861; spec v1.19,
//! client-server-api, "OAuth 2.0 API"), one file per area. The logic they share with
//! tests lives in `core::oauth`; storage in `store::oauth`.
//!
//! Matrix endpoints (`auth_metadata`) answer Matrix errors; the OAuth endpoints answer
//! RFC 6749 errors ([`OAuthError`]).

pub mod account;
pub mod authorize;
pub mod metadata;
pub mod register;
pub mod token;

use crate::core::config::OAuthConfig;
use crate::core::crypto::random_token;
use crate::core::oauth::jwt::{AccessClaims, JwtError};
use crate::core::oauth::{cookie, set_cookie, OAuthError};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::oauth::{self as store, Session};

/// The random cookie that binds the login forms to the browser (CSRF).
pub const CSRF_COOKIE: &str = "stratus_oauth_csrf";
/// The browser's sign-in to the provider's pages.
pub const SESSION_COOKIE: &str = "stratus_session";

/// The provider's settings, or 404 `M_UNRECOGNIZED` when OAuth is off (spec:
/// "Authentication API discovery").
pub fn oauth(ctx: &Ctx) -> Result<&OAuthConfig> {
    ctx.config.oauth.as_ref().ok_or_else(|| err!(Unrecognized, "OAuth 2.0 is not enabled on this server"))
}

/// An OAuth endpoint's answer: its response or its RFC 6749 error.
pub fn finish(r: std::result::Result<Response, OAuthError>) -> Response {
    r.unwrap_or_else(|e| e.to_response())
}

/// Cookies get `Secure` when the server is served over https.
pub fn secure(ctx: &Ctx) -> bool {
    ctx.config.public_baseurl.starts_with("https://")
}

/// The browser's CSRF cookie value, and the `Set-Cookie` header when it had none.
pub fn csrf_cookie(ctx: &Ctx, req: &Request) -> (String, Option<(String, String)>) {
    match cookie(req.header("cookie"), CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(v) => (v.to_owned(), None),
        None => {
            let v = random_token("csrf");
            let h = set_cookie(CSRF_COOKIE, &v, "/", 3600, secure(ctx));
            (v, Some(h))
        }
    }
}

/// The signed-in browser user: (cookie value, user ID).
pub async fn browser_user(ctx: &Ctx, req: &Request) -> Result<Option<(String, String)>> {
    let Some(token) = cookie(req.header("cookie"), SESSION_COOKIE) else { return Ok(None) };
    Ok(store::browser_session_user(&ctx.db, token).await?.map(|u| (token.to_owned(), u)))
}

/// Signs the browser in as `user_id`: the `Set-Cookie` header to send.
pub async fn sign_in_browser(ctx: &Ctx, user_id: &str) -> Result<(String, String)> {
    let token = random_token("sbs");
    store::create_browser_session(&ctx.db, &token, user_id).await?;
    Ok(set_cookie(SESSION_COOKIE, &token, "/", store::BROWSER_SESSION_SECS, secure(ctx)))
}

pub enum BearerError {
    /// Well signed but expired: refresh (soft logout).
    Expired,
    /// Bad signature, wrong issuer or audience, revoked session, deleted device.
    Invalid,
}

/// Verifies a JWT access token: signature (current or previous key), `typ`, `iss`, `aud`
/// and `exp`, then that its session is alive and its device exists (one D1 read), so
/// revocation and device deletion take effect at once.
pub async fn verify_access_token(ctx: &Ctx, token: &str) -> Result<std::result::Result<(AccessClaims, Session), BearerError>> {
    let Some(o) = ctx.config.oauth.as_ref() else { return Ok(Err(BearerError::Invalid)) };
    let claims = match o.keys.verify_access(token, &o.issuer, &ctx.config.public_baseurl, now_ms() / 1000) {
        Ok(c) => c,
        Err(JwtError::Expired) => return Ok(Err(BearerError::Expired)),
        Err(JwtError::Invalid(_)) => return Ok(Err(BearerError::Invalid)),
    };
    let Some(session) = store::get_session(&ctx.db, &claims.sid).await? else { return Ok(Err(BearerError::Invalid)) };
    if !session.is_active() || session.user_id != claims.sub || session.device_id != claims.device_id {
        return Ok(Err(BearerError::Invalid));
    }
    Ok(Ok((claims, session)))
}
