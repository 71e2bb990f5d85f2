//! Server configuration, read from Worker vars and secrets (`wrangler.toml` `[vars]`,
//! `.dev.vars` in development, `wrangler secret put` in production).
//!
//! Parsing takes a lookup function so it is tested natively without a Worker `Env`.

use ruma::{OwnedServerName, ServerName};

use super::oauth::jwt::OAuthKeys;
use super::signing::ServerSigningKey;

/// Which login APIs are on (`AUTH_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Both the legacy API (`/login`, `/register`) and OAuth 2.0, when a key is configured.
    Both,
    /// OAuth 2.0 only: `/login` offers no flows and `POST /login`, `/register` and
    /// `/refresh` answer 404 `M_UNRECOGNIZED` (spec: "Authentication API discovery").
    OAuth,
    /// The legacy API only: `auth_metadata` answers 404 `M_UNRECOGNIZED`.
    Legacy,
}

/// The OAuth 2.0 provider's settings; present when `OAUTH_SIGNING_KEY` is set.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub keys: OAuthKeys,
    /// `PUBLIC_BASEURL/`: the `iss` of every token and the metadata's `issuer`.
    pub issuer: String,
    /// HMAC key for the login forms' sealed state and CSRF tokens, derived from the
    /// signing key.
    pub form_key: [u8; 32],
}

/// Who may create accounts through `/register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Anyone (UIA stage `m.login.dummy`).
    Open,
    /// Only with a registration token (UIA stage `m.login.registration_token`).
    Token,
    /// Nobody; accounts come from the admin API.
    Closed,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub server_name: OwnedServerName,
    /// Where clients reach us, for `/.well-known/matrix/client`.
    pub public_baseurl: String,
    pub registration_mode: RegistrationMode,
    pub registration_tokens: Vec<String>,
    pub registration_shared_secret: Option<String>,
    /// Localparts only the admin API may register.
    pub reserved_localparts: Vec<String>,
    pub signing_key: ServerSigningKey,
    pub default_room_version: String,
    /// Lifetime of access tokens issued together with a refresh token.
    pub access_token_lifetime_ms: u64,
    pub login_failures_account_max: u32,
    pub login_failures_ip_max: u32,
    pub login_failures_window_ms: u64,
    pub pbkdf2_iterations: u32,
    /// Largest JSON request body accepted.
    pub max_json_body_bytes: usize,
    pub auth_mode: AuthMode,
    /// `None` when OAuth is off (no key, or `AUTH_MODE=legacy`).
    pub oauth: Option<OAuthConfig>,
    /// Media (issue 6): see [`MediaConfig`].
    pub media: MediaConfig,
    /// Where `/voip/turnServer` gets TURN credentials from.
    pub turn: super::turn::TurnConfig,
    /// Development only (`DEV_SIMULATED_LATENCY_MS`): a delay added to every D1 round trip
    /// and Durable Object call, to preview production latency locally. 0 = off.
    pub simulated_latency_ms: u64,
    /// Development only (`DEV_COST_HEADER=on`): every response carries `X-Stratus-Cost` (the
    /// request's billable units, issue #17) and `X-Stratus-D1-Round-Trips`.
    pub dev_cost_header: bool,
    /// Development only (`DEV_LOG_SQL=on`): every D1 statement's text is logged (not its
    /// parameters), for the EXPLAIN QUERY PLAN test.
    pub dev_log_sql: bool,
    /// IP literals exempt from the push gateway address checks, which may also use `http`
    /// (`PUSH_GATEWAY_IP_ALLOWLIST`; tests, private deployments).
    pub push_gateway_ip_allowlist: Vec<std::net::IpAddr>,
    /// Federation transport and trust: discovery, outbound transport, allow/deny lists,
    /// notaries (`FEDERATION_*`, `TRUSTED_KEY_SERVERS`).
    pub federation_transport: super::federation::discovery::FederationConfig,
    /// Presence is exchanged with other servers (`m.presence` sent and accepted;
    /// `FEDERATION_PRESENCE`, on by default). Off saves the busiest EDU traffic; local presence
    /// is unaffected.
    pub federation_presence: bool,
    /// Request rate limits (`RATE_LIMITS`, `RATE_LIMIT_*`; issue 18): see [`super::ratelimit::RateLimits`].
    pub rate_limits: super::ratelimit::RateLimits,
}

impl Config {
    /// Password login and registration through the legacy API are allowed.
    pub fn legacy_login(&self) -> bool {
        self.auth_mode != AuthMode::OAuth
    }
}

/// What the deprecated unauthenticated `/_matrix/media/v3/download` and `/thumbnail` serve
/// (spec v1.11+, "Content repository" → "Client behaviour": servers SHOULD freeze them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyMedia {
    /// Only media created before `freeze_ts` (ms) is served; the rest is 404 `M_NOT_FOUND`.
    Freeze { freeze_ts: u64 },
    /// Everything is served without authentication, as before v1.11.
    Serve,
}

