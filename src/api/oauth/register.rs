//! Dynamic client registration (spec: client-server-api, "Dynamic client registration
//! flow"; RFC 7591).

use crate::core::json::JsonExt;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use super::{finish, oauth};
use crate::core::crypto::sha256;
use crate::core::oauth::client::validate;
use crate::core::oauth::{no_store, OAuthError};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::oauth as store;

/// # `POST /oauth/register`
/// Validates the metadata (redirect URIs and `client_uri` per "Redirect URI validation")
/// and answers 201 with the `client_id`. The ID is derived from the validated metadata,
/// so identical registrations share one client (the spec's de-duplication note).
pub async fn register_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    oauth(ctx)?;
    Ok(finish(register(ctx, req).await))
}

async fn register(ctx: &Ctx, req: &Request) -> std::result::Result<Response, OAuthError> {
    let body: serde_json::Value =
        serde_json::from_slice(&req.body).map_err(|_| OAuthError::new("invalid_client_metadata", "The body must be a JSON object"))?;
    let m = validate(&body).map_err(|e| OAuthError::new(e.0, e.1))?;
    let canonical = serde_json::to_vec(&m).map_err(crate::Error::from)?;
    let client_id = URL_SAFE_NO_PAD.encode(&sha256(&canonical)[..18]);
    store::create_client(&ctx.db, &client_id, &m).await?;
    let mut out = serde_json::to_value(&m).map_err(crate::Error::from)?;
    out.set("client_id", json!(client_id));
    Ok(no_store(Response::json(201, &out)))
}
