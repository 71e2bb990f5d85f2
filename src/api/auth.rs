//! Authentication shared by the handlers: access tokens, passwords (with failed-login rate
//! limiting), and user-interactive auth sessions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::core::json::JsonExt;
use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::Value;
use worker::D1PreparedStatement;

use crate::api::oauth::{verify_access_token, BearerError};
use crate::core::crypto::{token_hash, PasswordHash};
use crate::core::ids::local_user_from_input;
use crate::core::oauth::jwt::{looks_like_jwt, AccessClaims};
use crate::core::ratelimit::retry_after;
use crate::core::time::now_ms;
use crate::core::uia::{self, Flows};
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{parse_json, Request};
use crate::service::password;
use crate::store::{accounts, tokens, uia as uia_store};

/// The caller of an authenticated endpoint.
pub struct Authed {
    pub user_id: OwnedUserId,
    pub device_id: String,
    pub token: AuthToken,
    /// The hash of a legacy token taken from this isolate's cache whose row this request has
    /// not read yet: the handler must confirm it ([`confirm_stmt`] in its first D1 batch and
    /// [`confirm_rows`], or [`ensure_confirmed`]) before anything it does takes effect.
    unconfirmed: Cell<Option<String>>,
    /// The user's shadow-ban flag when the token lookup read it (a legacy token read from D1
    /// by this request); `None`: not known, ask [`crate::service::admin::users::is_shadow_banned`].
    shadow_banned: Option<bool>,
}

impl Authed {
    fn new(user_id: OwnedUserId, device_id: String, token: AuthToken) -> Self {
        Authed { user_id, device_id, token, unconfirmed: Cell::new(None), shadow_banned: None }
    }

    /// The shadow-ban flag read with the token, if it was.
    pub fn shadow_banned(&self) -> Option<bool> {
        self.shadow_banned
    }
}

// Legacy tokens seen valid in this isolate: the token hash → its row (user and device never
// change for a row). Only the mapping is cached, never the validity: revocation (logout,
// deactivation, refresh, device deletion) deletes the row, and a request served from the cache
// still reads that the row exists — folded into the first D1 batch the handler makes anyway
// (`/sync`), so a cached token costs no round trip of its own and revocation stays immediate
// across isolates. Bounded: emptied when full.
thread_local! {
    static KNOWN_TOKENS: RefCell<HashMap<String, tokens::AccessToken>> = RefCell::new(HashMap::new());
}
const KNOWN_TOKENS_MAX: usize = 4096;

fn known_token(hash: &str) -> Option<tokens::AccessToken> {
    KNOWN_TOKENS.with(|k| k.borrow().get(hash).cloned())
}

fn remember_token(t: &tokens::AccessToken) {
    KNOWN_TOKENS.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KNOWN_TOKENS_MAX {
            k.clear();
        }
        k.insert(t.token_hash.clone(), t.clone());
    });
}

fn forget_token(hash: &str) {
    KNOWN_TOKENS.with(|k| k.borrow_mut().remove(hash));
}

/// Hands the confirmation of the caller's cached token to someone who folds it into a write
/// batch (the `Room` object's append: `store::tokens::guard_stmt`): its hash, or `None` when
/// the token was read in this request. Whoever takes it must not act on the request unless
/// the batch confirms it.
pub fn take_unconfirmed(me: &Authed) -> Option<String> {
    me.unconfirmed.take()
}

/// Whether the caller's token came from the isolate's cache and is not confirmed yet.
pub fn is_unconfirmed(me: &Authed) -> bool {
    let h = me.unconfirmed.take();
    let yes = h.is_some();
    me.unconfirmed.set(h);
    yes
}

/// The token was found revoked (by a batch that confirmed it): this isolate forgets it.
pub fn revoked(me: &Authed) {
    if let AuthToken::Legacy(t) = &me.token {
        forget_token(&t.token_hash);
    }
}

/// The statement confirming the caller's cached token still exists, for the handler's first
/// D1 batch (`None` when the token was already read in this request, or is not legacy).
/// Hand that statement's rows to [`confirm_rows`].
pub fn confirm_stmt(ctx: &Ctx, me: &Authed) -> Result<Option<D1PreparedStatement>> {
    let hash = me.unconfirmed.take();
    let stmt = hash.as_deref().map(|h| tokens::exists_stmt(&ctx.db, h)).transpose()?;
    me.unconfirmed.set(hash);
    Ok(stmt)
}

