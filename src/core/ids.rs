//! User ID rules for accounts on this server (spec: appendices, "User Identifiers").

use ruma::{OwnedUserId, ServerName, UserId};

use crate::err;
use crate::error::Result;

/// Checks a localpart for a *new* account: the spec's current grammar
/// (`a-z 0-9 . _ = - / +`), not starting with `_` (Synapse keeps that prefix for
/// application services), the whole ID at most 255 bytes, and not a reserved name
/// unless `allow_reserved` (the admin API).
pub fn validate_new_localpart(localpart: &str, server_name: &ServerName, reserved: &[String], allow_reserved: bool) -> Result<OwnedUserId> {
    if localpart.is_empty() {
        return Err(err!(InvalidUsername, "User ID cannot be empty"));
    }
    if !localpart.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+')) {
        return Err(err!(InvalidUsername, "User ID can only contain characters a-z, 0-9, or '._=-/+'"));
    }
    if localpart.starts_with('_') {
        return Err(err!(InvalidUsername, "User ID may not begin with '_'"));
    }
    if 1 + localpart.len() + 1 + server_name.as_str().len() > 255 {
        return Err(err!(InvalidUsername, "User ID may not be longer than 255 characters"));
    }
    if !allow_reserved && reserved.iter().any(|r| r == localpart) {
        return Err(err!(Exclusive, "This user ID is reserved"));
    }
    UserId::parse(format!("@{localpart}:{server_name}")).map_err(|e| err!(InvalidUsername, "Invalid user ID: {e}"))
}

/// Parses a user ID a client names (a path segment, a request body field, an
/// `m.room.member` state key, a key of a `users` map), refusing it with
/// `400 M_INVALID_PARAM` unless it is usable (spec: appendices, "User Identifiers" and
/// "Historical User IDs").
///
/// The historical character set is tolerated, as the spec requires for IDs that exist
/// (users of other servers, old accounts): any printable ASCII except `:` in the localpart.
/// What the spec calls non-compliant and says servers should not pass on to clients is
/// refused: an empty localpart, control characters, whitespace, anything outside
/// U+0021–U+007E. The whole ID is at most 255 bytes and the server name must be valid.
/// Ruma's `UserId::parse` alone accepts all of these (it only refuses `:` and NUL).
pub fn parse_client_user_id(s: &str) -> Result<OwnedUserId> {
    let bad = |why: &str| {
        // Quote the ID escaped and short: it may hold control or bidi characters.
        let shown: String = s.chars().take(64).flat_map(char::escape_default).collect();
        err!(InvalidParam, "Invalid user ID \"{shown}\": {why}")
    };
    if s.len() > 255 {
        return Err(bad("longer than 255 bytes"));
    }
    let rest = s.strip_prefix('@').ok_or_else(|| bad("must start with @"))?;
    let (localpart, server) = rest.split_once(':').ok_or_else(|| bad("must be @localpart:server"))?;
    if localpart.is_empty() {
        return Err(bad("empty localpart"));
    }
    if !localpart.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(bad("the localpart may only hold printable ASCII characters"));
    }
    if server.is_empty() || !server.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("invalid server name"));
    }
    UserId::parse(s).map_err(|e| bad(&e.to_string()))
}

/// Checks every key of a `users` map of a client-supplied `m.room.power_levels` content
/// (Synapse refuses power levels naming invalid user IDs with `400`).
pub fn check_power_levels_users(content: &serde_json::Value) -> Result<()> {
    if let Some(users) = content.get("users").and_then(serde_json::Value::as_object) {
        for k in users.keys() {
            parse_client_user_id(k)?;
        }
    }
    Ok(())
}

