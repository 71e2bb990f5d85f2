//! The token endpoint (authorisation code and refresh token grants), revocation and
//! userinfo (spec: client-server-api, "Token request", "Refresh token grant", "Token
//! revocation"; RFC 6749, RFC 7009, OpenID Connect Core).

use crate::core::json::JsonExt;
use serde_json::{json, Value};

use super::{finish, oauth, verify_access_token, BearerError};
use crate::core::config::OAuthConfig;
use crate::core::crypto::random_token;
use crate::core::oauth::jwt::{at_hash, looks_like_jwt, AccessClaims, IdClaims, ACCESS_TOKEN_TYP};
use crate::core::oauth::refresh::{decide, Decision};
use crate::core::oauth::{no_store, param, parse_form, OAuthError};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::oauth_err;
use crate::store::accounts;
use crate::store::oauth::{self as store, CodeUse};

type OResult<T> = std::result::Result<T, OAuthError>;

fn form(req: &Request) -> OResult<Vec<(String, String)>> {
    parse_form(&req.body).ok_or_else(|| oauth_err!(invalid_request, "The body must be form-encoded, without repeated parameters"))
}

/// # `POST /oauth/token`
pub async fn token_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let o = oauth(ctx)?;
    Ok(finish(token(ctx, o, req).await))
}

async fn token(ctx: &Ctx, o: &OAuthConfig, req: &Request) -> OResult<Response> {
    let f = form(req)?;
    let client_id = param(&f, "client_id").ok_or_else(|| oauth_err!(invalid_client, "client_id is required"))?;
    let client = store::get_client(&ctx.db, client_id).await?.ok_or_else(|| oauth_err!(invalid_client, "Unknown client"))?;
    match param(&f, "grant_type") {
        Some("authorization_code") => code_grant(ctx, o, req, &f, client_id, client.client_name.as_deref()).await,
        Some("refresh_token") if client.allows_refresh() => refresh_grant(ctx, o, &f, client_id).await,
        Some("refresh_token") => Err(oauth_err!(unauthorized_client, "The client did not register the refresh_token grant")),
        Some(_) => Err(oauth_err!(unsupported_grant_type, "Only authorization_code and refresh_token are supported")),
        None => Err(oauth_err!(invalid_request, "grant_type is required")),
    }
}

/// `authorization_code`: one use per code, even when requests race (the D1 guard in
/// `store::oauth::take_code`). A replayed code revokes the session it started (RFC 6749
/// section 4.1.2).
async fn code_grant(
    ctx: &Ctx,
    o: &OAuthConfig,
    req: &Request,
    f: &[(String, String)],
    client_id: &str,
    client_name: Option<&str>,
) -> OResult<Response> {
    let code = param(f, "code").ok_or_else(|| oauth_err!(invalid_request, "code is required"))?;
    let session_id = random_token("oas");
    let kv = ctx.kv()?;
    let grant = match store::take_code(&ctx.db, &kv, code, &session_id).await? {
        CodeUse::Fresh(g) => g,
        CodeUse::Replayed(previous) => {
            store::revoke_session(&ctx.db, &previous).await?;
            return Err(oauth_err!(invalid_grant, "The authorization code has already been used"));
        }
        CodeUse::Unknown => return Err(oauth_err!(invalid_grant, "Unknown or expired authorization code")),
    };
    grant.check(client_id, param(f, "redirect_uri"), param(f, "code_verifier")).map_err(|e| OAuthError::new("invalid_grant", e))?;
    match accounts::get_user(&ctx.db, &grant.user_id).await? {
        Some(u) if u.deactivated == 0 => {}
        _ => return Err(oauth_err!(invalid_grant, "The account is no longer active")),
    }
    let refresh = random_token("oar");
    store::start_session(&ctx.db, &session_id, &grant, &refresh, req.client_ip.as_deref(), client_name).await?;
    let s = store::Session {
        session_id,
        user_id: grant.user_id.clone(),
        device_id: grant.device_id.clone(),
        client_id: client_id.to_owned(),
        scope: grant.scope.clone(),
        revoked_ts: None,
        device_present: None,
    };
    let id = grant.openid.then_some((grant.nonce.as_deref(), grant.auth_time));
    issue(ctx, o, &s, &refresh, id).await
}