/// Checks the rows of [`confirm_stmt`]'s statement: no row means the token was revoked since
/// this isolate cached it, and the request fails as with any unknown token (whatever else the
/// batch read is thrown away; the batch must therefore not write).
pub fn confirm_rows(me: &Authed, rows: Option<&Vec<Value>>) -> Result<()> {
    let Some(hash) = me.unconfirmed.take() else { return Ok(()) };
    if rows.is_some_and(|r| !r.is_empty()) {
        return Ok(());
    }
    forget_token(&hash);
    Err(err!(ErrorKind::UnknownToken { soft_logout: false }, "Unknown access token"))
}

/// Confirms the caller's cached token with a read of its own, unless already done in this
/// request: every way out of a handler that folds the check must pass here or through
/// [`confirm_rows`].
pub async fn ensure_confirmed(ctx: &Ctx, me: &Authed) -> Result<()> {
    let Some(stmt) = confirm_stmt(ctx, me)? else { return Ok(()) };
    let rows = ctx.db.batch_rows(vec![stmt]).await?;
    confirm_rows(me, rows.first())
}

/// How the caller authenticated.
pub enum AuthToken {
    /// A legacy opaque token from `/login` or `/register`.
    Legacy(tokens::AccessToken),
    /// An OAuth 2.0 JWT access token (MSC3861) and its verified claims.
    OAuth(AccessClaims),
}

/// Resolves the request's access token (spec: client-server-api, "Client Authentication").
/// A token shaped like a JWT is an OAuth 2.0 access token: signature, `iss`, `aud` and
/// `exp`, then its session and device in D1 (revocation and device deletion act at once).
/// `confirms_token`: the endpoint's handler confirms a token taken from the isolate's cache
/// itself (its route row says so), so a cached token is not read on its own here.
pub async fn authenticate(ctx: &Ctx, req: &Request, confirms_token: bool) -> Result<Authed> {
    let token = req.access_token().ok_or_else(|| err!(MissingToken, "Missing access token"))?;
    if looks_like_jwt(token) {
        return match verify_access_token(ctx, token).await? {
            Ok((claims, _)) => {
                let user_id = UserId::parse(&claims.sub).map_err(|e| Error::internal(format!("JWT sub: {e}")))?;
                Ok(Authed::new(user_id, claims.device_id.clone(), AuthToken::OAuth(claims)))
            }
            Err(BearerError::Expired) => Err(err!(ErrorKind::UnknownToken { soft_logout: true }, "Access token has expired")),
            Err(BearerError::Invalid) => Err(err!(ErrorKind::UnknownToken { soft_logout: false }, "Unknown access token")),
        };
    }
    let hash = token_hash(token);
    if confirms_token {
        if let Some(t) = known_token(&hash).filter(|t| t.expires_ts.is_none_or(|exp| (exp as u64) > now_ms())) {
            let user_id = UserId::parse(&t.user_id).map_err(|e| Error::internal(format!("stored user id: {e}")))?;
            let me = Authed::new(user_id, t.device_id.clone(), AuthToken::Legacy(t));
            me.unconfirmed.set(Some(hash));
            return Ok(me);
        }
    }
    let Some(mut t) = tokens::lookup_access(&ctx.db, token).await? else {
        forget_token(&hash);
        return Err(err!(ErrorKind::UnknownToken { soft_logout: false }, "Unknown access token"));
    };
    if let Some(exp) = t.expires_ts {
        if (exp as u64) <= now_ms() {
            // Refreshable: the client keeps its session and refreshes (soft logout).
            return Err(err!(ErrorKind::UnknownToken { soft_logout: true }, "Access token has expired"));
        }
    }
    if t.used == 0 && t.refresh_hash.is_some() {
        tokens::mark_used(&ctx.db, &t).await?;
        t.used = 1;
    }
    remember_token(&t);
    let user_id = UserId::parse(&t.user_id).map_err(|e| Error::internal(format!("stored user id: {e}")))?;
    let banned = t.shadow_banned != 0;
    let mut me = Authed::new(user_id, t.device_id.clone(), AuthToken::Legacy(t));
    me.shadow_banned = Some(banned);
    Ok(me)
}

