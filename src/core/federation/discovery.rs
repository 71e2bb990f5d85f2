//! Resolving server names (spec: server-server-api, "Resolving server names"), as decisions
//! the service layer drives: IP literal or explicit port → done; otherwise
//! `/.well-known/matrix/server` (cached per its `Cache-Control`, 24 h by default, 48 h at most,
//! failures cached with exponential back-off up to an hour), then SRV `_matrix-fed._tcp` and
//! the deprecated `_matrix._tcp` (over DNS-over-HTTPS, the Worker has no DNS API), then port
//! 8448. A/AAAA lookups are left to the runtime, which connects by hostname.
//!
//! Also the federation settings ([`FederationConfig`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::acl::{host_of, is_ip_literal, DomainLists};

/// Where to send requests for a server name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The hostname or IP literal to connect to (without brackets for IPv6); TLS SNI and
    /// certificate checks use it (the runtime cannot connect to one name and verify another).
    pub host: String,
    pub port: u16,
    /// The `Host` header.
    pub host_header: String,
}

impl Destination {
    /// `https://host:port` (or `http://` in the development mode without TLS).
    pub fn base_url(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{host}:{}", self.port)
    }

    /// Whether `fetch()` would send the `Host` header the spec asks for. It sends the URL's
    /// authority and cannot be told otherwise (Workers refuse to override `Host`), so it
    /// cannot carry a request whose `Host` is not the host connected to: an SRV target or
    /// a hostname on 8448 (Host: the server name, without the port). `host:443` and `host`
    /// are the same authority (443 being https's default port).
    pub fn fetch_sends_host_header(&self) -> bool {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let (host, want) = (host.to_ascii_lowercase(), self.host_header.to_ascii_lowercase());
        want == format!("{host}:{}", self.port) || (self.port == 443 && want == host)
    }
}

pub const DEFAULT_PORT: u16 = 8448;
/// Well-known caching (spec: 24 h default, 48 h cap recommended).
pub const WELL_KNOWN_DEFAULT_TTL_SECS: u64 = 24 * 3600;
pub const WELL_KNOWN_MAX_TTL_SECS: u64 = 48 * 3600;
/// Errors are cached for up to an hour.
pub const WELL_KNOWN_ERROR_TTL_SECS: u64 = 3600;
/// Most bytes of a well-known document read.
pub const WELL_KNOWN_MAX_BYTES: usize = 50 * 1024;
/// Longest reuse of a resolved destination (see [`destination_ttl`]).
pub const DEST_CACHE_SECS: u64 = 3600;
/// KV's shortest expiry.
pub const MIN_CACHE_TTL_SECS: u64 = 60;

