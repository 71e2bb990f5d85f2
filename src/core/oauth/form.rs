//! Signed, expiring form state and CSRF tokens for the HTML pages.
//!
//! The authorisation request travels from the login page's GET to its POST inside the form,
//! HMAC-signed so it cannot be altered, and bound to a random CSRF cookie set with the page:
//! a form posted from another site (login CSRF) lacks the cookie and is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

use crate::core::crypto::ct_eq;

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// `base64url(json).base64url(hmac)`.
pub fn seal<T: Serialize>(key: &[u8], value: &T) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serialisable"));
    let sig = URL_SAFE_NO_PAD.encode(mac(key, body.as_bytes()));
    format!("{body}.{sig}")
}

/// The value sealed by [`seal`], if the signature is right.
pub fn open<T: DeserializeOwned>(key: &[u8], sealed: &str) -> Option<T> {
    let (body, sig) = sealed.split_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    if !ct_eq(&mac(key, body.as_bytes()), &sig) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// A CSRF token bound to `purpose` and a secret the browser holds (its session cookie).
pub fn csrf_token(key: &[u8], purpose: &str, bound_to: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, format!("{purpose}\0{bound_to}").as_bytes()))
}

pub fn check_csrf(key: &[u8], purpose: &str, bound_to: &str, presented: &str) -> bool {
    ct_eq(csrf_token(key, purpose, bound_to).as_bytes(), presented.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let s = seal(b"k", &serde_json::json!({"a": 1}));
        assert_eq!(open::<serde_json::Value>(b"k", &s).unwrap()["a"], 1);
        assert!(open::<serde_json::Value>(b"other", &s).is_none());
        let (body, sig) = s.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"a":2}"#);
        assert!(open::<serde_json::Value>(b"k", &format!("{forged}.{sig}")).is_none());
        assert!(open::<serde_json::Value>(b"k", body).is_none());
    }

    #[test]
    fn csrf() {
        let t = csrf_token(b"k", "account", "session1");
        assert!(check_csrf(b"k", "account", "session1", &t));
        assert!(!check_csrf(b"k", "account", "session2", &t));
        assert!(!check_csrf(b"k", "other", "session1", &t));
        assert!(!check_csrf(b"k", "account", "session1", ""));
    }
}