/// `refresh_token`: rotation with reuse detection (`core::oauth::refresh`).
async fn refresh_grant(ctx: &Ctx, o: &OAuthConfig, f: &[(String, String)], client_id: &str) -> OResult<Response> {
    let old = param(f, "refresh_token").ok_or_else(|| oauth_err!(invalid_request, "refresh_token is required"))?;
    let found = store::refresh_lookup(&ctx.db, old).await?;
    let (state, session) = match found {
        Some((st, s)) => (Some(st), Some(s)),
        None => (None, None),
    };
    let decision = decide(state.as_ref(), client_id);
    // `decide` only rotates or revokes a token it found, so there is a session then.
    let (decision, s) = match (decision, session) {
        (Decision::Reject(msg), _) => return Err(OAuthError::new("invalid_grant", msg)),
        (_, None) => return Err(oauth_err!(invalid_grant, "Unknown refresh token")),
        (d, Some(s)) => (d, s),
    };
    if decision == Decision::RevokeFamily {
        store::revoke_session(&ctx.db, &s.session_id).await?;
        return Err(oauth_err!(invalid_grant, "This refresh token was already used; the session has been revoked"));
    }
    if let Some(asked) = param(f, "scope") {
        let granted: Vec<&str> = s.scope.split(' ').collect();
        if !asked.split(' ').filter(|t| !t.is_empty()).all(|t| granted.contains(&t)) {
            return Err(oauth_err!(invalid_scope, "A refresh cannot widen the scope"));
        }
    }
    let new = random_token("oar");
    if !store::rotate_refresh(&ctx.db, &s.session_id, old, &new).await? {
        // Another request used this token a moment ago: a replay, same as above.
        store::revoke_session(&ctx.db, &s.session_id).await?;
        return Err(oauth_err!(invalid_grant, "This refresh token was already used; the session has been revoked"));
    }
    issue(ctx, o, &s, &new, None).await
}

/// The token response (RFC 6749 section 5.1) with an RS256 JWT access token, and an ID
/// token when `openid` was granted.
async fn issue(ctx: &Ctx, o: &OAuthConfig, s: &store::Session, refresh: &str, id: Option<(Option<&str>, u64)>) -> OResult<Response> {
    let now = now_ms() / 1000;
    let lifetime = (ctx.config.access_token_lifetime_ms / 1000).max(1);
    let claims = AccessClaims {
        iss: o.issuer.clone(),
        sub: s.user_id.clone(),
        aud: ctx.config.public_baseurl.clone(),
        exp: now + lifetime,
        iat: now,
        jti: random_token("jti"),
        scope: s.scope.clone(),
        client_id: s.client_id.clone(),
        device_id: s.device_id.clone(),
        sid: s.session_id.clone(),
    };
    let access = crate::service::jwt::sign(&o.keys, &claims, ACCESS_TOKEN_TYP).await?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "refresh_token": refresh,
        "scope": s.scope,
    });
    if let Some((nonce, auth_time)) = id {
        let idc = IdClaims {
            iss: o.issuer.clone(),
            sub: s.user_id.clone(),
            aud: s.client_id.clone(),
            exp: now + 3600,
            iat: now,
            auth_time,
            nonce: nonce.map(str::to_owned),
            at_hash: at_hash(&access),
            device_id: s.device_id.clone(),
        };
        body.set("id_token", json!(crate::service::jwt::sign(&o.keys, &idc, "JWT").await?));
    }
    Ok(no_store(Response::ok(body)))
}

/// # `POST /oauth/revoke`
/// RFC 7009: revokes the session of an access or refresh token, so both stop working.
/// Unknown, invalid or already revoked tokens get 200 too.
pub async fn revoke_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let o = oauth(ctx)?;
    Ok(finish(revoke(ctx, o, req).await))
}

async fn revoke(ctx: &Ctx, o: &OAuthConfig, req: &Request) -> OResult<Response> {
    let f = form(req)?;
    let token = param(&f, "token").ok_or_else(|| oauth_err!(invalid_request, "token is required"))?;
    let session = if looks_like_jwt(token) {
        o.keys.verify_access_any_time(token, &o.issuer, &ctx.config.public_baseurl).ok().map(|c| c.sid)
    } else {
        store::session_of_refresh(&ctx.db, token).await?
    };
    if let Some(sid) = session {
        store::revoke_session(&ctx.db, &sid).await?;
    }
    Ok(no_store(Response::ok(json!({}))))
}

/// # `GET /oauth/userinfo`
/// OpenID Connect Core section 5.3, with a JWT access token: `sub` is the Matrix user ID.
pub async fn userinfo_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    oauth(ctx)?;
    let invalid = |msg: &str| {
        let mut r = OAuthError::new("invalid_token", msg).to_response();
        r.headers.push(("WWW-Authenticate".into(), format!("Bearer error=\"invalid_token\", error_description=\"{msg}\"")));
        r
    };
    let Some(token) = req.access_token().filter(|t| looks_like_jwt(t)) else {
        return Ok(invalid("A JWT access token is required"));
    };
    let (claims, _) = match verify_access_token(ctx, token).await? {
        Ok(c) => c,
        Err(BearerError::Expired) => return Ok(invalid("The access token has expired")),
        Err(BearerError::Invalid) => return Ok(invalid("The access token is not valid")),
    };
    let user = accounts::get_user(&ctx.db, &claims.sub).await?;
    let localpart = claims.sub.trim_start_matches('@').split(':').next().unwrap_or_default().to_owned();
    let mut body: Value = json!({ "sub": claims.sub, "preferred_username": localpart });
    if let Some(name) = user.and_then(|u| u.displayname) {
        body.set("name", json!(name));
    }
    Ok(no_store(Response::ok(body)))
}