/// Splits a server name into hostname (brackets of an IPv6 literal removed) and port.
pub fn split(server_name: &str) -> Option<(String, Option<u16>)> {
    let host = host_of(server_name);
    let port = match server_name.get(host.len()..).unwrap_or_default() {
        "" => None,
        p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if bare.is_empty() {
        return None;
    }
    Some((bare.to_owned(), port))
}

/// Steps 1 and 2: an IP literal, or a hostname with an explicit port, needs no lookups.
/// `None`: go on with the well-known lookup of the hostname.
pub fn direct(server_name: &str) -> Option<Destination> {
    let (host, port) = split(server_name)?;
    if is_ip_literal(host_of(server_name)) || port.is_some() {
        return Some(Destination { host, port: port.unwrap_or(DEFAULT_PORT), host_header: server_name.to_owned() });
    }
    None
}

/// The delegated server name from a well-known response (status, body), if it is valid:
/// a 200 whose JSON has an `m.server` string that is a server name.
pub fn parse_well_known(status: u16, body: &[u8]) -> Option<String> {
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = v.get("m.server")?.as_str()?.trim();
    ruma::ServerName::parse(s).ok()?;
    split(s)?;
    Some(s.to_owned())
}

/// Steps 3.1 and 3.2 for a delegated name: like [`direct`], with the delegated name as the
/// `Host`. `None`: look up SRV records of the delegated hostname.
pub fn delegated(delegated_name: &str) -> Option<Destination> {
    direct(delegated_name)
}

/// The SRV names to try, in order, for a hostname (steps 3.3/3.4 and 4/5).
pub fn srv_names(host: &str) -> [String; 2] {
    [format!("_matrix-fed._tcp.{host}"), format!("_matrix._tcp.{host}")]
}

/// The SRV target chosen from a DNS-over-HTTPS JSON answer (`application/dns-json`): the
/// lowest priority, then the highest weight (RFC 2782 picks randomly by weight; one
/// deterministic choice is enough here), with the record's TTL. `None`: no usable record
/// (also for the target `.`, "service not available").
pub fn parse_srv_answer(answer: &Value) -> Option<(String, u16, u64)> {
    if answer.get("Status").and_then(Value::as_u64) != Some(0) {
        return None;
    }
    let mut best: Option<(u64, u64, String, u16, u64)> = None;
    for rr in answer.get("Answer")?.as_array()? {
        if rr.get("type").and_then(Value::as_u64) != Some(33) {
            continue;
        }
        let Some(data) = rr.get("data").and_then(Value::as_str) else { continue };
        let parts: Vec<&str> = data.split_whitespace().collect();
        let [prio, weight, port, target] = parts.as_slice() else { continue };
        let (Ok(prio), Ok(weight), Ok(port)) = (prio.parse::<u64>(), weight.parse::<u64>(), port.parse::<u16>()) else { continue };
        let target = target.trim_end_matches('.');
        if target.is_empty() || port == 0 {
            continue;
        }
        let ttl = rr.get("TTL").and_then(Value::as_u64).unwrap_or(3600);
        let better = match &best {
            None => true,
            Some((p, w, ..)) => prio < *p || (prio == *p && weight > *w),
        };
        if better {
            best = Some((prio, weight, target.to_owned(), port, ttl));
        }
    }
    best.map(|(_, _, t, p, ttl)| (t, p, ttl))
}

/// Steps 3.3–3.5 and 4–6: a hostname (the delegated one, or the server name's), with the SRV
/// record found if any. The `Host` header is the hostname, not the SRV target.
pub fn after_srv(host: &str, srv: Option<(String, u16)>) -> Destination {
    match srv {
        Some((target, port)) => Destination { host: target, port, host_header: host.to_owned() },
        None => Destination { host: host.to_owned(), port: DEFAULT_PORT, host_header: host.to_owned() },
    }
}

/// How long to cache a successful well-known response, from its `Cache-Control`: `max-age`
/// (capped at 48 h), `no-store`/`no-cache` as the shortest cache, 24 h without a header.
pub fn well_known_ttl(cache_control: Option<&str>) -> u64 {
    let Some(cc) = cache_control else {
        return WELL_KNOWN_DEFAULT_TTL_SECS;
    };
    let mut ttl = None;
    for d in cc.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_CACHE_TTL_SECS;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            ttl = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    ttl.unwrap_or(WELL_KNOWN_DEFAULT_TTL_SECS).clamp(MIN_CACHE_TTL_SECS, WELL_KNOWN_MAX_TTL_SECS)
}

/// How long a resolved destination is reused: at most an hour (`DEST_CACHE_SECS`), and no
/// longer than what it was derived from lives — the well-known outcome (its `Cache-Control`
/// or back-off) and the SRV record (its TTL) — so that a changed delegation is followed when
/// the server said it would be.
pub fn destination_ttl(well_known_secs: u64, srv_ttl: Option<u64>) -> u64 {
    let ttl = well_known_secs.min(srv_ttl.unwrap_or(u64::MAX)).min(DEST_CACHE_SECS);
    ttl.max(MIN_CACHE_TTL_SECS)
}

/// How long to remember a failed well-known lookup after `failures` failures in a row:
/// exponential back-off from a minute, at most an hour.
pub fn well_known_failure_ttl(failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(16);
    (MIN_CACHE_TTL_SECS << exp).min(WELL_KNOWN_ERROR_TTL_SECS)
}

/// A cached well-known outcome (KV, keyed by hostname).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WellKnownCache {
    /// The delegated server name, `None` when the lookup failed.
    pub delegated: Option<String>,
    /// Failures in a row (0 after a success).
    pub failures: u32,
}

impl WellKnownCache {
    /// After a failed lookup following `previous`: a previously valid delegation is kept (a
    /// transient failure must not reroute traffic) and retried with back-off.
    pub fn after_failure(previous: Option<&WellKnownCache>) -> (WellKnownCache, u64) {
        let failures = previous.map_or(0, |p| p.failures).saturating_add(1);
        let delegated = previous.and_then(|p| p.delegated.clone());
        let ttl = if delegated.is_some() { well_known_failure_ttl(failures) } else { WELL_KNOWN_ERROR_TTL_SECS };
        (WellKnownCache { delegated, failures }, ttl)
    }
}