/// A fixed hash to verify against when the user does not exist, so that a wrong user name
/// takes as long as a wrong password.
const DUMMY_HASH: &str = "$pbkdf2-sha256$i=100000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Checks a password for `user_id`, counting failures per account and per client address;
/// while either is over its limit every attempt gets `M_LIMIT_EXCEEDED`.
pub async fn check_password(ctx: &Ctx, req: &Request, user_id: Option<&UserId>, password: &str) -> Result<accounts::User> {
    let cfg = &ctx.config;
    let now = now_ms();
    let mut keys = Vec::new();
    if let Some(u) = user_id {
        keys.push(format!("acct:{u}"));
    }
    if let Some(ip) = &req.client_ip {
        keys.push(format!("ip:{ip}"));
    }
    let since = now.saturating_sub(cfg.login_failures_window_ms);
    // Count this attempt *before* checking the password, so that parallel guesses cannot all
    // pass the limit check first; a correct password takes its record back afterwards.
    let attempt = accounts::record_login_attempt(&ctx.db, &keys, since).await?;
    let failures = accounts::login_failures(&ctx.db, &keys, since).await?;
    for key in &keys {
        let max = if key.starts_with("acct:") { cfg.login_failures_account_max } else { cfg.login_failures_ip_max };
        // Everyone else's records: finished failures and attempts still being checked.
        let ts: Vec<u64> = failures.iter().filter(|(k, _, id)| k == key && !attempt.contains(id)).map(|(_, t, _)| *t).collect();
        if let Some(ms) = retry_after(ts, max, cfg.login_failures_window_ms, now) {
            // A refused attempt is not counted, so `retry_after_ms` stays exact.
            accounts::forget_login_attempt(&ctx.db, &attempt).await?;
            return Err(err!(ErrorKind::LimitExceeded { retry_after_ms: ms }, "Too many failed login attempts"));
        }
    }
    let user = match user_id {
        Some(u) => accounts::get_user(&ctx.db, u.as_str()).await?,
        None => None,
    };
    let ok = match user.as_ref().and_then(|u| u.password_hash.as_deref()) {
        Some(hash) => password::verify(password, hash).await?,
        None => {
            let _ = password::verify(password, DUMMY_HASH).await?;
            false
        }
    };
    match user {
        Some(user) if ok => {
            accounts::forget_login_attempt(&ctx.db, &attempt).await?;
            if user.deactivated != 0 {
                return Err(err!(UserDeactivated, "This account has been deactivated"));
            }
            // A hash of another cost than the configured one is made again now, while the
            // password is at hand (issue #17: the cost is a per-plan choice).
            if let Some(stored) = user.password_hash.as_deref().filter(|h| PasswordHash::needs_rehash(h, ctx.config.pbkdf2_iterations)) {
                let new = password::hash(password, ctx.config.pbkdf2_iterations).await?;
                accounts::rehash_password(&ctx.db, user.user_id.as_str(), stored, &new).await?;
            }
            Ok(user)
        }
        // A wrong password learns nothing about the account, deactivated or not.
        _ => Err(err!(Forbidden, "Invalid username or password")),
    }
}

/// `identifier: {type: "m.id.user", user}` or the deprecated top-level `user`.
#[derive(Deserialize, Default)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub user: Option<String>,
}

/// Resolves the user named by a login or UIA body. Only `m.id.user` is supported.
pub fn identified_user(ctx: &Ctx, identifier: Option<&Identifier>, legacy_user: Option<&str>) -> Result<Option<OwnedUserId>> {
    let name = match identifier {
        Some(id) => {
            match id.kind.as_deref() {
                Some("m.id.user") => {}
                Some(_) => return Err(err!(Unknown, "Only m.id.user identifiers are supported")),
                None => return Err(err!(BadJson, "identifier.type is required")),
            }
            id.user.as_deref().ok_or_else(|| err!(BadJson, "identifier.user is required"))?
        }
        None => legacy_user.ok_or_else(|| err!(BadJson, "identifier is required"))?,
    };
    Ok(local_user_from_input(name, &ctx.config.server_name))
}

