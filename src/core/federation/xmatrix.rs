//! The `X-Matrix` authorization of server-server requests (spec: server-server-api, "Request
//! Authentication"): the signed JSON `{method, uri, origin, destination, content}`, the header
//! that carries its signature, and checking one against a public key.

use ruma::serde::Base64;
use ruma::signatures::{verify_json, PublicKeyMap, PublicKeySet};
use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, ServerName};
use serde_json::Value;

use crate::core::signing::ServerSigningKey;

/// One `X-Matrix` credential from an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XMatrix {
    pub origin: OwnedServerName,
    /// Absent from servers older than spec v1.3, which recipients should still accept.
    pub destination: Option<OwnedServerName>,
    /// `ed25519:abc`.
    pub key: String,
    /// Unpadded base64 signature.
    pub sig: String,
}

/// Every `X-Matrix` credential in an `Authorization` header value. Several headers may have
/// been sent, and the runtime joins repeated headers with `, `, so a new credential starts
/// wherever an item begins with the scheme name. Items of other schemes are skipped;
/// credentials that lack `origin`, `key` or `sig` (or whose origin is not a server name) are
/// dropped.
pub fn parse_all(header: &str) -> Vec<XMatrix> {
    let mut out = Vec::new();
    let mut current: Option<Partial> = None;
    for item in split_items(header) {
        let item = item.trim_matches(|c| c == ' ' || c == '\t');
        if item.is_empty() {
            continue;
        }
        // "X-Matrix origin=…" starts a credential; "Bearer abc" starts one we ignore.
        let param = match item.split_once([' ', '\t']) {
            Some((scheme, rest)) if !scheme.contains('=') => {
                if let Some(p) = current.take() {
                    out.extend(p.finish());
                }
                current = scheme.eq_ignore_ascii_case("x-matrix").then(Partial::default);
                rest.trim_start_matches([' ', '\t'])
            }
            _ if !item.contains('=') => {
                // A scheme with no parameters.
                if let Some(p) = current.take() {
                    out.extend(p.finish());
                }
                continue;
            }
            _ => item,
        };
        if let (Some(p), Some((name, value))) = (current.as_mut(), param.split_once('=')) {
            let value = unquote(value.trim_matches(|c| c == ' ' || c == '\t'));
            match name.trim().to_ascii_lowercase().as_str() {
                "origin" => p.origin = Some(value),
                "destination" => p.destination = Some(value),
                "key" => p.key = Some(value),
                "sig" => p.sig = Some(value),
                // Unknown parameters are ignored (spec).
                _ => {}
            }
        }
    }
    if let Some(p) = current {
        out.extend(p.finish());
    }
    out
}

#[derive(Default)]
struct Partial {
    origin: Option<String>,
    destination: Option<String>,
    key: Option<String>,
    sig: Option<String>,
}

impl Partial {
    fn finish(self) -> Option<XMatrix> {
        let origin = ServerName::parse(self.origin?).ok()?;
        // A destination that is not a server name cannot be ours: keep it as a mismatch by
        // refusing the credential outright.
        let destination = match self.destination {
            Some(d) => Some(ServerName::parse(d).ok()?),
            None => None,
        };
        Some(XMatrix { origin, destination, key: self.key?, sig: self.sig? })
    }
}

/// Splits at commas outside quoted strings (backslash escapes respected).
fn split_items(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ',' && !quoted {
            items.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    items.push(s.get(start..).unwrap_or_default());
    items
}

/// A token as is, or a quoted string with its backslash escapes undone.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_owned();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a request's credentials were refused before any key was looked up.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: nothing usable (none sent, destination not us, origin is us).
    Unauthorized(String),
    /// 403: the origin is refused by our allow/deny lists.
    Forbidden(String),
}

/// The credentials worth checking a signature for, in order: addressed to `ours` (or to no
/// one, as before spec v1.3), not from ourselves, from an origin `permits` accepts.
pub fn screen(creds: Vec<XMatrix>, ours: &str, permits: impl Fn(&str) -> bool) -> Result<Vec<XMatrix>, Refusal> {
    if creds.is_empty() {
        return Err(Refusal::Unauthorized("Missing or malformed X-Matrix authorization".into()));
    }
    let mut why = String::new();
    let mut out = Vec::new();
    for x in creds {
        if x.destination.as_ref().is_some_and(|d| d.as_str() != ours) {
            why = "the destination is not this server".into();
        } else if x.origin.as_str() == ours {
            why = "the origin is this server".into();
        } else if !permits(x.origin.as_str()) {
            return Err(Refusal::Forbidden(format!("Federation with {} is not allowed by this server", x.origin)));
        } else {
            out.push(x);
        }
    }
    if out.is_empty() {
        return Err(Refusal::Unauthorized(format!("X-Matrix authorization failed: {why}")));
    }
    Ok(out)
}

