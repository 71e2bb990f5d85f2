//! The authorisation request (spec: client-server-api, "Authorisation code flow",
//! "Callback"; RFC 6749 section 4.1; RFC 7636) and the grant its code stands for.

use serde::{Deserialize, Serialize};

use super::client::{redirect_matches, ClientMetadata};
use super::{param, pkce, scope};

/// A checked authorisation request, carried (sealed) through the login form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The granted scope string.
    pub scope: String,
    pub device_id: String,
    pub openid: bool,
    pub state: Option<String>,
    /// `query` or `fragment`.
    pub response_mode: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// `prompt=create`: the user wants to register (OIDC "prompt=create").
    pub create: bool,
    /// `prompt=login`: sign in again even if the browser is signed in (OIDC Core 3.1.2.1).
    #[serde(default)]
    pub login: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect
    /// (RFC 6749 section 4.1.2.1).
    Page(String),
    /// Send the error back to the client's redirect URI.
    Redirect { redirect_uri: String, response_mode: String, state: Option<String>, error: &'static str, description: String },
}

const MAX_PARAM: usize = 2048;

/// Checks the query of `GET /oauth/authorize` for a known client.
pub fn validate(q: &[(String, String)], client_id: &str, client: &ClientMetadata) -> Result<AuthRequest, AuthorizeError> {
    if q.iter().any(|(_, v)| v.len() > MAX_PARAM) {
        return Err(AuthorizeError::Page("A request parameter is too long".into()));
    }
    let redirect_uri = match param(q, "redirect_uri") {
        Some(r) if redirect_matches(client, r) => r.to_owned(),
        Some(_) => return Err(AuthorizeError::Page("The redirect URI is not registered for this client".into())),
        None => match client.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => return Err(AuthorizeError::Page("redirect_uri is required".into())),
        },
    };
    let state = param(q, "state").map(str::to_owned);
    let (response_mode, bad_mode) = match param(q, "response_mode") {
        None | Some("query") => ("query".to_owned(), false),
        Some("fragment") => ("fragment".to_owned(), false),
        Some(_) => ("query".to_owned(), true),
    };
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        response_mode: response_mode.clone(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if bad_mode {
        return Err(fail("invalid_request", "response_mode must be query or fragment"));
    }
    match param(q, "response_type") {
        Some("code") => {}
        Some(_) => return Err(fail("unsupported_response_type", "Only the code response type is supported")),
        None => return Err(fail("invalid_request", "response_type is required")),
    }
    if param(q, "code_challenge_method") != Some("S256") {
        return Err(fail("invalid_request", "PKCE with code_challenge_method S256 is required"));
    }
    let code_challenge = param(q, "code_challenge").filter(|c| pkce::valid_challenge(c));
    let Some(code_challenge) = code_challenge else {
        return Err(fail("invalid_request", "code_challenge is missing or malformed"));
    };
    let scope = scope::parse(param(q, "scope").unwrap_or("")).map_err(|e| fail("invalid_scope", &e))?;
    let prompt: Vec<&str> = param(q, "prompt").unwrap_or("").split(' ').filter(|p| !p.is_empty()).collect();
    if prompt.contains(&"none") {
        return Err(fail("login_required", "The user must sign in"));
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri,
        scope: scope.as_string(),
        device_id: scope.device_id,
        openid: scope.openid,
        state,
        response_mode,
        code_challenge: code_challenge.to_owned(),
        nonce: param(q, "nonce").map(str::to_owned),
        create: prompt.contains(&"create"),
        login: prompt.contains(&"login"),
    })
}

/// The callback URL with `params` in the query or the fragment ("Callback").
pub fn callback_url(redirect_uri: &str, response_mode: &str, params: &[(&str, &str)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    if response_mode == "fragment" {
        format!("{redirect_uri}#{encoded}")
    } else if redirect_uri.contains('?') {
        format!("{redirect_uri}&{encoded}")
    } else {
        format!("{redirect_uri}?{encoded}")
    }
}

/// The callback for a refused request.
pub fn error_callback(e: &AuthorizeError) -> Option<String> {
    let AuthorizeError::Redirect { redirect_uri, response_mode, state, error, description } = e else { return None };
    let mut params = vec![("error", *error), ("error_description", description.as_str())];
    if let Some(s) = state {
        params.push(("state", s));
    }
    Some(callback_url(redirect_uri, response_mode, &params))
}

/// What an authorisation code stands for; stored in KV under the code's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub device_id: String,
    pub openid: bool,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub user_id: String,
    /// When the user authenticated (seconds), for the ID token's `auth_time`.
    pub auth_time: u64,
}

impl CodeGrant {
    pub fn new(r: &AuthRequest, user_id: &str, auth_time: u64) -> Self {
        CodeGrant {
            client_id: r.client_id.clone(),
            redirect_uri: r.redirect_uri.clone(),
            scope: r.scope.clone(),
            device_id: r.device_id.clone(),
            openid: r.openid,
            code_challenge: r.code_challenge.clone(),
            nonce: r.nonce.clone(),
            user_id: user_id.to_owned(),
            auth_time,
        }
    }

