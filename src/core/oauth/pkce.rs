//! PKCE (RFC 7636). The spec requires the `S256` method for the authorisation code grant
//! (client-server-api, "Authorisation code grant"); `plain` is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::core::crypto::{ct_eq, sha256};

fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// A `code_verifier`: 43 to 128 characters of `[A-Z] [a-z] [0-9] - . _ ~` (RFC 7636 4.1).
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.chars().all(unreserved)
}

/// An `S256` `code_challenge`: the unpadded base64url of a SHA-256, so 43 characters.
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// Checks a verifier against the challenge stored with the code (RFC 7636 4.6).
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    valid_verifier(verifier) && ct_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(v), c);
        assert!(valid_challenge(c));
        assert!(verify_s256(v, c));
        assert!(!verify_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", c));
    }

    #[test]
    fn verifier_shape() {
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(valid_verifier(&"a".repeat(128)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
        // A too-short verifier never matches, even if its hash does.
        assert!(!verify_s256("short", &s256("short")));
        assert!(!valid_challenge("plainchallenge"));
    }
}