/// The header value for one credential, as the spec asks senders to write it (one space,
/// lower-case names, no spaces around commas; server names and key IDs never need escapes).
pub fn header(origin: &str, destination: &str, key: &str, sig: &str) -> String {
    format!("X-Matrix origin=\"{origin}\",destination=\"{destination}\",key=\"{key}\",sig=\"{sig}\"")
}

/// The object that is signed: `{method, uri, origin, destination[, content]}`.
pub fn request_object(
    method: &str,
    uri: &str,
    origin: &str,
    destination: Option<&str>,
    content: Option<&Value>,
) -> Result<CanonicalJsonObject, String> {
    let mut o = CanonicalJsonObject::new();
    o.insert("method".into(), CanonicalJsonValue::String(method.to_owned()));
    o.insert("uri".into(), CanonicalJsonValue::String(uri.to_owned()));
    o.insert("origin".into(), CanonicalJsonValue::String(origin.to_owned()));
    if let Some(d) = destination {
        o.insert("destination".into(), CanonicalJsonValue::String(d.to_owned()));
    }
    if let Some(c) = content {
        let c = CanonicalJsonValue::try_from(c.clone()).map_err(|e| format!("request body is not canonical JSON: {e}"))?;
        o.insert("content".into(), c);
    }
    Ok(o)
}

/// Signs an outgoing request and returns its `Authorization` header value.
pub fn sign_request(
    key: &ServerSigningKey,
    origin: &str,
    destination: &str,
    method: &str,
    uri: &str,
    content: Option<&Value>,
) -> Result<String, String> {
    let mut o = request_object(method, uri, origin, Some(destination), content)?;
    key.sign_object(origin, &mut o)?;
    let key_id = key.key_id();
    let sig = match o.get("signatures") {
        Some(CanonicalJsonValue::Object(s)) => match s.get(origin) {
            Some(CanonicalJsonValue::Object(by_key)) => match by_key.get(&key_id) {
                Some(CanonicalJsonValue::String(sig)) => sig.clone(),
                _ => return Err("signature missing after signing".into()),
            },
            _ => return Err("signature missing after signing".into()),
        },
        _ => return Err("signature missing after signing".into()),
    };
    Ok(header(origin, destination, &key_id, &sig))
}

