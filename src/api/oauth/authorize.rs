//! The authorisation endpoint and its HTML pages (spec: client-server-api, "Authorisation
//! code flow", "User registration"; RFC 6749 section 4.1; RFC 7636).
//!
//! `GET` checks the request and shows a page: sign in, create an account (`prompt=create`
//! when registration is open), or "continue as" for a browser already signed in. The page
//! carries the checked request sealed with an HMAC and bound to a CSRF cookie; its `POST`
//! authenticates the user (the same `check_password` and rate limits as `/login`) and
//! redirects to the client with `code` and `state` in the query or the fragment.

use serde::{Deserialize, Serialize};

use super::{browser_user, csrf_cookie, oauth, sign_in_browser, CSRF_COOKIE};
use crate::api::auth::{check_password, new_password_hash};
use crate::core::config::RegistrationMode;
use crate::core::crypto::{ct_eq, random_token, token_hash};
use crate::core::ids::{local_user_from_input, validate_new_localpart};
use crate::core::oauth::authorize::{callback_url, error_callback, validate, AuthRequest, AuthorizeError, CodeGrant};
use crate::core::oauth::client::ClientMetadata;
use crate::core::oauth::form::{open, seal};
use crate::core::oauth::html::{self, ClientInfo};
use crate::core::oauth::{cookie, param, parse_form, redirect};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Request, Response};
use crate::store::{accounts, oauth as store};

/// How long a login page stays usable.
const PENDING_SECS: u64 = 900;

/// The authorisation request as carried by the page.
#[derive(Serialize, Deserialize)]
struct Pending {
    req: AuthRequest,
    /// Hash of the browser's CSRF cookie.
    csrf: String,
    exp: u64,
    /// The original query string, to switch between sign-in and registration.
    query: String,
}

fn error_page(status: u16, msg: &str) -> Response {
    html::response(status, html::error_page("Cannot continue", msg), vec![])
}

fn query_string(pairs: &[(String, String)], create: bool) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "prompt") {
        ser.append_pair(k, v);
    }
    if create {
        ser.append_pair("prompt", "create");
    }
    ser.finish()
}

fn registration_open(ctx: &Ctx) -> bool {
    ctx.config.registration_mode != RegistrationMode::Closed
}

enum View<'a> {
    Login(Option<&'a str>, &'a str),
    Register(Option<&'a str>, &'a str),
    Consent(&'a str),
}

fn render(ctx: &Ctx, status: u16, client: &ClientMetadata, sealed: &str, query: &str, view: View, headers: Vec<(String, String)>) -> Response {
    let server = ctx.server_name();
    let action = "/oauth/authorize";
    let info = ClientInfo { name: client.client_name.as_deref().or(Some(&client.client_uri)), uri: Some(&client.client_uri) };
    let fields = [("req", sealed)];
    let pairs = crate::http::parse_query(query);
    let login_url = format!("/oauth/authorize?{}", query_string(&pairs, false));
    let register_url = format!("/oauth/authorize?{}", query_string(&pairs, true));
    let body = match view {
        View::Login(error, username) => {
            html::login_page(server, action, &fields, &info, error, username, registration_open(ctx).then_some(register_url.as_str()))
        }
        View::Register(error, username) => {
            html::register_page(server, action, &fields, &info, error, username, ctx.config.registration_mode == RegistrationMode::Token, &login_url)
        }
        View::Consent(user) => html::consent_page(server, action, &fields, &info, user),
    };
    html::response(status, body, headers)
}

/// # `GET /oauth/authorize`
pub async fn authorize_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let o = oauth(ctx)?;
    let Some(client_id) = req.query("client_id") else { return Ok(error_page(400, "client_id is required")) };
    let Some(client) = store::get_client(&ctx.db, client_id).await? else {
        return Ok(error_page(400, "This application is not registered with the server"));
    };
    let r = match validate(&req.query, client_id, &client) {
        Ok(r) => r,
        Err(e) => {
            return Ok(match (&e, error_callback(&e)) {
                (_, Some(url)) => redirect(&url),
                (AuthorizeError::Page(msg), None) => error_page(400, msg),
                _ => error_page(400, "Invalid request"),
            })
        }
    };
    let (csrf, set) = csrf_cookie(ctx, req);
    let create = r.create && registration_open(ctx);
    let query = query_string(&req.query, false);
    let login_forced = r.login;
    let sealed = seal(&o.form_key, &Pending { req: r, csrf: token_hash(&csrf), exp: now_ms() / 1000 + PENDING_SECS, query: query.clone() });
    let headers: Vec<(String, String)> = set.into_iter().collect();
    let view_user = if create || login_forced { None } else { browser_user(ctx, req).await?.map(|(_, u)| u) };
    let view = match (&view_user, create) {
        (_, true) => View::Register(None, ""),
        (Some(u), false) => View::Consent(u),
        (None, false) => View::Login(None, ""),
    };
    Ok(render(ctx, 200, &client, &sealed, &query, view, headers))
}

