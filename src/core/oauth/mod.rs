//! The OAuth 2.0 / OpenID Connect provider (MSC3861; spec v1.19, client-server-api,
//! "OAuth 2.0 API"). Native logic only: the handlers live in `api::oauth`, the storage in
//! `store::oauth`.
//!
//! - [`pkce`]: PKCE `S256` (RFC 7636), required for every authorisation code.
//! - [`client`]: dynamic client registration metadata and redirect URI rules
//!   ("Client registration", "Redirect URI validation").
//! - [`scope`]: `urn:matrix:client:api:*`, `urn:matrix:client:device:<id>`, `openid`
//!   ("Scope").
//! - [`authorize`]: the authorisation request and the callback URL ("Authorisation code
//!   flow").
//! - [`jwt`]: the RS256 signing keys, the JWKS, access tokens and ID tokens.
//! - [`refresh`]: refresh token rotation and reuse detection ("Refresh token grant").
//! - [`form`]: signed form state, CSRF tokens and cookies for the HTML pages.
//! - [`html`]: the login, registration and account management pages (everything escaped).

pub mod authorize;
pub mod client;
pub mod form;
pub mod html;
pub mod jwt;
pub mod pkce;
pub mod refresh;
pub mod scope;

use serde_json::json;

use crate::error::{Error, ErrorKind};
use crate::http::Response;

/// An OAuth 2.0 error response (RFC 6749 section 5.2, RFC 7591 section 3.2.2, RFC 7009):
/// `{"error": "...", "error_description": "..."}`. The OAuth endpoints answer with these
/// instead of Matrix errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    /// `invalid_client` is 401 (RFC 6749 section 5.2), `server_error` 500, the rest 400.
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" | "invalid_token" => 401,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        };
        OAuthError { status, error, description: description.into() }
    }

    pub fn to_response(&self) -> Response {
        no_store(Response::json(self.status, &json!({ "error": self.error, "error_description": self.description })))
    }
}

/// `oauth_err!(invalid_grant, "code {} was used", x)`.
#[macro_export]
macro_rules! oauth_err {
    ($code:ident, $($fmt:tt)+) => {
        $crate::core::oauth::OAuthError::new(stringify!($code), format!($($fmt)+))
    };
}

impl From<Error> for OAuthError {
    /// Storage failures become `server_error` (already logged by [`Error::internal`]);
    /// a Matrix error met on the way (rate limits, deactivated users) keeps its message.
    fn from(e: Error) -> Self {
        match e {
            Error::Matrix(ErrorKind::Internal, _) => OAuthError::new("server_error", "Internal server error"),
            Error::Matrix(ErrorKind::LimitExceeded { .. }, m) => OAuthError::new("temporarily_unavailable", m),
            Error::Matrix(ErrorKind::UserDeactivated, m) => OAuthError::new("invalid_grant", m),
            Error::Matrix(_, m) => OAuthError::new("invalid_request", m),
            Error::Uia(_) => OAuthError::new("invalid_request", "Interactive auth is not available here"),
        }
    }
}

/// Token responses and errors must not be cached (RFC 6749 section 5.1).
pub fn no_store(mut r: Response) -> Response {
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r.headers.push(("Pragma".into(), "no-cache".into()));
    r
}

/// A `303 See Other` to `location` (after a form post the browser follows with GET).
pub fn redirect(location: &str) -> Response {
    no_store(Response { status: 303, headers: vec![("Location".into(), location.to_owned())], body: Vec::new(), stream: None })
}

/// Parses an `application/x-www-form-urlencoded` body (RFC 6749 section 4.1.3). A parameter
/// sent twice is an error (RFC 6749 section 3.2), reported as `None`.
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let pairs = crate::http::parse_query(text.trim());
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs.iter().take(i).any(|(k2, _)| k2 == k) {
            return None;
        }
    }
    Some(pairs)
}

/// The first value of `key` in decoded pairs.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').map(str::trim).find_map(|c| {
        let (k, v) = c.split_once('=')?;
        (k.trim() == name).then_some(v.trim())
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, `Secure` when served over https.
/// `max_age_secs == 0` deletes the cookie.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> (String, String) {
    let mut v = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax");
    if secure {
        v.push_str("; Secure");
    }
    ("Set-Cookie".into(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_follow_rfc6749() {
        let r = oauth_err!(invalid_grant, "code {} used", "x").to_response();
        assert_eq!(r.status, 400);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "code x used");
        assert!(r.headers.iter().any(|(k, v)| k == "Cache-Control" && v == "no-store"));
        assert_eq!(oauth_err!(invalid_client, "no").status, 401);
        let e: OAuthError = Error::internal("boom").into();
        assert_eq!((e.status, e.error), (500, "server_error"));
    }

    #[test]
    fn forms_and_cookies() {
        let f = parse_form(b"grant_type=authorization_code&code=a%2Bb&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb").unwrap();
        assert_eq!(param(&f, "code"), Some("a+b"));
        assert_eq!(param(&f, "redirect_uri"), Some("http://127.0.0.1/cb"));
        assert_eq!(param(&f, "nope"), None);
        assert!(parse_form(b"code=a&code=b").is_none());
        assert_eq!(cookie(Some("a=1; stratus_csrf=xyz ; b=2"), "stratus_csrf"), Some("xyz"));
        assert_eq!(cookie(Some("a=1"), "stratus_csrf"), None);
        assert_eq!(cookie(None, "a"), None);
        let (_, v) = set_cookie("s", "v", "/", 60, true);
        assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.ends_with("Secure"));
    }
}