/// Checks a credential's signature over the request with the origin's public key
/// (`public_key`: unpadded base64). `destination` is the name the request was sent to
/// (ours); `content` is the parsed body, `None` when the request had none.
pub fn verify_request(x: &XMatrix, public_key: &str, method: &str, uri: &str, destination: &str, content: Option<&Value>) -> Result<(), String> {
    if x.destination.as_ref().is_some_and(|d| d.as_str() != destination) {
        return Err("destination is not this server".into());
    }
    // The destination is signed even when the sender left it out of the header (spec: the
    // header's destination "is the same as the destination field" of the signed JSON).
    let mut o = request_object(method, uri, x.origin.as_str(), Some(destination), content)?;
    let mut by_key = CanonicalJsonObject::new();
    by_key.insert(x.key.clone(), CanonicalJsonValue::String(x.sig.clone()));
    let mut sigs = CanonicalJsonObject::new();
    sigs.insert(x.origin.to_string(), CanonicalJsonValue::Object(by_key));
    o.insert("signatures".into(), CanonicalJsonValue::Object(sigs));
    let key = Base64::parse(public_key).map_err(|_| "the origin's key is not base64".to_string())?;
    let mut set = PublicKeySet::new();
    set.insert(x.key.clone(), key);
    let mut map = PublicKeyMap::new();
    map.insert(x.origin.to_string(), set);
    verify_json(&map, &o).map_err(|e| format!("bad signature: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn x(origin: &str, dest: Option<&str>, key: &str, sig: &str) -> XMatrix {
        XMatrix {
            origin: ServerName::parse(origin).unwrap(),
            destination: dest.map(|d| ServerName::parse(d).unwrap()),
            key: key.into(),
            sig: sig.into(),
        }
    }

    #[test]
    fn parses_the_spec_forms() {
        let h = r#"X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF""#;
        assert_eq!(parse_all(h), vec![x("origin.hs.example.com", Some("destination.hs.example.com"), "ed25519:key1", "ABCDEF")]);
        // Tokens unquoted, colons allowed, names in any case and order, spaces and tabs
        // around commas, several spaces after the scheme, unknown parameters.
        let h = "x-matrix   KEY=ed25519:k , \tSig=\"a\\\"b\" ,origin=o.org:8448,extra=\"1,2\"";
        assert_eq!(parse_all(h), vec![x("o.org:8448", None, "ed25519:k", "a\"b")]);
    }

    #[test]
    fn parses_several_credentials_and_skips_others() {
        let h =
            r#"Bearer abc, X-Matrix origin=a.org,key="ed25519:1",sig="s1", X-Matrix origin="b.org",destination="us.org",key="ed25519:2",sig="s2""#;
        let all = parse_all(h);
        assert_eq!(all, vec![x("a.org", None, "ed25519:1", "s1"), x("b.org", Some("us.org"), "ed25519:2", "s2")]);
    }

    #[test]
    fn incomplete_or_malformed_credentials_are_dropped() {
        for h in [
            "",
            "X-Matrix",
            "X-Matrix origin=a.org,key=ed25519:1",
            "X-Matrix origin=\"bad name\",key=k,sig=s",
            "X-Matrix origin=a.org,destination=\"no good\",key=k,sig=s",
            "Bearer tok",
            "X-Matrix origin=\"a.org,key=k,sig=s",
            "é,é=é,\"",
            "X-Matrix =,==,\\",
        ] {
            assert!(parse_all(h).is_empty(), "{h:?}");
        }
    }

    #[test]
    fn sign_then_verify() {
        let k = ServerSigningKey::generate();
        let body = json!({"pdus": [], "n": 1});
        let h = sign_request(&k, "a.org", "b.org", "PUT", "/_matrix/federation/v1/send/1?x=%20", Some(&body)).unwrap();
        assert!(h.starts_with("X-Matrix origin=\"a.org\",destination=\"b.org\",key=\""));
        let cred = parse_all(&h).pop().unwrap();
        let pk = k.public_key_base64();
        let uri = "/_matrix/federation/v1/send/1?x=%20";
        verify_request(&cred, &pk, "PUT", uri, "b.org", Some(&body)).unwrap();
        // Any change to what is signed fails.
        assert!(verify_request(&cred, &pk, "POST", uri, "b.org", Some(&body)).is_err());
        assert!(verify_request(&cred, &pk, "PUT", "/_matrix/federation/v1/send/2", "b.org", Some(&body)).is_err());
        assert!(verify_request(&cred, &pk, "PUT", uri, "c.org", Some(&body)).is_err());
        assert!(verify_request(&cred, &pk, "PUT", uri, "b.org", Some(&json!({"pdus": []}))).is_err());
        assert!(verify_request(&cred, &pk, "PUT", uri, "b.org", None).is_err());
        let other = ServerSigningKey::generate().public_key_base64();
        assert!(verify_request(&cred, &other, "PUT", uri, "b.org", Some(&body)).is_err());
        assert!(verify_request(&cred, "!!", "PUT", uri, "b.org", Some(&body)).is_err());
        // A credential without a destination still verifies (the destination is signed).
        let mut old = cred.clone();
        old.destination = None;
        verify_request(&old, &pk, "PUT", uri, "b.org", Some(&body)).unwrap();
    }

    #[test]
    fn screening() {
        let all = |_: &str| true;
        let deny_b = |o: &str| o != "b.org";
        assert!(matches!(screen(vec![], "us.org", all), Err(Refusal::Unauthorized(_))));
        let to_other = x("a.org", Some("other.org"), "ed25519:1", "s");
        let from_us = x("us.org", Some("us.org"), "ed25519:1", "s");
        let good = x("a.org", Some("us.org"), "ed25519:1", "s");
        let legacy = x("a.org", None, "ed25519:1", "s");
        let Err(Refusal::Unauthorized(m)) = screen(vec![to_other.clone()], "us.org", all) else { panic!() };
        assert!(m.contains("destination"), "{m}");
        let Err(Refusal::Unauthorized(m)) = screen(vec![from_us], "us.org", all) else { panic!() };
        assert!(m.contains("origin"), "{m}");
        assert_eq!(screen(vec![to_other, good.clone(), legacy.clone()], "us.org", all), Ok(vec![good, legacy]));
        let from_b = x("b.org", Some("us.org"), "ed25519:1", "s");
        assert!(matches!(screen(vec![from_b], "us.org", deny_b), Err(Refusal::Forbidden(_))));
    }

    #[test]
    fn matches_the_python_reference() {
        // The signed object is the spec's: a GET without content has no `content` key.
        let o = request_object("GET", "/x", "a.org", Some("b.org"), None).unwrap();
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"destination":"b.org","method":"GET","origin":"a.org","uri":"/x"}"#);
        assert!(request_object("GET", "/x", "a", None, Some(&json!({"f": 1.5}))).is_err());
    }
}