#[derive(Deserialize)]
struct AuthDict {
    #[serde(rename = "type")]
    kind: Option<String>,
    session: Option<String>,
    identifier: Option<Identifier>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// Runs one step of user-interactive auth for `operation` with the body's `auth` dict.
/// `Ok(())` once a flow is complete; otherwise the 401 body as [`Error::Uia`].
/// `user` is the logged-in user for whom the operation runs (`None` for registration).
pub async fn user_interactive_auth(ctx: &Ctx, req: &Request, body: &Value, operation: &str, flows: &Flows, user: Option<&UserId>) -> Result<()> {
    let db = &ctx.db;
    let auth = match body.get("auth") {
        None | Some(Value::Null) => {
            let session = uia_store::create(db, operation, user.map(|u| u.as_str())).await?;
            return Err(Error::Uia(challenge(ctx, flows, &session, &[], None)));
        }
        Some(a) => parse_json::<AuthDict>(a.clone())?,
    };

    let session = match &auth.session {
        Some(id) => {
            let s = uia_store::get(db, id).await?.ok_or_else(|| err!(Unknown, "Unknown or expired session ID"))?;
            if s.operation != operation || s.user_id.as_deref() != user.map(|u| u.as_str()) {
                return Err(err!(Forbidden, "This session belongs to another operation"));
            }
            s.session_id
        }
        None => uia_store::create(db, operation, user.map(|u| u.as_str())).await?,
    };
    let stored = uia_store::get(db, &session).await?;
    let mut completed = stored.map(|s| s.completed()).unwrap_or_default();

    let Some(kind) = auth.kind.as_deref() else {
        // No stage attempted: done if a stage was completed out of band (`m.oauth`, in the
        // account page), else report progress.
        if flows.is_complete(&completed) {
            // Ends the session, counting a registration token use it held as completed.
            crate::store::admin::finish_uia_session(db, &session).await?;
            return Ok(());
        }
        return Err(Error::Uia(challenge(ctx, flows, &session, &completed, None)));
    };
    if !flows.offers(kind) {
        return Err(Error::Uia(challenge(ctx, flows, &session, &completed, Some(("M_UNRECOGNIZED", "Unsupported stage")))));
    }

    let fail = |code: &str, msg: &str| Error::Uia(challenge(ctx, flows, &session, &completed, Some((code, msg))));
    match kind {
        uia::DUMMY => {}
        uia::REGISTRATION_TOKEN => {
            let given = auth.token.as_deref().unwrap_or("");
            // Configured tokens, or admin-managed ones (a use reserved for this session).
            if !crate::service::admin::tokens::pass_stage(ctx, &session, given).await? {
                return Err(fail("M_FORBIDDEN", "Invalid registration token"));
            }
        }
        uia::PASSWORD => {
            let me = user.ok_or_else(|| Error::internal("password stage without a user"))?;
            let named = identified_user(ctx, auth.identifier.as_ref(), auth.user.as_deref())?;
            if named.as_deref() != Some(me) {
                return Err(fail("M_FORBIDDEN", "You can only authenticate as yourself"));
            }
            let password = auth.password.as_deref().unwrap_or("");
            match check_password(ctx, req, Some(me), password).await {
                Ok(_) => {}
                Err(Error::Matrix(ErrorKind::Forbidden, msg)) => return Err(fail("M_FORBIDDEN", &msg)),
                Err(e) => return Err(e),
            }
        }
        // Completed only by approving in the account page, which marks the session.
        uia::OAUTH if !completed.iter().any(|c| c == uia::OAUTH) => {
            return Err(fail("M_FORBIDDEN", "Approve this in your account page first"));
        }
        uia::OAUTH => {}
        _ => return Err(fail("M_UNRECOGNIZED", "Unsupported stage")),
    }

    if !completed.iter().any(|c| c == kind) {
        completed.push(kind.to_owned());
    }
    if flows.is_complete(&completed) {
        // Ends the session, counting a registration token use it held as completed.
        crate::store::admin::finish_uia_session(db, &session).await?;
        Ok(())
    } else {
        uia_store::set_completed(db, &session, &completed).await?;
        Err(Error::Uia(challenge(ctx, flows, &session, &completed, None)))
    }
}

/// The 401 body, with the account page URL that approves the session when `m.oauth` is
/// offered (spec: "OAuth authentication", `m.oauth` params).
fn challenge(ctx: &Ctx, flows: &Flows, session: &str, completed: &[String], error: Option<(&str, &str)>) -> Value {
    let mut body = flows.challenge(session, completed, error);
    if flows.offers(uia::OAUTH) {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("action", "org.matrix.cross_signing_reset").append_pair("session", session);
        let url = format!("{}/account?{}", ctx.config.public_baseurl.trim_end_matches('/'), q.finish());
        if let Some(params) = body.object_at("params") {
            params.insert(uia::OAUTH.to_owned(), serde_json::json!({ "url": url }));
        }
    }
    body
}

/// Refuses an empty or absurdly long new password (cheap: no hashing).
pub fn check_new_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(err!(MissingParam, "A password is required"));
    }
    if password.len() > 512 {
        return Err(err!(InvalidParam, "Password too long"));
    }
    Ok(())
}

/// Hashes a new password with the configured cost, after [`check_new_password`].
pub async fn new_password_hash(ctx: &Ctx, password: &str) -> Result<String> {
    check_new_password(password)?;
    password::hash(password, ctx.config.pbkdf2_iterations).await
}
