//! Which servers may talk to us or to a room: the room's `m.room.server_acl` (spec:
//! client-server-api, "Server Access Control Lists (ACLs) for rooms", and server-server-api,
//! "Server Access Control Lists (ACLs)") and this server's own allow/deny lists
//! (`FEDERATION_ALLOW` / `FEDERATION_DENY`).

use serde_json::Value;

/// Whether `server` may take part in a room whose current `m.room.server_acl` content is
/// `content`: an IP literal is denied when `allow_ip_literals` is `false`; then `deny` wins;
/// then `allow` (empty or missing: nobody). Globs are case-insensitive and the port is
/// ignored. Entries that are not strings are ignored.
pub fn allows(content: &Value, server: &str) -> bool {
    let host = host_of(server);
    let allow_ip_literals = content.get("allow_ip_literals").and_then(Value::as_bool).unwrap_or(true);
    if !allow_ip_literals && is_ip_literal(host) {
        return false;
    }
    let list =
        |k: &str| -> Vec<&str> { content.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default() };
    if list("deny").iter().any(|g| glob_matches(g, host)) {
        return false;
    }
    list("allow").iter().any(|g| glob_matches(g, host))
}

/// The hostname of a server name: without its port, brackets of an IPv6 literal kept.
pub fn host_of(server: &str) -> &str {
    if server.starts_with('[') {
        return match server.find(']') {
            Some(i) => server.get(..=i).unwrap_or(server),
            None => server,
        };
    }
    match server.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => server,
    }
}

/// An IPv4 dotted quad or a bracketed IPv6 literal.
pub fn is_ip_literal(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Glob-style matching (spec: appendices, "Glob-style matching"): `*` matches any run of
/// characters, `?` exactly one; case-insensitive.
pub fn glob_matches(glob: &str, s: &str) -> bool {
    let g: Vec<char> = glob.to_lowercase().chars().collect();
    let s: Vec<char> = s.to_lowercase().chars().collect();
    // Iterative matching with backtracking to the last `*`: linear-ish, no recursion blow-up.
    let (mut gi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, si));
                gi += 1;
            }
            Some(c) if *c == '?' || Some(c) == s.get(si) => {
                gi += 1;
                si += 1;
            }
            _ => match star {
                Some((sg, ss)) => {
                    gi = sg + 1;
                    si = ss + 1;
                    star = Some((sg, ss + 1));
                }
                None => return false,
            },
        }
    }
    g.get(gi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// This server's own federation allow/deny lists: comma-separated host globs (ports
/// ignored). An empty allow list allows everyone; deny wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainLists {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl DomainLists {
    pub fn parse(allow: &str, deny: &str) -> DomainLists {
        let split = |s: &str| s.split(',').map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
        DomainLists { allow: split(allow), deny: split(deny) }
    }

    pub fn permits(&self, server: &str) -> bool {
        let host = host_of(server);
        if self.deny.iter().any(|g| glob_matches(g, host)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|g| glob_matches(g, host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "anything.org"));
        assert!(glob_matches("*.example.org", "a.example.org"));
        assert!(glob_matches("*.example.org", "a.b.example.org"));
        assert!(!glob_matches("*.example.org", "example.org"));
        assert!(glob_matches("EXAMPLE.org", "example.ORG"));
        assert!(glob_matches("ex?mple.org", "exAmple.org"));
        assert!(!glob_matches("ex?mple.org", "exmple.org"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("**a", "ba"));
        assert!(!glob_matches("", "a"));
        assert!(glob_matches("ünï*", "ÜNÏcode"));
        // Pathological patterns stay fast.
        let long = "a".repeat(2000);
        assert!(!glob_matches(&"*a".repeat(50).to_string().replace("**", "*"), &format!("{long}b")));
    }

    #[test]
    fn host_and_literals() {
        assert_eq!(host_of("a.org:8448"), "a.org");
        assert_eq!(host_of("a.org"), "a.org");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("1.2.3.4:5"), "1.2.3.4");
        assert!(is_ip_literal("1.2.3.4") && is_ip_literal("[::1]"));
        assert!(!is_ip_literal("a.org") && !is_ip_literal("::1") && !is_ip_literal("1.2.3"));
    }

    #[test]
    fn room_acls_follow_the_spec_order() {
        let acl = json!({"allow": ["*"], "deny": ["evil.com", "*.evil.com"], "allow_ip_literals": false});
        assert!(allows(&acl, "good.org"));
        assert!(allows(&acl, "good.org:1234"));
        assert!(!allows(&acl, "evil.com"));
        assert!(!allows(&acl, "evil.com:8448"));
        assert!(!allows(&acl, "sub.EVIL.com"));
        assert!(!allows(&acl, "1.2.3.4"));
        assert!(!allows(&acl, "[::1]:8448"));
        // allow_ip_literals defaults to true, also when not a boolean.
        assert!(allows(&json!({"allow": ["*"]}), "1.2.3.4:80"));
        assert!(allows(&json!({"allow": ["*"], "allow_ip_literals": "no"}), "1.2.3.4"));
        // No allow list: nobody. Deny wins over allow.
        assert!(!allows(&json!({}), "good.org"));
        assert!(!allows(&json!({"allow": ["good.org"], "deny": ["good.org"]}), "good.org"));
        assert!(allows(&json!({"allow": ["good.org", 5, null]}), "good.org"));
        assert!(!allows(&json!({"allow": "*"}), "good.org"));
    }

    #[test]
    fn domain_lists() {
        let l = DomainLists::parse("", "");
        assert!(l.permits("anyone.org"));
        let l = DomainLists::parse("*.example.org, friend.net", "bad.example.org");
        assert!(l.permits("a.example.org:8448"));
        assert!(l.permits("FRIEND.net"));
        assert!(!l.permits("bad.example.org"));
        assert!(!l.permits("stranger.org"));
        let l = DomainLists::parse("", "*.evil.com,evil.com");
        assert!(!l.permits("x.evil.com") && !l.permits("evil.com:1") && l.permits("nice.com"));
    }
}
