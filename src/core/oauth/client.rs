//! Client metadata for dynamic client registration (RFC 7591) with the spec's rules
//! (client-server-api, "Client metadata", "Redirect URI validation").
//!
//! Only public clients are supported (`token_endpoint_auth_method: none`, which the spec
//! requires servers to support), with the authorisation code and refresh token grants.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::{Host, Url};

/// Registered metadata, as stored and as returned to the client (without `client_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub client_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub response_types: Vec<String>,
    pub grant_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub application_type: String,
}

impl ClientMetadata {
    pub fn is_native(&self) -> bool {
        self.application_type == "native"
    }

    pub fn allows_refresh(&self) -> bool {
        self.grant_types.iter().any(|g| g == "refresh_token")
    }
}

/// A registration error: `invalid_redirect_uri` or `invalid_client_metadata`
/// (RFC 7591 section 3.2.2), with its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError(pub &'static str, pub String);

fn meta_err(msg: impl Into<String>) -> MetadataError {
    MetadataError("invalid_client_metadata", msg.into())
}

fn redirect_err(msg: impl Into<String>) -> MetadataError {
    MetadataError("invalid_redirect_uri", msg.into())
}

const MAX_STR: usize = 2048;

fn opt_str(v: &Value, key: &str) -> Result<Option<String>, MetadataError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_STR => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(meta_err(format!("{key} is too long"))),
        Some(_) => Err(meta_err(format!("{key} must be a string"))),
    }
}

fn opt_list(v: &Value, key: &str) -> Result<Option<Vec<String>>, MetadataError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.len() <= 32 => a
            .iter()
            .map(|x| x.as_str().filter(|s| s.len() <= MAX_STR).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| meta_err(format!("{key} must be a list of strings"))),
        Some(_) => Err(meta_err(format!("{key} must be a list of at most 32 strings"))),
    }
}

/// `host` is `base` or a subdomain of it.
fn host_within(host: &str, base: &str) -> bool {
    host == base || host.strip_suffix(base).is_some_and(|p| p.ends_with('.'))
}

/// An `https` URL without user or password, on the client URI's host or a subdomain of it
/// (the rule for `client_uri`, `logo_uri`, `tos_uri`, `policy_uri` and web redirect URIs).
fn https_within(raw: &str, base_host: Option<&str>) -> Result<Url, String> {
    let u = Url::parse(raw).map_err(|_| "is not a valid URL".to_string())?;
    if u.scheme() != "https" {
        return Err("must use the https scheme".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not contain a user or password".into());
    }
    let host = u.host_str().ok_or("must have a host")?;
    if let Some(base) = base_host {
        if !host_within(host, base) {
            return Err(format!("must be on {base} or one of its subdomains"));
        }
    }
    Ok(u)
}

/// Whether the authority of `raw` names a port (`host:port` or `[v6]:port`).
fn has_explicit_port(raw: &str) -> bool {
    let Some((_, rest)) = raw.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, after)| after.starts_with(':')),
        None => host_port.contains(':'),
    }
}

fn loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// Schemes a browser runs or reads locally instead of handing to an app. Never a redirect
/// target, whatever the client URI (the reverse-DNS rule alone would let a client whose
/// URI is `https://javascript/` register `javascript:…`; single-label hosts are refused
/// too, see [`client_uri_host`]).
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "vbscript", "data", "file", "blob", "about", "filesystem", "view-source"];

/// The host of a `client_uri`: a domain name of at least two labels. IP literals and
/// single-label names (`localhost`, `intranet`, `javascript`) identify no one, and their
/// reverse-DNS form would make any one-word scheme a valid private-use redirect scheme
/// (RFC 8252 section 7.1: the scheme is "based on a domain name under their control").
fn client_uri_host(u: &Url) -> Result<String, String> {
    let Some(Host::Domain(d)) = u.host() else {
        return Err("must name its host by a domain name".into());
    };
    if !d.contains('.') || d.split('.').any(str::is_empty) {
        return Err("must have a domain name with at least two labels".into());
    }
    Ok(d.to_owned())
}

