//! Discovery: the authorisation server metadata (spec: client-server-api, "Server metadata
//! discovery"; RFC 8414), the OpenID Connect discovery document and the JWKS.

use crate::core::json::JsonExt;
use serde_json::{json, Value};

use super::oauth;
use crate::core::config::RegistrationMode;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// The account management actions the `/account` pages support (spec: "Account
/// management URL actions"; MSC4191's earlier names are accepted too).
pub const ACCOUNT_ACTIONS: &[&str] =
    &["org.matrix.profile", "org.matrix.devices_list", "org.matrix.device_view", "org.matrix.device_delete", "org.matrix.cross_signing_reset"];

fn metadata(ctx: &Ctx) -> Result<Value> {
    let o = oauth(ctx)?;
    let base = &ctx.config.public_baseurl;
    let mut m = json!({
        "issuer": o.issuer,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "registration_endpoint": format!("{base}/oauth/register"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["urn:matrix:client:api:*", "urn:matrix:client:device:*", "openid"],
        "account_management_uri": format!("{base}/account"),
        "account_management_actions_supported": super::metadata::ACCOUNT_ACTIONS,
    });
    if ctx.config.registration_mode != RegistrationMode::Closed {
        m.set("prompt_values_supported", json!(["create"]));
    }
    Ok(m)
}

fn cached(body: Value) -> Response {
    let mut r = Response::ok(body);
    r.headers.push(("Cache-Control".into(), "public, max-age=300".into()));
    r
}

/// # `GET /_matrix/client/v1/auth_metadata`
/// 404 `M_UNRECOGNIZED` when OAuth is off, as the spec says for legacy-only servers.
pub async fn auth_metadata_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    Ok(cached(metadata(ctx)?))
}

/// # `GET /.well-known/openid-configuration`
/// OpenID Connect Discovery 1.0: the same metadata plus the OIDC fields.
pub async fn openid_configuration_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    let mut m = metadata(ctx)?;
    m.set("subject_types_supported", json!(["public"]));
    m.set("id_token_signing_alg_values_supported", json!(["RS256"]));
    m.set("claims_supported", json!(["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "preferred_username", "name"]));
    m.set("claims_parameter_supported", json!(false));
    m.set("request_parameter_supported", json!(false));
    Ok(cached(m))
}

/// # `GET /.well-known/jwks.json`
/// The RS256 public keys with their `kid`s: the signing key and, after a rotation, the
/// previous ones (RFC 7517).
pub async fn jwks_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    Ok(cached(oauth(ctx)?.keys.jwks()))
}