    /// Checks a token request against the grant (RFC 6749 section 4.1.3, RFC 7636 4.6).
    /// The error is the `invalid_grant` description.
    pub fn check(&self, client_id: &str, redirect_uri: Option<&str>, verifier: Option<&str>) -> Result<(), &'static str> {
        if self.client_id != client_id {
            return Err("The code was issued to another client");
        }
        if redirect_uri != Some(self.redirect_uri.as_str()) {
            return Err("redirect_uri does not match the authorisation request");
        }
        match verifier {
            Some(v) if pkce::verify_s256(v, &self.code_challenge) => Ok(()),
            Some(_) => Err("The PKCE code_verifier does not match the code_challenge"),
            None => Err("code_verifier is required"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::oauth::client::validate as validate_client;
    use crate::http::parse_query;
    use serde_json::json;

    fn client() -> ClientMetadata {
        validate_client(&json!({
            "client_uri": "https://example.com/",
            "redirect_uris": ["http://127.0.0.1/cb", "com.example.app:/cb"],
            "application_type": "native",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .unwrap()
    }

    const CH: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn q(extra: &str) -> Vec<(String, String)> {
        parse_query(&format!(
            "response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcb&scope=urn%3Amatrix%3Aclient%3Aapi%3A*+urn%3Amatrix%3Aclient%3Adevice%3ADEV1+openid&state=st&code_challenge={CH}&code_challenge_method=S256{extra}"
        ))
    }

    #[test]
    fn good_request() {
        let r = validate(&q("&nonce=n1&response_mode=fragment&prompt=create"), "c", &client()).unwrap();
        assert_eq!(r.redirect_uri, "http://127.0.0.1:4000/cb");
        assert_eq!(r.device_id, "DEV1");
        assert!(r.openid && r.create && !r.login);
        assert!(validate(&q("&prompt=login"), "c", &client()).unwrap().login);
        assert_eq!(r.response_mode, "fragment");
        assert_eq!(r.nonce.as_deref(), Some("n1"));
    }

    #[test]
    fn bad_requests() {
        let c = client();
        let page = |extra: Vec<(String, String)>| matches!(validate(&extra, "c", &c), Err(AuthorizeError::Page(_)));
        let mut bad_uri = q("");
        bad_uri.retain(|(k, _)| k != "redirect_uri");
        bad_uri.push(("redirect_uri".into(), "https://evil.example/cb".into()));
        assert!(page(bad_uri.clone()));
        let redirect_err = |query: Vec<(String, String)>| match validate(&query, "c", &c) {
            Err(AuthorizeError::Redirect { error, .. }) => error,
            other => panic!("{other:?}"),
        };
        let without = |k: &str| q("").into_iter().filter(|(x, _)| x != k).collect::<Vec<_>>();
        assert_eq!(redirect_err(without("code_challenge_method")), "invalid_request");
        assert_eq!(redirect_err(without("code_challenge")), "invalid_request");
        assert_eq!(redirect_err(without("scope")), "invalid_scope");
        assert_eq!(redirect_err(without("response_type")), "invalid_request");
        let mut plain = without("code_challenge_method");
        plain.push(("code_challenge_method".into(), "plain".into()));
        assert_eq!(redirect_err(plain), "invalid_request");
        let mut token = without("response_type");
        token.push(("response_type".into(), "token".into()));
        assert_eq!(redirect_err(token), "unsupported_response_type");
        assert_eq!(redirect_err(q("&prompt=none")), "login_required");
    }

    #[test]
    fn callbacks() {
        assert_eq!(callback_url("http://127.0.0.1/cb", "query", &[("code", "a b"), ("state", "s&")]), "http://127.0.0.1/cb?code=a+b&state=s%26");
        assert_eq!(callback_url("https://a.example/cb?x=1", "query", &[("code", "c")]), "https://a.example/cb?x=1&code=c");
        assert_eq!(callback_url("https://a.example/cb", "fragment", &[("code", "c")]), "https://a.example/cb#code=c");
        let e = validate(&q("&response_mode=fragment&prompt=none"), "c", &client()).unwrap_err();
        let url = error_callback(&e).unwrap();
        assert!(url.starts_with("http://127.0.0.1:4000/cb#error=login_required"), "{url}");
        assert!(url.ends_with("&state=st"));
    }

    #[test]
    fn code_checks() {
        let r = validate(&q(""), "c", &client()).unwrap();
        let g = CodeGrant::new(&r, "@a:x", 5);
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(g.check("c", Some("http://127.0.0.1:4000/cb"), Some(v)).is_ok());
        assert!(g.check("d", Some("http://127.0.0.1:4000/cb"), Some(v)).is_err());
        assert!(g.check("c", Some("http://127.0.0.1/cb"), Some(v)).is_err());
        assert!(g.check("c", None, Some(v)).is_err());
        assert!(g.check("c", Some("http://127.0.0.1:4000/cb"), Some(&v.replace('d', "e"))).is_err());
        assert!(g.check("c", Some("http://127.0.0.1:4000/cb"), None).is_err());
    }
}