/// Checks one redirect URI for a client whose `client_uri` host is `client_host`.
pub fn validate_redirect_uri(raw: &str, native: bool, client_host: &str) -> Result<(), String> {
    if raw.contains('#') {
        return Err("must not have a fragment".into());
    }
    // The URL parser drops surrounding blanks and tabs or newlines anywhere; the URI is
    // compared as registered later, so refuse them rather than store a different string.
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    let u = Url::parse(raw).map_err(|_| "is not a valid URL".to_string())?;
    if FORBIDDEN_SCHEMES.contains(&u.scheme()) {
        return Err(format!("must not use the {} scheme", u.scheme()));
    }
    match u.scheme() {
        "https" => https_within(raw, Some(client_host)).map(|_| ()),
        "http" if native => {
            if !u.username().is_empty() || u.password().is_some() {
                return Err("must not contain a user or password".into());
            }
            if !u.host_str().is_some_and(loopback) {
                return Err("http is only allowed on localhost, 127.0.0.1 or [::1]".into());
            }
            // Url drops the default port 80, so look at the text too.
            if u.port().is_some() || has_explicit_port(raw) {
                return Err("a loopback redirect URI must not have a port".into());
            }
            Ok(())
        }
        "http" => Err("web clients must use https".into()),
        scheme if native => {
            let reversed: Vec<&str> = client_host.rsplit('.').collect();
            let reversed = reversed.join(".");
            if scheme != reversed && !scheme.starts_with(&format!("{reversed}.")) {
                return Err(format!("a private-use scheme must start with {reversed}"));
            }
            if u.has_authority() || u.host().is_some() {
                return Err("a private-use scheme URI must not have an authority".into());
            }
            Ok(())
        }
        _ => Err("web clients must use https".into()),
    }
}

/// Validates a registration request body into the metadata to store.
pub fn validate(v: &Value) -> Result<ClientMetadata, MetadataError> {
    if !v.is_object() {
        return Err(meta_err("The body must be a JSON object"));
    }
    let client_uri = opt_str(v, "client_uri")?.ok_or_else(|| meta_err("client_uri is required"))?;
    let client_host = https_within(&client_uri, None).and_then(|u| client_uri_host(&u)).map_err(|e| meta_err(format!("client_uri {e}")))?;
    let application_type = opt_str(v, "application_type")?.unwrap_or_else(|| "web".into());
    let native = match application_type.as_str() {
        "web" => false,
        "native" => true,
        _ => return Err(meta_err("application_type must be web or native")),
    };
    // Human-readable links that break the rules (https, on the client URI's host or a
    // subdomain) are dropped rather than refused: RFC 7591 section 2 lets the server
    // replace metadata, the response shows what was kept, and clients such as web apps
    // whose terms live on a parent domain can still register.
    let uris = |key: &str| -> Result<Option<String>, MetadataError> {
        let Some(u) = opt_str(v, key)? else { return Ok(None) };
        Ok(https_within(&u, Some(&client_host)).is_ok().then_some(u))
    };
    let logo_uri = uris("logo_uri")?;
    let tos_uri = uris("tos_uri")?;
    let policy_uri = uris("policy_uri")?;

    let auth_method = opt_str(v, "token_endpoint_auth_method")?.unwrap_or_else(|| "none".into());
    if auth_method != "none" {
        return Err(meta_err("Only public clients (token_endpoint_auth_method none) are supported"));
    }
    // Unknown values are ignored (the spec says the server MUST ignore them).
    let grant_types: Vec<String> = opt_list(v, "grant_types")?
        .unwrap_or_else(|| vec!["authorization_code".into()])
        .into_iter()
        .filter(|g| g == "authorization_code" || g == "refresh_token")
        .fold(Vec::new(), |mut acc, g| {
            if !acc.contains(&g) {
                acc.push(g)
            }
            acc
        });
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(meta_err("grant_types must include authorization_code"));
    }
    let response_types: Vec<String> =
        opt_list(v, "response_types")?.unwrap_or_else(|| vec!["code".into()]).into_iter().filter(|r| r == "code").take(1).collect();
    if response_types.is_empty() {
        return Err(meta_err("response_types must include code"));
    }
    let redirect_uris = opt_list(v, "redirect_uris")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(redirect_err("At least one redirect URI is required"));
    }
    for r in &redirect_uris {
        validate_redirect_uri(r, native, &client_host).map_err(|e| redirect_err(format!("redirect URI {r} {e}")))?;
    }
    let client_name = opt_str(v, "client_name")?;
    if client_name.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return Err(meta_err("client_name is too long"));
    }
    Ok(ClientMetadata {
        client_name,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        redirect_uris,
        response_types,
        grant_types,
        token_endpoint_auth_method: auth_method,
        application_type,
    })
}

