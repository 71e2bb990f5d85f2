//! The account management pages (spec: client-server-api, "Account management",
//! "Account management URL actions"; MSC4191): `GET /account?action=…[&device_id=…]`.
//!
//! Actions: `org.matrix.profile` (display name), `org.matrix.devices_list` (sessions),
//! `org.matrix.device_view` and `org.matrix.device_delete` (one session; ending it deletes
//! the device, so its tokens, legacy or OAuth, stop at once). MSC4191's earlier names
//! (`org.matrix.sessions_list`, `org.matrix.session_view`, `org.matrix.session_end`) work
//! too. `org.matrix.cross_signing_reset` approves the `m.oauth` UIA stage of an app's pending
//! cross-signing key upload (spec v1.17, "OAuth authentication"). The browser signs in with
//! the password; every form carries a CSRF token bound to that sign-in.

use super::{browser_user, csrf_cookie, oauth, secure, sign_in_browser, CSRF_COOKIE, SESSION_COOKIE};
use crate::api::auth::check_password;
use crate::core::config::OAuthConfig;
use crate::core::ids::local_user_from_input;
use crate::core::oauth::form::{check_csrf, csrf_token};
use crate::core::oauth::html::{self, ClientInfo, DeviceInfo};
use crate::core::oauth::{cookie, param, parse_form, redirect, set_cookie};
use crate::core::uia;
use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Request, Response};
use crate::store::accounts::{self, ProfileField};
use crate::store::oauth as store;
use crate::store::uia as uia_store;

const BASE: &str = "/account";

/// The canonical action name.
fn action_name(a: &str) -> &'static str {
    match a {
        "org.matrix.devices_list" | "org.matrix.sessions_list" => "org.matrix.devices_list",
        "org.matrix.device_view" | "org.matrix.session_view" => "org.matrix.device_view",
        "org.matrix.device_delete" | "org.matrix.session_end" => "org.matrix.device_delete",
        "org.matrix.cross_signing_reset" => "org.matrix.cross_signing_reset",
        _ => "org.matrix.profile",
    }
}

fn target(action: &str, device_id: Option<&str>, session: Option<&str>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("action", action_name(action));
    if let Some(d) = device_id {
        ser.append_pair("device_id", d);
    }
    if let Some(s) = session {
        ser.append_pair("session", s);
    }
    format!("{BASE}?{}", ser.finish())
}

fn login(ctx: &Ctx, o: &OAuthConfig, req: &Request, status: u16, error: Option<&str>, next: &str) -> Response {
    let (csrf, set) = csrf_cookie(ctx, req);
    let token = csrf_token(&o.form_key, "account-login", &csrf);
    let body = html::login_page(ctx.server_name(), BASE, &[("csrf", &token), ("next", next)], &ClientInfo::default(), error, "", None);
    html::response(status, body, set.into_iter().collect())
}

/// # `GET /account`
pub async fn account_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let o = oauth(ctx)?;
    let action = req.query("action").unwrap_or("org.matrix.profile");
    let device_id = req.query("device_id");
    let uia_session = req.query("session");
    let Some((session, user)) = browser_user(ctx, req).await? else {
        return Ok(login(ctx, o, req, 200, None, &target(action, device_id, uia_session)));
    };
    let csrf = csrf_token(&o.form_key, "account", &session);
    if action_name(action) == "org.matrix.cross_signing_reset" {
        return reset_page(ctx, &csrf, &user, uia_session, false).await;
    }
    show(ctx, &csrf, &user, action_name(action), device_id, None).await
}

/// The UIA session of a pending cross-signing key upload by `user`, if `id` is one.
async fn pending_reset(ctx: &Ctx, user: &str, id: Option<&str>) -> Result<Option<uia_store::Session>> {
    let Some(id) = id else { return Ok(None) };
    Ok(uia_store::get(&ctx.db, id).await?.filter(|s| s.operation == uia::CROSS_SIGNING_UPLOAD && s.user_id.as_deref() == Some(user)))
}

/// `org.matrix.cross_signing_reset`: approves the `m.oauth` stage of the app's pending
/// `/keys/device_signing/upload` (its UIA session is in the URL the app opened).
async fn reset_page(ctx: &Ctx, csrf: &str, user: &str, uia_session: Option<&str>, approve: bool) -> Result<Response> {
    let Some(pending) = pending_reset(ctx, user, uia_session).await? else {
        return Ok(html::response(
            404,
            html::error_page("No identity reset to approve", "Start resetting your identity in your Matrix app; it will bring you back here."),
            vec![],
        ));
    };
    if approve {
        let mut completed = pending.completed();
        if !completed.iter().any(|c| c == uia::OAUTH) {
            completed.push(uia::OAUTH.to_owned());
        }
        uia_store::set_completed(&ctx.db, &pending.session_id, &completed).await?;
    }
    Ok(html::response(200, html::account_cross_signing_reset(BASE, csrf, &pending.session_id, approve), vec![]))
}

