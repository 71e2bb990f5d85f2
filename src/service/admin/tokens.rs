//! Registration tokens: the configured ones (`REGISTRATION_TOKENS`, unlimited) and those the
//! admin API manages in D1 (uses and expiry), checked by the same UIA stage.

use crate::core::crypto::ct_eq;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::admin as store;

fn configured(ctx: &Ctx, token: &str) -> bool {
    ctx.config.registration_tokens.iter().any(|t| ct_eq(t.as_bytes(), token.as_bytes()))
}

/// The `m.login.registration_token` stage of UIA session `session`: a configured token, or an
/// admin-managed one of which a use is reserved for the session (atomically: concurrent
/// registrations cannot use a token more than `uses_allowed` times).
pub async fn pass_stage(ctx: &Ctx, session: &str, token: &str) -> Result<bool> {
    if configured(ctx, token) {
        return Ok(true);
    }
    if token.is_empty() || token.len() > 64 {
        return Ok(false);
    }
    store::reserve_token(&ctx.db, session, token).await
}

/// Whether `token` would be accepted now (`GET /register/m.login.registration_token/validity`).
pub async fn is_valid(ctx: &Ctx, token: &str) -> Result<bool> {
    if configured(ctx, token) {
        return Ok(true);
    }
    if token.is_empty() || token.len() > 64 {
        return Ok(false);
    }
    store::token_usable(&ctx.db, token).await
}