/// # `POST /oauth/authorize`
/// The page's form: `action` is `login`, `register`, `consent`, `switch` or `cancel`.
pub async fn authorize_post_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let o = oauth(ctx)?;
    let Some(f) = parse_form(&req.body) else { return Ok(error_page(400, "Malformed form")) };
    let expired = "This page has expired or did not come from this site. Go back to the application and try again.";
    let Some(sealed) = param(&f, "req") else { return Ok(error_page(400, expired)) };
    let Some(p) = open::<Pending>(&o.form_key, sealed) else { return Ok(error_page(400, expired)) };
    let cookie_ok = cookie(req.header("cookie"), CSRF_COOKIE).is_some_and(|c| ct_eq(token_hash(c).as_bytes(), p.csrf.as_bytes()));
    if p.exp <= now_ms() / 1000 || !cookie_ok {
        return Ok(error_page(403, expired));
    }
    let Some(client) = store::get_client(&ctx.db, &p.req.client_id).await? else {
        return Ok(error_page(400, "This application is not registered with the server"));
    };
    let r = &p.req;
    let username = param(&f, "username").unwrap_or("").trim();
    let password = param(&f, "password").unwrap_or("");
    let page = |status: u16, view: View| Ok(render(ctx, status, &client, sealed, &p.query, view, vec![]));
    match param(&f, "action").unwrap_or("login") {
        "cancel" => {
            let mut params = vec![("error", "access_denied"), ("error_description", "The user cancelled the sign-in")];
            if let Some(s) = &r.state {
                params.push(("state", s));
            }
            Ok(redirect(&callback_url(&r.redirect_uri, &r.response_mode, &params)))
        }
        "switch" => page(200, View::Login(None, "")),
        "consent" => match browser_user(ctx, req).await? {
            Some((_, user)) => complete(ctx, r, &user, None).await,
            None => page(401, View::Login(Some("Please sign in."), "")),
        },
        "login" => {
            let user_id = local_user_from_input(username, &ctx.config.server_name);
            match check_password(ctx, req, user_id.as_deref(), password).await {
                Ok(user) => {
                    let set = sign_in_browser(ctx, &user.user_id).await?;
                    complete(ctx, r, &user.user_id, Some(set)).await
                }
                Err(Error::Matrix(ErrorKind::Forbidden, _)) => page(401, View::Login(Some("Invalid username or password."), username)),
                Err(Error::Matrix(ErrorKind::LimitExceeded { retry_after_ms }, _)) => {
                    let msg = format!("Too many failed attempts. Try again in {} seconds.", retry_after_ms.div_ceil(1000));
                    page(429, View::Login(Some(&msg), username))
                }
                Err(Error::Matrix(ErrorKind::UserDeactivated, _)) => page(403, View::Login(Some("This account has been deactivated."), username)),
                Err(e) => Err(e),
            }
        }
        "register" => {
            if !registration_open(ctx) {
                return page(403, View::Login(Some("Registration is closed on this server."), ""));
            }
            let lp = username.trim_start_matches('@').split(':').next().unwrap_or("").to_lowercase();
            if ctx.config.registration_mode == RegistrationMode::Token {
                let t = param(&f, "registration_token").unwrap_or("");
                if !ctx.config.registration_tokens.iter().any(|x| ct_eq(x.as_bytes(), t.as_bytes())) {
                    return page(403, View::Register(Some("Invalid registration token."), username));
                }
            }
            if password != param(&f, "password2").unwrap_or("") {
                return page(400, View::Register(Some("The passwords do not match."), username));
            }
            let user_id = match validate_new_localpart(&lp, &ctx.config.server_name, &ctx.config.reserved_localparts, false) {
                Ok(u) => u,
                Err(Error::Matrix(_, msg)) => return page(400, View::Register(Some(&msg), username)),
                Err(e) => return Err(e),
            };
            let hash = match new_password_hash(ctx, password).await {
                Ok(h) => h,
                Err(Error::Matrix(_, msg)) => return page(400, View::Register(Some(&msg), username)),
                Err(e) => return Err(e),
            };
            if !accounts::create_user(&ctx.db, user_id.as_str(), &hash, &lp, false).await? {
                return page(409, View::Register(Some("That username is taken."), username));
            }
            let set = sign_in_browser(ctx, user_id.as_str()).await?;
            complete(ctx, r, user_id.as_str(), Some(set)).await
        }
        _ => Ok(error_page(400, "Unknown action")),
    }
}

/// Issues the code (KV, ten minutes) and redirects to the client with `code` and `state`.
async fn complete(ctx: &Ctx, r: &AuthRequest, user_id: &str, set_cookie: Option<(String, String)>) -> Result<Response> {
    let code = random_token("oac");
    store::put_code(&ctx.kv()?, &code, &CodeGrant::new(r, user_id, now_ms() / 1000)).await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &r.state {
        params.push(("state", s));
    }
    let mut resp = redirect(&callback_url(&r.redirect_uri, &r.response_mode, &params));
    resp.headers.extend(set_cookie);
    Ok(resp)
}
