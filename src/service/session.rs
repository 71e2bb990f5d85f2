//! Sessions: a device and its tokens, created by login, registration (also the admin
//! API's) and OAuth-free flows alike.

use crate::core::json::JsonExt;
use ruma::UserId;
use serde_json::{json, Value};

use crate::core::crypto::random_alpha;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Request;
use crate::store::{accounts, tokens};

pub struct SessionRequest {
    pub device_id: Option<String>,
    pub display_name: Option<String>,
    pub refresh_token: bool,
}

/// Creates (or takes over) a device for `user_id` and issues its tokens in one batch.
/// Returns the login/register response body.
pub async fn create_session(ctx: &Ctx, req: &Request, user_id: &UserId, s: SessionRequest) -> Result<Value> {
    let device_id = match s.device_id {
        Some(d) if d.is_empty() || d.len() > 255 => return Err(err!(InvalidParam, "Invalid device_id")),
        Some(d) => d,
        None => random_alpha(10),
    };
    if s.display_name.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return Err(err!(InvalidParam, "Device display name too long"));
    }
    let db = &ctx.db;
    // Re-using a device ID replaces that device's old tokens.
    let mut stmts = tokens::revoke_device_tokens(db, user_id.as_str(), &device_id)?;
    stmts.push(accounts::upsert_device_stmt(db, user_id.as_str(), &device_id, s.display_name.as_deref(), req.client_ip.as_deref())?);
    let (issue, issued) = tokens::issue(db, user_id.as_str(), &device_id, s.refresh_token, ctx.config.access_token_lifetime_ms)?;
    stmts.extend(issue);
    db.batch(stmts).await?;

    let mut body = json!({
        "user_id": user_id,
        "access_token": issued.access_token,
        "device_id": device_id,
        "home_server": ctx.server_name(),
        "well_known": { "m.homeserver": { "base_url": ctx.config.public_baseurl } },
    });
    if let (Some(r), Some(ms)) = (issued.refresh_token, issued.expires_in_ms) {
        body.set("refresh_token", json!(r));
        body.set("expires_in_ms", json!(ms));
    }
    Ok(body)
}
