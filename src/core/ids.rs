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
    fn login_input() {
        assert_eq!(local_user_from_input("alice", sn()).unwrap().as_str(), "@alice:localhost:8787");
        assert_eq!(local_user_from_input("Alice", sn()).unwrap().as_str(), "@alice:localhost:8787");
        assert_eq!(local_user_from_input("@alice:localhost:8787", sn()).unwrap().as_str(), "@alice:localhost:8787");
        assert!(local_user_from_input("@alice:elsewhere.org", sn()).is_none());
        assert!(local_user_from_input("@:", sn()).is_none());
    }
}