#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Largest upload, checked on the bytes actually received (`m.upload.size`).
    pub max_upload_bytes: u64,
    pub legacy: LegacyMedia,
    /// Largest original we thumbnail (bytes).
    pub max_thumbnail_source_bytes: u64,
    /// Whether `/preview_url` fetches pages at all.
    pub url_previews: bool,
    /// IP literals exempt from the preview address checks (tests, private deployments).
    pub url_preview_ip_allowlist: Vec<std::net::IpAddr>,
    /// Most pending (created, not uploaded, unexpired) media IDs per user.
    pub max_pending_uploads: u32,
    /// How long a created media ID waits for its upload.
    pub unused_media_lifetime_ms: u64,
    /// Largest remote media (or remote thumbnail) fetched over federation
    /// (`REMOTE_MEDIA_MAX_BYTES`, default `MAX_UPLOAD_BYTES`); larger is 502 `M_TOO_LARGE`.
    pub remote_max_bytes: u64,
    /// Whether a remote answering 404 `M_UNRECOGNIZED` to the federation media endpoints is
    /// asked the deprecated `/_matrix/media/v3` ones (`REMOTE_MEDIA_LEGACY_FALLBACK`, off).
    pub remote_legacy_fallback: bool,
}

pub const DEFAULT_RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "system",
    "server",
    "matrix",
    "support",
    "abuse",
    "postmaster",
    "hostmaster",
    "webmaster",
    "security",
    "noreply",
    "stratus",
];

