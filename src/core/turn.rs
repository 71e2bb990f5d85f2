//! TURN credentials for `GET /_matrix/client/v3/voip/turnServer` (spec: client-server-api,
//! "Voice over IP" → "Server behaviour").
//!
//! Two sources, as an operator chooses:
//! - **A shared secret** with a TURN server (coturn's `use-auth-secret`, Synapse's
//!   `turn_shared_secret`): the "REST API for access to TURN services" scheme, username
//!   `<expiry unix seconds>:<user ID>`, password base64(HMAC-SHA1(secret, username)).
//! - **Cloudflare's TURN service**: the server exchanges a TURN key ID and its API token for
//!   short-lived credentials (`…/turn/keys/{id}/credentials/generate-ice-servers`).
//!
//! Without either, the endpoint answers `{}`, as Synapse does.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::crypto::hmac_sha1;

/// Where TURN credentials come from (`TURN_*` / `CLOUDFLARE_TURN_*` settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnConfig {
    None,
    SharedSecret { uris: Vec<String>, secret: String, lifetime_secs: u64 },
    Cloudflare { key_id: String, api_token: String, api_url: String, lifetime_secs: u64 },
}

/// Cloudflare's TURN credential API (overridable for tests with `CLOUDFLARE_TURN_API_URL`).
pub const CLOUDFLARE_TURN_API: &str = "https://rtc.live.cloudflare.com/v1";

/// Synapse's `turn_user_lifetime` default: one hour.
pub const DEFAULT_LIFETIME_SECS: u64 = 3600;

impl TurnConfig {
    /// Reads the settings; `var` returns a trimmed, non-empty var or secret.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<TurnConfig, String> {
        let lifetime_secs = match var("TURN_USER_LIFETIME_SECS") {
            None => DEFAULT_LIFETIME_SECS,
            Some(v) => v.parse::<u64>().map_err(|_| format!("TURN_USER_LIFETIME_SECS must be a whole number, got {v:?}"))?.clamp(60, 7 * 86400),
        };
        let uris: Vec<String> =
            var("TURN_URIS").map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        if let Some(bad) = uris.iter().find(|u| !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:"))) {
            return Err(format!("TURN_URIS: {bad:?} is not a turn:, turns: or stun: URI"));
        }
        match (var("TURN_SHARED_SECRET"), var("CLOUDFLARE_TURN_KEY_ID"), var("CLOUDFLARE_TURN_API_TOKEN")) {
            (Some(_), Some(_), _) => Err("set either TURN_SHARED_SECRET or CLOUDFLARE_TURN_KEY_ID, not both".into()),
            (Some(_), None, _) if uris.is_empty() => Err("TURN_SHARED_SECRET is set but TURN_URIS is empty".into()),
            (Some(secret), None, _) => Ok(TurnConfig::SharedSecret { uris, secret, lifetime_secs }),
            (None, Some(_), None) => Err("CLOUDFLARE_TURN_KEY_ID is set but CLOUDFLARE_TURN_API_TOKEN is not".into()),
            (None, Some(key_id), Some(api_token)) => {
                if !key_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err("CLOUDFLARE_TURN_KEY_ID has characters a key ID does not".into());
                }
                let api_url = var("CLOUDFLARE_TURN_API_URL").unwrap_or_else(|| CLOUDFLARE_TURN_API.into()).trim_end_matches('/').to_owned();
                Ok(TurnConfig::Cloudflare { key_id, api_token, api_url, lifetime_secs })
            }
            (None, None, _) => Ok(TurnConfig::None),
        }
    }
}

/// Time-limited credentials from a shared secret, as coturn checks them: the username
/// carries its expiry, the password is the HMAC-SHA1 of the username.
pub fn shared_secret_credentials(uris: &[String], secret: &str, lifetime_secs: u64, user_id: &str, now_ms: u64) -> Value {
    let expiry = now_ms / 1000 + lifetime_secs;
    let username = format!("{expiry}:{user_id}");
    let password = STANDARD.encode(hmac_sha1(secret.as_bytes(), username.as_bytes()));
    json!({ "username": username, "password": password, "uris": uris, "ttl": lifetime_secs })
}

/// The request body for Cloudflare's credential API.
pub fn cloudflare_request(lifetime_secs: u64) -> Value {
    json!({ "ttl": lifetime_secs })
}