/// How outbound requests reach other servers (`FEDERATION_TRANSPORT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `fetch()` for port 443, a TCP socket for any other port (deployed Workers' `fetch`
    /// ignores other ports), and for port 443 when `fetch()` cannot send the right `Host`
    /// (an SRV target on 443).
    Auto,
    /// Always a TCP socket (tests of the socket path).
    Socket,
    /// Always `fetch()` (development, where `wrangler dev` honours ports); the `Host` header
    /// is then the host and port connected to, whatever the spec asks.
    Fetch,
}

impl Transport {
    /// Whether a request to `dest` goes through a socket.
    pub fn uses_socket(self, dest: &Destination) -> bool {
        match self {
            Transport::Auto => dest.port != 443 || !dest.fetch_sends_host_header(),
            Transport::Socket => true,
            Transport::Fetch => false,
        }
    }
}

/// The federation transport and trust settings.
#[derive(Clone, Debug)]
pub struct FederationConfig {
    /// DNS-over-HTTPS resolver (JSON API) for SRV lookups (`FEDERATION_DOH_URL`).
    pub doh_url: String,
    pub transport: Transport,
    /// Development only (`FEDERATION_INSECURE_HTTP=1`): plain HTTP (and plain TCP on the
    /// socket path) instead of TLS, for tests against local stand-ins.
    pub insecure_http: bool,
    /// Time for one outbound request, connection to last byte (`FEDERATION_TIMEOUT_MS`).
    pub timeout_ms: u64,
    /// Largest response body read (`FEDERATION_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
    /// Servers we talk to (`FEDERATION_ALLOW` / `FEDERATION_DENY`).
    pub domains: DomainLists,
    /// Notary servers asked for keys a server does not serve itself (`TRUSTED_KEY_SERVERS`,
    /// none by default).
    pub trusted_key_servers: Vec<String>,
    /// The outbound queue's retry schedule (`FEDERATION_RETRY_MIN_MS`, `FEDERATION_RETRY_MAX_MS`).
    pub retry: crate::core::federation::queue::Backoff,
}

