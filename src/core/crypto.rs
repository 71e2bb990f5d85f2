//! Secrets: random tokens, token hashes, password hashes, constant-time comparison.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the platform CSPRNG (crypto.getRandomValues on Workers).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the platform has a CSPRNG");
    buf
}

/// `N` bytes from the platform CSPRNG, as an array (for fixed-size keys and seeds).
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the platform has a CSPRNG");
    buf
}

/// A random token with a readable prefix, e.g. `syt_…` (Synapse's style, so that leaked
/// tokens are recognisable by secret scanners). 32 random bytes = 256 bits.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes(32)))
}

/// A random string of `len` characters from `A-Z`, for device IDs and session IDs.
pub fn random_alpha(len: usize) -> String {
    // 256 % 26 != 0: reject the top bytes so every letter is equally likely.
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len * 2) {
            if (b as usize) < 26 * 9 && out.len() < len {
                out.push(char::from(b'A' + b % 26));
            }
        }
    }
    out
}

/// The event ID answered for a shadow-banned sender's event, which is neither stored nor sent
/// (Synapse's shadow ban): shaped like a v4+ event ID, naming nothing.
pub fn decoy_event_id() -> String {
    format!("${}", random_alpha(43))
}

/// The stored form of a bearer token: its SHA-256, unpadded base64. Tokens have 256 bits
/// of entropy, so a fast hash is enough; the database never holds a usable token.
pub fn token_hash(token: &str) -> String {
    STANDARD_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Default PBKDF2 iteration count for new password hashes.
pub const DEFAULT_PBKDF2_ITERATIONS: u32 = 100_000;

/// A stored password hash, `$pbkdf2-sha256$i=ITER$SALT$HASH` (salt and hash unpadded
/// base64): the parameters live in the string, so the cost can change without breaking old
/// hashes. The derivation itself is PBKDF2-HMAC-SHA256 with a 32-byte output, computed here
/// in pure Rust ([`pbkdf2_sha256`]) or, in the Worker, by WebCrypto at native speed
/// (`service::password`): both give the same bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct PasswordHash {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

impl PasswordHash {
    /// Parses a stored hash; `None` if it is not one (an unparsable hash never matches).
    pub fn parse(stored: &str) -> Option<PasswordHash> {
        let parts: Vec<&str> = stored.split('$').collect();
        // ["", "pbkdf2-sha256", "i=N", salt, hash]
        let ["", "pbkdf2-sha256", iterations, salt, hash] = parts.as_slice() else {
            return None;
        };
        let iterations = iterations.strip_prefix("i=").and_then(|i| i.parse::<u32>().ok())?;
        if iterations == 0 || iterations > 10_000_000 {
            return None;
        }
        let (Ok(salt), Ok(hash)) = (STANDARD_NO_PAD.decode(salt), STANDARD_NO_PAD.decode(hash)) else {
            return None;
        };
        Some(PasswordHash { iterations, salt, hash })
    }

    /// Whether a stored hash should be made again with `iterations` after a successful login
    /// (issue #17: an operator who changes `PASSWORD_PBKDF2_ITERATIONS`, for instance to the
    /// Free-plan setting or back, moves every account to it as its owner next logs in).
    /// An unparsable hash never verified, so it is never rehashed either.
    pub fn needs_rehash(stored: &str, iterations: u32) -> bool {
        PasswordHash::parse(stored).is_some_and(|h| h.iterations != iterations)
    }

    /// The stored form.
    pub fn format(&self) -> String {
        format!("$pbkdf2-sha256$i={}${}${}", self.iterations, STANDARD_NO_PAD.encode(&self.salt), STANDARD_NO_PAD.encode(&self.hash))
    }

    /// Whether `derived` (PBKDF2 of the candidate password with this salt and cost) is this
    /// hash, in constant time.
    pub fn matches(&self, derived: &[u8]) -> bool {
        ct_eq(derived, &self.hash)
    }
}

/// A fresh 16-byte salt for a new password hash.
pub fn new_salt() -> Vec<u8> {
    random_bytes(16)
}

/// Hashes a password in pure Rust (the reference; the Worker uses WebCrypto).
pub fn hash_password(password: &str, iterations: u32) -> String {
    let salt = new_salt();
    let hash = pbkdf2_sha256(password.as_bytes(), &salt, iterations).to_vec();
    PasswordHash { iterations, salt, hash }.format()
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output, in pure Rust.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2::<Hmac<Sha256>>(password, salt, iterations, &mut out).expect("HMAC accepts any key length");
    out
}

/// Checks a password against a stored hash in pure Rust. An unparsable hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::parse(stored).is_some_and(|h| h.matches(&pbkdf2_sha256(password.as_bytes(), &h.salt, h.iterations)))
}

/// Lower-case hex HMAC-SHA1, as Synapse's shared-secret registration uses.
pub fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    hex(&hmac_sha1(key, msg))
}

/// HMAC-SHA1 (Synapse's shared-secret registration, coturn's TURN REST credentials).
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_of_another_cost_is_rehashed_on_login() {
        let h = PasswordHash { iterations: 100_000, salt: vec![1; 16], hash: vec![2; 32] }.format();
        assert!(!PasswordHash::needs_rehash(&h, 100_000));
        assert!(PasswordHash::needs_rehash(&h, 10_000));
        assert!(!PasswordHash::needs_rehash("not a hash", 10_000));
    }

    #[test]
    fn password_round_trip_and_parameters_in_string() {
        let h = hash_password("correct horse", 1000);
        assert!(h.starts_with("$pbkdf2-sha256$i=1000$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("", &h));
        // Salted: the same password hashes differently.
        assert_ne!(h, hash_password("correct horse", 1000));
    }

    #[test]
    fn garbage_hashes_never_match() {
        for bad in ["", "$", "$pbkdf2-sha256$i=x$a$b", "$md5$i=1$a$b", "$pbkdf2-sha256$i=0$$"] {
            assert!(!verify_password("x", bad), "{bad}");
        }
    }

    #[test]
    fn stored_hash_parses_and_formats_back() {
        let stored = hash_password("pw", 1000);
        let h = PasswordHash::parse(&stored).unwrap();
        assert_eq!((h.iterations, h.salt.len(), h.hash.len()), (1000, 16, 32));
        assert_eq!(h.format(), stored);
        assert!(h.matches(&pbkdf2_sha256(b"pw", &h.salt, 1000)));
        assert!(!h.matches(&pbkdf2_sha256(b"pW", &h.salt, 1000)));
        assert!(PasswordHash::parse("$pbkdf2-sha256$i=10000001$AA$AA").is_none());
    }

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, dkLen=64 (first 32).
        let out = pbkdf2_sha256(b"passwd", b"salt", 1);
        assert_eq!(hex(&out), "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
    }

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = random_token("syt");
        assert!(a.starts_with("syt_") && a.len() > 40);
        assert_ne!(a, random_token("syt"));
        assert_eq!(token_hash(&a), token_hash(&a));
        let d = random_alpha(10);
        assert_eq!(d.len(), 10);
        assert!(d.chars().all(|c| c.is_ascii_uppercase()));
    }

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        assert_eq!(hmac_sha1_hex(b"Jefe", b"what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