impl Config {
    /// Reads the configuration; `get` returns a var or secret by name.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let num = |k: &str, default: u64| -> Result<u64, String> {
            match var(k) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| format!("{k} must be a whole number, got {v:?}")),
            }
        };

        let server_name_str = var("SERVER_NAME").ok_or("SERVER_NAME is not set")?;
        let server_name =
            ServerName::parse(&server_name_str).map_err(|e| format!("SERVER_NAME {server_name_str:?} is not a valid server name: {e}"))?;
        let public_baseurl = var("PUBLIC_BASEURL").unwrap_or_else(|| format!("https://{server_name}")).trim_end_matches('/').to_owned();
        let registration_mode = match var("REGISTRATION_MODE").as_deref().unwrap_or("closed") {
            "open" => RegistrationMode::Open,
            "token" => RegistrationMode::Token,
            "closed" => RegistrationMode::Closed,
            other => return Err(format!("REGISTRATION_MODE must be open, token or closed, got {other:?}")),
        };
        let list = |k: &str| -> Vec<String> {
            var(k).map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
        };
        let registration_tokens = list("REGISTRATION_TOKENS");
        // Token mode may start with no configured token: admins create them with the admin
        // API (`/_synapse/admin/v1/registration_tokens`).
        let reserved_localparts = match var("RESERVED_LOCALPARTS") {
            Some(_) => list("RESERVED_LOCALPARTS"),
            None => DEFAULT_RESERVED.iter().map(|s| s.to_string()).collect(),
        };
        let signing_key = ServerSigningKey::parse(&var("SIGNING_KEY").ok_or("SIGNING_KEY is not set")?)?;
        let auth_mode = match var("AUTH_MODE").as_deref().unwrap_or("both") {
            "both" => AuthMode::Both,
            "oauth" => AuthMode::OAuth,
            "legacy" => AuthMode::Legacy,
            other => return Err(format!("AUTH_MODE must be both, oauth or legacy, got {other:?}")),
        };
        let oauth = match (auth_mode, var("OAUTH_SIGNING_KEY")) {
            (AuthMode::Legacy, _) | (AuthMode::Both, None) => None,
            (AuthMode::OAuth, None) => return Err("AUTH_MODE is oauth but OAUTH_SIGNING_KEY is not set".into()),
            (_, Some(key)) => Some(OAuthConfig {
                keys: OAuthKeys::parse(&key, var("OAUTH_PREVIOUS_SIGNING_KEYS").as_deref())?,
                issuer: format!("{public_baseurl}/"),
                form_key: super::crypto::sha256(format!("stratus oauth forms\0{key}").as_bytes()),
            }),
        };

        Ok(Config {
            server_name,
            public_baseurl,
            registration_mode,
            registration_tokens,
            registration_shared_secret: var("REGISTRATION_SHARED_SECRET"),
            reserved_localparts,
            signing_key,
            default_room_version: var("DEFAULT_ROOM_VERSION").unwrap_or_else(|| "12".into()),
            access_token_lifetime_ms: num("ACCESS_TOKEN_LIFETIME_SECS", 300)?.max(1) * 1000,
            login_failures_account_max: num("LOGIN_FAILURES_ACCOUNT_MAX", 5)? as u32,
            login_failures_ip_max: num("LOGIN_FAILURES_IP_MAX", 20)? as u32,
            login_failures_window_ms: num("LOGIN_FAILURES_WINDOW_SECS", 60)?.max(1) * 1000,
            pbkdf2_iterations: num("PASSWORD_PBKDF2_ITERATIONS", super::crypto::DEFAULT_PBKDF2_ITERATIONS as u64)?.clamp(1000, 10_000_000) as u32,
            max_json_body_bytes: num("MAX_JSON_BODY_BYTES", 1024 * 1024)? as usize,
            media: MediaConfig {
                max_upload_bytes: num("MAX_UPLOAD_BYTES", 50 * 1024 * 1024)?,
                legacy: match var("LEGACY_MEDIA").as_deref().unwrap_or("freeze") {
                    "freeze" => LegacyMedia::Freeze { freeze_ts: num("LEGACY_MEDIA_FREEZE_TS", 0)? },
                    "serve" => LegacyMedia::Serve,
                    other => return Err(format!("LEGACY_MEDIA must be freeze or serve, got {other:?}")),
                },
                max_thumbnail_source_bytes: num("MAX_THUMBNAIL_SOURCE_BYTES", 20 * 1024 * 1024)?,
                url_previews: match var("URL_PREVIEWS").as_deref().unwrap_or("on") {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    other => return Err(format!("URL_PREVIEWS must be on or off, got {other:?}")),
                },
                url_preview_ip_allowlist: super::preview::parse_ip_list(&var("URL_PREVIEW_IP_ALLOWLIST").unwrap_or_default())
                    .map_err(|e| format!("URL_PREVIEW_IP_ALLOWLIST: {e}"))?,
                max_pending_uploads: num("MAX_PENDING_UPLOADS", 10)? as u32,
                unused_media_lifetime_ms: num("UNUSED_MEDIA_LIFETIME_SECS", 24 * 3600)?.max(1) * 1000,
                remote_max_bytes: num("REMOTE_MEDIA_MAX_BYTES", num("MAX_UPLOAD_BYTES", 50 * 1024 * 1024)?)?,
                remote_legacy_fallback: match var("REMOTE_MEDIA_LEGACY_FALLBACK").as_deref().unwrap_or("off") {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    other => return Err(format!("REMOTE_MEDIA_LEGACY_FALLBACK must be on or off, got {other:?}")),
                },
            },
            push_gateway_ip_allowlist: super::preview::parse_ip_list(&var("PUSH_GATEWAY_IP_ALLOWLIST").unwrap_or_default())
                .map_err(|e| format!("PUSH_GATEWAY_IP_ALLOWLIST: {e}"))?,
            auth_mode,
            oauth,
            simulated_latency_ms: num("DEV_SIMULATED_LATENCY_MS", 0)?.min(1000),
            dev_cost_header: match var("DEV_COST_HEADER").as_deref().unwrap_or("off") {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                other => return Err(format!("DEV_COST_HEADER must be on or off, got {other:?}")),
            },
            dev_log_sql: match var("DEV_LOG_SQL").as_deref().unwrap_or("off") {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                other => return Err(format!("DEV_LOG_SQL must be on or off, got {other:?}")),
            },
            turn: super::turn::TurnConfig::from_vars(var)?,
            federation_transport: super::federation::discovery::FederationConfig::from_vars(var)?,
            federation_presence: match var("FEDERATION_PRESENCE").as_deref().unwrap_or("on") {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                other => return Err(format!("FEDERATION_PRESENCE must be on or off, got {other:?}")),
            },
            rate_limits: super::ratelimit::RateLimits::from_lookup(&get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let mut m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.entry("SIGNING_KEY".into()).or_insert_with(|| ServerSigningKey::generate().to_config_string());
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[("SERVER_NAME", "localhost:8787")]).unwrap();
        assert_eq!(c.server_name.as_str(), "localhost:8787");
        assert_eq!(c.public_baseurl, "https://localhost:8787");
        assert_eq!(c.registration_mode, RegistrationMode::Closed);
        assert!(c.reserved_localparts.contains(&"admin".to_string()));
        assert_eq!(c.default_room_version, "12");
        assert_eq!(c.media.max_upload_bytes, 50 * 1024 * 1024);
        assert_eq!(c.media.legacy, LegacyMedia::Freeze { freeze_ts: 0 });
        assert!(c.media.url_previews);
        assert!(c.media.url_preview_ip_allowlist.is_empty());
        assert!(c.push_gateway_ip_allowlist.is_empty());
        assert_eq!(c.simulated_latency_ms, 0);
        assert!(c.federation_presence);
        assert!(!cfg(&[("SERVER_NAME", "a.org"), ("FEDERATION_PRESENCE", "off")]).unwrap().federation_presence);
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("FEDERATION_PRESENCE", "sometimes")]).is_err());
        let c = cfg(&[("SERVER_NAME", "a.org"), ("DEV_SIMULATED_LATENCY_MS", "5000")]).unwrap();
        assert_eq!(c.simulated_latency_ms, 1000);
    }

    #[test]
    fn push_gateway_allowlist() {
        let c = cfg(&[("SERVER_NAME", "a.org"), ("PUSH_GATEWAY_IP_ALLOWLIST", "127.0.0.1, [::1]")]).unwrap();
        assert_eq!(c.push_gateway_ip_allowlist.len(), 2);
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("PUSH_GATEWAY_IP_ALLOWLIST", "localhost")]).is_err());
    }

    #[test]
    fn media_settings() {
        let c = cfg(&[
            ("SERVER_NAME", "a.org"),
            ("MAX_UPLOAD_BYTES", "1000"),
            ("LEGACY_MEDIA", "serve"),
            ("URL_PREVIEWS", "off"),
            ("URL_PREVIEW_IP_ALLOWLIST", "127.0.0.1,::1"),
        ])
        .unwrap();
        assert_eq!(c.media.max_upload_bytes, 1000);
        assert_eq!(c.media.legacy, LegacyMedia::Serve);
        assert!(!c.media.url_previews);
        assert_eq!(c.media.url_preview_ip_allowlist.len(), 2);
        let c = cfg(&[("SERVER_NAME", "a.org"), ("LEGACY_MEDIA_FREEZE_TS", "1700000000000")]).unwrap();
        assert_eq!(c.media.legacy, LegacyMedia::Freeze { freeze_ts: 1_700_000_000_000 });
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("LEGACY_MEDIA", "sometimes")]).is_err());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("MAX_UPLOAD_BYTES", "lots")]).is_err());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("URL_PREVIEW_IP_ALLOWLIST", "localhost")]).is_err());
    }

    #[test]
    fn remote_media_settings() {
        let c = cfg(&[("SERVER_NAME", "a.org"), ("MAX_UPLOAD_BYTES", "1000")]).unwrap();
        assert_eq!((c.media.remote_max_bytes, c.media.remote_legacy_fallback), (1000, false));
        let c = cfg(&[("SERVER_NAME", "a.org"), ("REMOTE_MEDIA_MAX_BYTES", "77"), ("REMOTE_MEDIA_LEGACY_FALLBACK", "on")]).unwrap();
        assert_eq!((c.media.remote_max_bytes, c.media.remote_legacy_fallback), (77, true));
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("REMOTE_MEDIA_LEGACY_FALLBACK", "maybe")]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(cfg(&[]).is_err());
        assert!(cfg(&[("SERVER_NAME", "bad name")]).is_err());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("REGISTRATION_MODE", "maybe")]).is_err());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("REGISTRATION_MODE", "token")]).is_ok_and(|c| c.registration_tokens.is_empty()));
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("LOGIN_FAILURES_IP_MAX", "many")]).is_err());
    }

    #[test]
    fn auth_modes_and_oauth_keys() {
        let key = crate::core::oauth::jwt::tests::KEY1;
        let c = cfg(&[("SERVER_NAME", "a.org")]).unwrap();
        assert_eq!(c.auth_mode, AuthMode::Both);
        assert!(c.oauth.is_none() && c.legacy_login());
        let c = cfg(&[("SERVER_NAME", "a.org"), ("OAUTH_SIGNING_KEY", key), ("PUBLIC_BASEURL", "https://m.a.org/")]).unwrap();
        let o = c.oauth.as_ref().unwrap();
        assert_eq!(o.issuer, "https://m.a.org/");
        assert!(c.legacy_login());
        let c = cfg(&[("SERVER_NAME", "a.org"), ("OAUTH_SIGNING_KEY", key), ("AUTH_MODE", "oauth")]).unwrap();
        assert!(c.oauth.is_some() && !c.legacy_login());
        let c = cfg(&[("SERVER_NAME", "a.org"), ("OAUTH_SIGNING_KEY", key), ("AUTH_MODE", "legacy")]).unwrap();
        assert!(c.oauth.is_none() && c.legacy_login());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("AUTH_MODE", "oauth")]).is_err());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("AUTH_MODE", "sometimes")]).is_err());
        assert!(cfg(&[("SERVER_NAME", "a.org"), ("OAUTH_SIGNING_KEY", "nope")]).is_err());
    }

    #[test]
    fn token_mode_lists() {
        let c = cfg(&[("SERVER_NAME", "a.org"), ("REGISTRATION_MODE", "token"), ("REGISTRATION_TOKENS", "a, b,,")]).unwrap();
        assert_eq!(c.registration_tokens, vec!["a", "b"]);
    }
}