impl FederationConfig {
    /// Reads the settings; `var` returns a trimmed, non-empty var by name.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<FederationConfig, String> {
        let num = |k: &str, default: u64| -> Result<u64, String> {
            var(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{k} must be a whole number, got {v:?}")))
        };
        let transport = match var("FEDERATION_TRANSPORT").as_deref().unwrap_or("auto") {
            "auto" => Transport::Auto,
            "socket" => Transport::Socket,
            "fetch" => Transport::Fetch,
            other => return Err(format!("FEDERATION_TRANSPORT must be auto, socket or fetch, got {other:?}")),
        };
        let insecure_http = match var("FEDERATION_INSECURE_HTTP").as_deref().unwrap_or("0") {
            "1" | "true" | "on" => true,
            "0" | "false" | "off" => false,
            other => return Err(format!("FEDERATION_INSECURE_HTTP must be 0 or 1, got {other:?}")),
        };
        let doh_url = var("FEDERATION_DOH_URL").unwrap_or_else(|| "https://cloudflare-dns.com/dns-query".into());
        if !doh_url.starts_with("https://") && !doh_url.starts_with("http://") {
            return Err(format!("FEDERATION_DOH_URL must be an http(s) URL, got {doh_url:?}"));
        }
        let mut trusted_key_servers = Vec::new();
        for s in var("TRUSTED_KEY_SERVERS").unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
            ruma::ServerName::parse(s).map_err(|_| format!("TRUSTED_KEY_SERVERS: {s:?} is not a server name"))?;
            trusted_key_servers.push(s.to_owned());
        }
        Ok(FederationConfig {
            doh_url,
            transport,
            insecure_http,
            timeout_ms: num("FEDERATION_TIMEOUT_MS", 20_000)?.clamp(500, 60_000),
            max_response_bytes: num("FEDERATION_MAX_RESPONSE_BYTES", 32 * 1024 * 1024)?.clamp(64 * 1024, 100 * 1024 * 1024) as usize,
            domains: DomainLists::parse(&var("FEDERATION_ALLOW").unwrap_or_default(), &var("FEDERATION_DENY").unwrap_or_default()),
            trusted_key_servers,
            retry: crate::core::federation::queue::Backoff {
                base_ms: num("FEDERATION_RETRY_MIN_MS", crate::core::federation::queue::BACKOFF_BASE_MS)?.clamp(100, 3_600_000),
                max_ms: num("FEDERATION_RETRY_MAX_MS", crate::core::federation::queue::BACKOFF_MAX_MS)?.clamp(1_000, 86_400_000),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(host: &str, port: u16, hh: &str) -> Destination {
        Destination { host: host.into(), port, host_header: hh.into() }
    }

    #[test]
    fn literals_and_explicit_ports_need_no_lookup() {
        assert_eq!(direct("1.2.3.4"), Some(d("1.2.3.4", 8448, "1.2.3.4")));
        assert_eq!(direct("1.2.3.4:80"), Some(d("1.2.3.4", 80, "1.2.3.4:80")));
        assert_eq!(direct("[::1]"), Some(d("::1", 8448, "[::1]")));
        assert_eq!(direct("[::1]:8000"), Some(d("::1", 8000, "[::1]:8000")));
        assert_eq!(direct("localhost:8787"), Some(d("localhost", 8787, "localhost:8787")));
        assert_eq!(direct("example.org"), None);
        assert_eq!(direct("example.org:99999"), None);
        assert_eq!(direct("example.org:"), None);
        assert_eq!(d("::1", 8000, "").base_url(true), "https://[::1]:8000");
        assert_eq!(d("a.org", 80, "").base_url(false), "http://a.org:80");
    }

    #[test]
    fn well_known_documents() {
        assert_eq!(parse_well_known(200, br#"{"m.server": "matrix.example.org:443"}"#).as_deref(), Some("matrix.example.org:443"));
        assert_eq!(parse_well_known(200, br#"{"m.server": "matrix.example.org"}"#).as_deref(), Some("matrix.example.org"));
        for (status, body) in [
            (404, &br#"{"m.server": "a.org"}"#[..]),
            (200, b"not json"),
            (200, b"{}"),
            (200, br#"{"m.server": 5}"#),
            (200, br#"{"m.server": "bad name!"}"#),
            (200, br#"{"m.server": "a.org:0x1"}"#),
            (200, b"[]"),
        ] {
            assert_eq!(parse_well_known(status, body), None, "{status} {:?}", String::from_utf8_lossy(body));
        }
        // The delegated name then resolves like a server name, its own name as Host.
        assert_eq!(delegated("m.a.org:443"), Some(d("m.a.org", 443, "m.a.org:443")));
        assert_eq!(delegated("5.6.7.8"), Some(d("5.6.7.8", 8448, "5.6.7.8")));
        assert_eq!(delegated("m.a.org"), None);
    }

    #[test]
    fn srv_answers() {
        assert_eq!(srv_names("a.org"), ["_matrix-fed._tcp.a.org".to_string(), "_matrix._tcp.a.org".to_string()]);
        let answer = json!({"Status": 0, "Answer": [
            {"name": "_matrix-fed._tcp.a.org", "type": 33, "TTL": 300, "data": "20 100 8449 backup.a.org."},
            {"name": "_matrix-fed._tcp.a.org", "type": 33, "TTL": 600, "data": "10 5 8448 low.a.org."},
            {"name": "_matrix-fed._tcp.a.org", "type": 33, "TTL": 900, "data": "10 50 443 main.a.org."},
            {"name": "x", "type": 5, "data": "cname.a.org."},
            {"name": "x", "type": 33, "data": "garbage"},
        ]});
        assert_eq!(parse_srv_answer(&answer), Some(("main.a.org".into(), 443, 900)));
        assert_eq!(parse_srv_answer(&json!({"Status": 3})), None);
        assert_eq!(parse_srv_answer(&json!({"Status": 0})), None);
        assert_eq!(parse_srv_answer(&json!({"Status": 0, "Answer": [{"type": 33, "data": "0 0 0 ."}]})), None);
        assert_eq!(parse_srv_answer(&json!({"Status": 0, "Answer": [{"type": 33, "data": "0 0 8448 ."}]})), None);
        assert_eq!(after_srv("a.org", Some(("main.a.org".into(), 443))), d("main.a.org", 443, "a.org"));
        assert_eq!(after_srv("a.org", None), d("a.org", 8448, "a.org"));
    }

    #[test]
    fn cache_lifetimes() {
        assert_eq!(well_known_ttl(None), 24 * 3600);
        assert_eq!(well_known_ttl(Some("public, max-age=7200")), 7200);
        assert_eq!(well_known_ttl(Some("max-age=9999999")), 48 * 3600);
        assert_eq!(well_known_ttl(Some("max-age=5")), 60);
        assert_eq!(well_known_ttl(Some("no-store")), 60);
        assert_eq!(well_known_ttl(Some("max-age=abc")), 24 * 3600);
        // A destination lives no longer than the well-known or SRV record it came from.
        assert_eq!(destination_ttl(24 * 3600, None), 3600);
        assert_eq!(destination_ttl(300, None), 300);
        assert_eq!(destination_ttl(24 * 3600, Some(120)), 120);
        assert_eq!(destination_ttl(600, Some(900)), 600);
        assert_eq!(destination_ttl(0, Some(0)), 60);
        assert_eq!(well_known_failure_ttl(1), 60);
        assert_eq!(well_known_failure_ttl(2), 120);
        assert_eq!(well_known_failure_ttl(6), 1920);
        assert_eq!(well_known_failure_ttl(7), 3600);
        assert_eq!(well_known_failure_ttl(u32::MAX), 3600);
        // A failure without a previous delegation is cached for an hour; with one, the
        // delegation is kept and retried with back-off.
        let (c, ttl) = WellKnownCache::after_failure(None);
        assert_eq!((c.delegated, c.failures, ttl), (None, 1, 3600));
        let ok = WellKnownCache { delegated: Some("m.a.org:443".into()), failures: 0 };
        let (c, ttl) = WellKnownCache::after_failure(Some(&ok));
        assert_eq!((c.delegated.as_deref(), c.failures, ttl), (Some("m.a.org:443"), 1, 60));
        let (c, ttl) = WellKnownCache::after_failure(Some(&c));
        assert_eq!((c.failures, ttl), (2, 120));
    }

    #[test]
    fn settings() {
        let none = |_: &str| None;
        let c = FederationConfig::from_vars(none).unwrap();
        assert_eq!(c.transport, Transport::Auto);
        assert!(!c.insecure_http && c.trusted_key_servers.is_empty() && c.domains.permits("x.org"));
        assert_eq!(c.doh_url, "https://cloudflare-dns.com/dns-query");
        let to = |host: &str, port: u16, hh: &str| Destination { host: host.into(), port, host_header: hh.into() };
        assert!(Transport::Auto.uses_socket(&to("a.org", 8448, "a.org:8448")) && !Transport::Auto.uses_socket(&to("a.org", 443, "a.org")));
        assert!(Transport::Socket.uses_socket(&to("a.org", 443, "a.org")) && !Transport::Fetch.uses_socket(&to("a.org", 8448, "a.org")));
        // fetch() sends the URL's authority as Host: fine for a name with its port (443 or
        // not, an IP literal too), not for an SRV target or a hostname without its port.
        for (dest, ok) in [
            (to("a.org", 443, "a.org"), true),
            (to("m.a.org", 443, "m.a.org:443"), true),
            (to("A.org", 8000, "a.ORG:8000"), true),
            (to("::1", 8448, "[::1]:8448"), true),
            (to("1.2.3.4", 8448, "1.2.3.4"), false),
            (to("a.org", 8448, "a.org"), false),
            (to("matrix.a.org", 443, "a.org"), false),
        ] {
            assert_eq!(dest.fetch_sends_host_header(), ok, "{dest:?}");
        }
        // So with `auto`, an SRV target on 443 goes through a socket, which sends our Host.
        assert!(Transport::Auto.uses_socket(&to("matrix.a.org", 443, "a.org")));
        let vars = |k: &str| match k {
            "FEDERATION_TRANSPORT" => Some("socket".to_string()),
            "FEDERATION_INSECURE_HTTP" => Some("1".into()),
            "TRUSTED_KEY_SERVERS" => Some("matrix.org, notary.example:8448".into()),
            "FEDERATION_DENY" => Some("*.evil.com".into()),
            _ => None,
        };
        let c = FederationConfig::from_vars(vars).unwrap();
        assert_eq!(c.transport, Transport::Socket);
        assert!(c.insecure_http);
        assert_eq!(c.trusted_key_servers, vec!["matrix.org", "notary.example:8448"]);
        assert!(!c.domains.permits("a.evil.com"));
        assert!(FederationConfig::from_vars(|k| (k == "FEDERATION_TRANSPORT").then(|| "carrier pigeon".into())).is_err());
        assert!(FederationConfig::from_vars(|k| (k == "TRUSTED_KEY_SERVERS").then(|| "bad name".into())).is_err());
        assert!(FederationConfig::from_vars(|k| (k == "FEDERATION_DOH_URL").then(|| "dns.example".into())).is_err());
    }
}