/// Turns Cloudflare's `{"iceServers": [{urls}, {urls, username, credential}]}` (or the
/// older single-object form) into the Matrix response; `None` if it holds no credentials.
pub fn from_cloudflare(resp: &Value, lifetime_secs: u64) -> Option<Value> {
    let servers: Vec<&Value> = match resp.get("iceServers")? {
        Value::Array(a) => a.iter().collect(),
        o @ Value::Object(_) => vec![o],
        _ => return None,
    };
    let with_creds = servers.into_iter().find(|s| s.get("username").is_some_and(Value::is_string))?;
    let username = with_creds.get("username")?.as_str()?;
    let password = with_creds.get("credential")?.as_str()?;
    let uris: Vec<&str> = match with_creds.get("urls")? {
        Value::String(u) => vec![u.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    // Matrix clients hand these to WebRTC as TURN servers: keep the turn(s) URIs.
    let uris: Vec<&str> = uris.into_iter().filter(|u| u.starts_with("turn:") || u.starts_with("turns:")).collect();
    if uris.is_empty() {
        return None;
    }
    Some(json!({ "username": username, "password": password, "uris": uris, "ttl": lifetime_secs }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<TurnConfig, String> {
        let m: HashMap<&str, &str> = pairs.iter().copied().collect();
        TurnConfig::from_vars(|k| m.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn settings() {
        assert_eq!(cfg(&[]).unwrap(), TurnConfig::None);
        let c = cfg(&[("TURN_URIS", "turn:t.example:3478?transport=udp, turns:t.example:5349"), ("TURN_SHARED_SECRET", "s")]).unwrap();
        assert_eq!(
            c,
            TurnConfig::SharedSecret {
                uris: vec!["turn:t.example:3478?transport=udp".into(), "turns:t.example:5349".into()],
                secret: "s".into(),
                lifetime_secs: 3600
            }
        );
        assert!(cfg(&[("TURN_SHARED_SECRET", "s")]).is_err());
        assert!(cfg(&[("TURN_URIS", "http://x"), ("TURN_SHARED_SECRET", "s")]).is_err());
        assert!(cfg(&[("CLOUDFLARE_TURN_KEY_ID", "abc")]).is_err());
        assert!(cfg(&[("CLOUDFLARE_TURN_KEY_ID", "a/b"), ("CLOUDFLARE_TURN_API_TOKEN", "t")]).is_err());
        assert!(cfg(&[("CLOUDFLARE_TURN_KEY_ID", "a"), ("CLOUDFLARE_TURN_API_TOKEN", "t"), ("TURN_SHARED_SECRET", "s")]).is_err());
        let c = cfg(&[("CLOUDFLARE_TURN_KEY_ID", "abc123"), ("CLOUDFLARE_TURN_API_TOKEN", "tok"), ("TURN_USER_LIFETIME_SECS", "86400")]).unwrap();
        assert_eq!(
            c,
            TurnConfig::Cloudflare { key_id: "abc123".into(), api_token: "tok".into(), api_url: CLOUDFLARE_TURN_API.into(), lifetime_secs: 86400 }
        );
    }

    #[test]
    fn shared_secret_scheme() {
        let v = shared_secret_credentials(&["turn:t:3478".into()], "secret", 3600, "@a:b", 1_000_000_000_500);
        assert_eq!(v["username"], "1000003600:@a:b");
        // base64(HMAC-SHA1("secret", "1000003600:@a:b")), computed independently:
        // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"secret",b"1000003600:@a:b",hashlib.sha1).digest()).decode())'
        assert_eq!(v["password"], "Gpj7pdVl1hpM+FnsrxEBl+UEE5A=");
        assert_eq!(v["ttl"], 3600);
        assert_eq!(v["uris"], json!(["turn:t:3478"]));
    }

    #[test]
    fn cloudflare_answers() {
        let resp = json!({ "iceServers": [
            { "urls": ["stun:stun.cloudflare.com:3478"] },
            { "urls": ["turn:turn.cloudflare.com:3478?transport=udp", "turns:turn.cloudflare.com:443?transport=tcp", "stun:x"],
              "username": "u", "credential": "p" }
        ]});
        let v = from_cloudflare(&resp, 600).unwrap();
        assert_eq!(
            v,
            json!({ "username": "u", "password": "p", "ttl": 600,
            "uris": ["turn:turn.cloudflare.com:3478?transport=udp", "turns:turn.cloudflare.com:443?transport=tcp"] })
        );
        let old = json!({ "iceServers": { "urls": "turn:a:3478", "username": "u", "credential": "p" } });
        assert_eq!(from_cloudflare(&old, 60).unwrap()["uris"], json!(["turn:a:3478"]));
        assert!(from_cloudflare(&json!({}), 60).is_none());
        assert!(from_cloudflare(&json!({ "iceServers": [{ "urls": ["stun:x"] }] }), 60).is_none());
        assert!(from_cloudflare(&json!({ "iceServers": [{ "urls": 5, "username": "u", "credential": "p" }] }), 60).is_none());
    }
}