/// Whether `requested` is one of the registered redirect URIs: an exact match, except that
/// a native client's loopback URI matches on any port (RFC 8252 section 7.3, "Native
/// clients" in the spec).
pub fn redirect_matches(client: &ClientMetadata, requested: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == requested) {
        return true;
    }
    if !client.is_native() || requested.contains('#') {
        return false;
    }
    let Ok(mut u) = Url::parse(requested) else { return false };
    if u.scheme() != "http" || !u.host_str().is_some_and(loopback) || u.port().is_none() {
        return false;
    }
    if u.set_port(None).is_err() {
        return false;
    }
    client.redirect_uris.iter().any(|r| Url::parse(r).is_ok_and(|r| r == u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(uri: &str, native: bool) -> Result<(), String> {
        validate_redirect_uri(uri, native, "example.com")
    }

    #[test]
    fn spec_examples_web() {
        for ok in ["https://example.com/callback", "https://app.example.com/callback", "https://example.com:5173/?query=value"] {
            assert!(check(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "https://example.com/callback#fragment",
            "http://example.com/callback",
            "http://localhost/",
            "https://evil.com/cb",
            "https://notexample.com/cb",
            "https://u:p@example.com/cb",
        ] {
            assert!(check(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_examples_native() {
        for ok in [
            "com.example.app:/callback",
            "com.example:/",
            "com.example:callback",
            "http://localhost/callback",
            "http://127.0.0.1/callback",
            "http://[::1]/callback",
            "https://app.example.com/callback",
        ] {
            assert!(check(ok, true).is_ok(), "{ok}: {:?}", check(ok, true));
        }
        for bad in [
            "example:/callback",
            "com.example.app://callback",
            "https://localhost/callback",
            "http://localhost:1234/callback",
            "http://[::1]:8080/callback",
            "http://127.0.0.1:80/callback",
            "http://192.168.1.1/callback",
            "org.example:/cb",
            "com.example.app:/cb#x",
        ] {
            assert!(check(bad, true).is_err(), "{bad}");
        }
    }

    /// Schemes a browser would run or read locally are never redirect targets, even when
    /// the reverse-DNS rule would match them.
    #[test]
    fn script_and_local_schemes_are_refused() {
        for (uri, host) in [
            ("javascript:alert(1)", "javascript"),
            ("javascript:/alert(1)", "javascript"),
            ("JavaScript:alert(1)", "javascript"),
            ("data:text/html,<script>x</script>", "data"),
            ("vbscript:msgbox", "vbscript"),
            ("file:/etc/passwd", "file"),
            ("blob:/x", "blob"),
            ("about:blank", "about"),
        ] {
            assert!(validate_redirect_uri(uri, true, host).is_err(), "{uri}");
            assert!(validate_redirect_uri(uri, false, host).is_err(), "{uri}");
        }
        // Blanks and control characters are refused instead of silently dropped.
        for bad in [" com.example:/cb", "com.example:/cb ", "com.exa\tmple:/cb", "com.example:/c\nb", "com.example:/\u{a0}"] {
            assert!(check(bad, true).is_err(), "{bad:?}");
        }
        // Multi-byte text is fine where the URL allows it, and never panics where not.
        assert!(check("com.example:/caf\u{e9}", true).is_ok());
        assert!(check("c\u{f6}m.example:/x", true).is_err());
        assert!(check("\u{1F600}:/x", true).is_err());
        assert!(check("com.example.\u{1F600}:/x", true).is_err());
    }

    #[test]
    fn client_uri_needs_a_real_domain() {
        for (client_uri, redirect) in [
            ("https://javascript/", "javascript:alert(1)"),
            ("https://data/", "data:text/html,x"),
            ("https://localhost/", "localhost:/cb"),
            ("https://intranet/", "intranet:/cb"),
            ("https://127.0.0.1/", "http://127.0.0.1/cb"),
            ("https://[::1]/", "http://[::1]/cb"),
            ("https://example.com./", "com.example:/cb"),
        ] {
            let mut v = base();
            v["client_uri"] = json!(client_uri);
            v["redirect_uris"] = json!([redirect]);
            let e = validate(&v).unwrap_err();
            assert_eq!(e.0, "invalid_client_metadata", "{client_uri}: {e:?}");
            v["application_type"] = json!("web");
            assert!(validate(&v).is_err(), "{client_uri} (web)");
        }
        let mut v = base();
        v["client_uri"] = json!("https://app.example/");
        v["redirect_uris"] = json!(["example.app:/cb", "http://localhost/cb"]);
        assert!(validate(&v).is_ok());
        v["redirect_uris"] = json!(["javascript:alert(1)"]);
        assert_eq!(validate(&v).unwrap_err().0, "invalid_redirect_uri");
    }

    fn base() -> Value {
        json!({
            "client_name": "App",
            "client_name#fr": "Appli",
            "client_uri": "https://example.com/",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native"
        })
    }

    #[test]
    fn registration_metadata() {
        let m = validate(&base()).unwrap();
        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert!(m.is_native() && m.allows_refresh());
        let out = serde_json::to_value(&m).unwrap();
        assert!(out.get("client_name#fr").is_none());
        assert!(out.get("logo_uri").is_none());

        let mut v = base();
        v["client_uri"] = json!("http://example.com/");
        assert_eq!(validate(&v).unwrap_err().0, "invalid_client_metadata");
        let mut v = base();
        v.as_object_mut().unwrap().remove("client_uri");
        assert_eq!(validate(&v).unwrap_err().0, "invalid_client_metadata");
        let mut v = base();
        v["application_type"] = json!("web");
        assert_eq!(validate(&v).unwrap_err().0, "invalid_redirect_uri");
        let mut v = base();
        v["redirect_uris"] = json!([]);
        assert_eq!(validate(&v).unwrap_err().0, "invalid_redirect_uri");
        let mut v = base();
        v["logo_uri"] = json!("https://cdn.other.org/logo.png");
        v["policy_uri"] = json!("http://example.com/policy");
        v["tos_uri"] = json!("https://example.com/tos");
        let m = validate(&v).unwrap();
        assert_eq!((m.logo_uri, m.policy_uri, m.tos_uri.as_deref()), (None, None, Some("https://example.com/tos")));
        let mut v = base();
        v["tos_uri"] = json!("https://legal.example.com/tos");
        assert!(validate(&v).is_ok());
        let mut v = base();
        v["token_endpoint_auth_method"] = json!("client_secret_basic");
        assert_eq!(validate(&v).unwrap_err().0, "invalid_client_metadata");
        let mut v = base();
        v["grant_types"] = json!(["refresh_token"]);
        assert_eq!(validate(&v).unwrap_err().0, "invalid_client_metadata");
        let mut v = base();
        v.as_object_mut().unwrap().remove("application_type");
        v["redirect_uris"] = json!(["https://app.example.com/cb"]);
        assert_eq!(validate(&v).unwrap().application_type, "web");
    }

    #[test]
    fn matching() {
        let m = validate(&base()).unwrap();
        assert!(redirect_matches(&m, "http://127.0.0.1/callback"));
        assert!(redirect_matches(&m, "http://127.0.0.1:53122/callback"));
        assert!(!redirect_matches(&m, "http://127.0.0.1:53122/other"));
        assert!(!redirect_matches(&m, "http://localhost:53122/callback"));
        assert!(!redirect_matches(&m, "http://127.0.0.1:53122/callback#x"));
        let mut v = base();
        v["application_type"] = json!("web");
        v["redirect_uris"] = json!(["https://app.example.com/cb"]);
        let w = validate(&v).unwrap();
        assert!(redirect_matches(&w, "https://app.example.com/cb"));
        assert!(!redirect_matches(&w, "https://app.example.com/cb?x=1"));
        assert!(!redirect_matches(&w, "https://app.example.com:8443/cb"));
    }
}