/// Resolves what a client typed at login (`alice` or `@alice:server`) to a local user ID.
/// Returns `None` for a user of another server or a malformed ID, which login treats like
/// an unknown user.
pub fn local_user_from_input(input: &str, server_name: &ServerName) -> Option<OwnedUserId> {
    let input = input.trim();
    let id =
        if input.starts_with('@') { UserId::parse(input).ok()? } else { UserId::parse(format!("@{}:{server_name}", input.to_lowercase())).ok()? };
    (id.server_name() == server_name).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sn() -> &'static ServerName {
        <&ServerName>::try_from("localhost:8787").unwrap()
    }

    #[test]
    fn grammar() {
        let reserved = vec!["admin".to_string()];
        assert!(validate_new_localpart("alice", sn(), &reserved, false).is_ok());
        assert!(validate_new_localpart("a.b_c=d-e/f+g9", sn(), &reserved, false).is_ok());
        for bad in ["", "Alice", "al ice", "al:ice", "_bridge", "ali@ce", "élan"] {
            let e = validate_new_localpart(bad, sn(), &reserved, false).unwrap_err();
            assert_eq!(e.kind().errcode(), "M_INVALID_USERNAME", "{bad}");
        }
        let long = "a".repeat(250);
        assert_eq!(validate_new_localpart(&long, sn(), &reserved, false).unwrap_err().kind().errcode(), "M_INVALID_USERNAME");
    }

    #[test]
    fn reserved_only_for_admin() {
        let reserved = vec!["admin".to_string()];
        assert_eq!(validate_new_localpart("admin", sn(), &reserved, false).unwrap_err().kind().errcode(), "M_EXCLUSIVE");
        assert!(validate_new_localpart("admin", sn(), &reserved, true).is_ok());
    }

    #[test]
    fn client_user_ids() {
        for good in ["@alice:localhost:8787", "@a.b_c=d-e/f+g9:example.org", "@Alice:example.org", "@x!y#z:[::1]:8448", "@_bridge:example.org"] {
            assert_eq!(parse_client_user_id(good).unwrap().as_str(), good);
        }
        let long = format!("@{}:example.org", "a".repeat(250));
        let bad = [
            "@:example.org",
            "@a\u{1}b:example.org",
            "@a\u{7f}b:example.org",
            "@a\u{202e}b:example.org",
            "@a b:example.org",
            "@a\tb:example.org",
            "@élan:example.org",
            "alice:example.org",
            "@alice",
            "@alice:",
            "@alice:exa mple.org",
            "@alice:exa\u{0}mple.org",
            "",
            "@",
            long.as_str(),
        ];
        for b in bad {
            let e = parse_client_user_id(b).unwrap_err();
            assert_eq!(e.kind().errcode(), "M_INVALID_PARAM", "{b:?}");
        }
        // The message shows the ID escaped, never raw control or bidi characters.
        let e = parse_client_user_id("@a\u{202e}b:example.org").unwrap_err();
        assert!(!e.to_string().contains('\u{202e}'), "{e}");
    }

    #[test]
    fn power_levels_users() {
        assert!(check_power_levels_users(&serde_json::json!({ "users": { "@a:b.org": 100 } })).is_ok());
        assert!(check_power_levels_users(&serde_json::json!({ "ban": 50 })).is_ok());
        let e = check_power_levels_users(&serde_json::json!({ "users": { "@a:b.org": 100, "@:b.org": 50 } })).unwrap_err();
        assert_eq!(e.kind().errcode(), "M_INVALID_PARAM");
    }

    #[test]
    fn login_input() {
        assert_eq!(local_user_from_input("alice", sn()).unwrap().as_str(), "@alice:localhost:8787");
        assert_eq!(local_user_from_input("Alice", sn()).unwrap().as_str(), "@alice:localhost:8787");
        assert_eq!(local_user_from_input("@alice:localhost:8787", sn()).unwrap().as_str(), "@alice:localhost:8787");
        assert!(local_user_from_input("@alice:elsewhere.org", sn()).is_none());
        assert!(local_user_from_input("@:", sn()).is_none());
    }
}