async fn show(ctx: &Ctx, csrf: &str, user: &str, action: &str, device_id: Option<&str>, notice: Option<&str>) -> Result<Response> {
    let body = match (action, device_id) {
        ("org.matrix.device_view" | "org.matrix.device_delete", Some(d)) => match accounts::get_device(&ctx.db, user, d).await? {
            Some(dev) => html::account_device(
                BASE,
                csrf,
                &DeviceInfo {
                    device_id: &dev.device_id,
                    display_name: dev.display_name.as_deref(),
                    last_seen_ip: dev.last_seen_ip.as_deref(),
                    last_seen_ts: dev.last_seen_ts,
                },
                action == "org.matrix.device_delete",
            ),
            None => return Ok(html::response(404, html::error_page("Session not found", "There is no such session on your account."), vec![])),
        },
        ("org.matrix.devices_list" | "org.matrix.device_view" | "org.matrix.device_delete", _) => {
            let devices = accounts::list_devices(&ctx.db, user).await?;
            let rows: Vec<DeviceInfo> = devices
                .iter()
                .map(|d| DeviceInfo {
                    device_id: &d.device_id,
                    display_name: d.display_name.as_deref(),
                    last_seen_ip: d.last_seen_ip.as_deref(),
                    last_seen_ts: d.last_seen_ts,
                })
                .collect();
            html::account_devices(BASE, csrf, &rows, notice)
        }
        _ => {
            let u = accounts::get_user(&ctx.db, user).await?;
            html::account_profile(BASE, csrf, user, u.as_ref().and_then(|u| u.displayname.as_deref()), notice)
        }
    };
    Ok(html::response(200, body, vec![]))
}

/// # `POST /account`
/// `action`: `login`, `signout`, `org.matrix.profile` (set the display name) or
/// `org.matrix.device_delete` (end a session).
pub async fn account_post_route(ctx: &Ctx, req: &Request) -> Result<Response> {
    let o = oauth(ctx)?;
    let Some(f) = parse_form(&req.body) else {
        return Ok(html::response(400, html::error_page("Bad request", "Malformed form"), vec![]));
    };
    let presented = param(&f, "csrf").unwrap_or("");
    let forbidden = || html::response(403, html::error_page("Cannot continue", "This page has expired. Reload it and try again."), vec![]);
    let action = param(&f, "action").unwrap_or("");
    if action == "login" {
        let next = param(&f, "next").filter(|n| n.starts_with("/account?")).unwrap_or(BASE).to_owned();
        let csrf_ok = cookie(req.header("cookie"), CSRF_COOKIE).is_some_and(|c| check_csrf(&o.form_key, "account-login", c, presented));
        if !csrf_ok {
            return Ok(forbidden());
        }
        let user_id = local_user_from_input(param(&f, "username").unwrap_or(""), &ctx.config.server_name);
        return match check_password(ctx, req, user_id.as_deref(), param(&f, "password").unwrap_or("")).await {
            Ok(user) => {
                let set = sign_in_browser(ctx, &user.user_id).await?;
                let mut r = redirect(&next);
                r.headers.push(set);
                Ok(r)
            }
            Err(Error::Matrix(ErrorKind::Forbidden, _)) => Ok(login(ctx, o, req, 401, Some("Invalid username or password."), &next)),
            Err(Error::Matrix(ErrorKind::LimitExceeded { .. }, _)) => {
                Ok(login(ctx, o, req, 429, Some("Too many failed attempts. Try again later."), &next))
            }
            Err(Error::Matrix(ErrorKind::UserDeactivated, _)) => Ok(login(ctx, o, req, 403, Some("This account has been deactivated."), &next)),
            Err(e) => Err(e),
        };
    }
    let Some((session, user)) = browser_user(ctx, req).await? else {
        return Ok(login(ctx, o, req, 401, Some("Please sign in."), BASE));
    };
    if !check_csrf(&o.form_key, "account", &session, presented) {
        return Ok(forbidden());
    }
    let csrf = csrf_token(&o.form_key, "account", &session);
    match action_name(action) {
        _ if action == "signout" => {
            store::delete_browser_session(&ctx.db, &session).await?;
            let mut r = redirect(BASE);
            r.headers.push(set_cookie(SESSION_COOKIE, "", "/", 0, secure(ctx)));
            Ok(r)
        }
        "org.matrix.device_delete" => {
            let Some(d) = param(&f, "device_id") else {
                return Ok(html::response(400, html::error_page("Bad request", "device_id is required"), vec![]));
            };
            if accounts::get_device(&ctx.db, &user, d).await?.is_none() {
                return Ok(html::response(404, html::error_page("Session not found", "There is no such session on your account."), vec![]));
            }
            crate::service::keys::remove_devices(&ctx.env, &ctx.db, &ctx.config, &user, &[d.to_owned()]).await?;
            show(ctx, &csrf, &user, "org.matrix.devices_list", None, Some(&format!("Session {d} has been signed out."))).await
        }
        "org.matrix.cross_signing_reset" => reset_page(ctx, &csrf, &user, param(&f, "session"), true).await,
        "org.matrix.profile" if action == "org.matrix.profile" => {
            let name = param(&f, "displayname").map(str::trim).filter(|n| !n.is_empty());
            if name.is_some_and(|n| n.chars().count() > 256) {
                return Ok(html::response(400, html::error_page("Bad request", "Display name too long"), vec![]));
            }
            accounts::set_profile_field(&ctx.db, &user, ProfileField::Displayname, name).await?;
            show(ctx, &csrf, &user, "org.matrix.profile", None, Some("Profile saved.")).await
        }
        _ => Ok(html::response(400, html::error_page("Bad request", "Unknown action"), vec![])),
    }
}
