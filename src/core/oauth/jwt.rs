//! The RS256 keys, the JWKS, and the JWTs the provider issues: access tokens (shaped like
//! RFC 9068, `typ: at+jwt`) and OpenID Connect ID tokens.
//!
//! The private key is the secret `OAUTH_SIGNING_KEY` (PKCS#8 or PKCS#1 PEM, raw or base64
//! of the PEM). `OAUTH_PREVIOUS_SIGNING_KEYS` holds the keys it replaced (public or private
//! PEMs, raw or base64, comma- or whitespace-separated): tokens they signed still verify
//! and their public halves stay in the JWKS until those tokens have expired and the
//! operator drops them. Each key's `kid` is its RFC 7638 JWK thumbprint.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::crypto::sha256;

/// The `typ` header of access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Clone)]
struct PublicKey {
    kid: String,
    n: String,
    e: String,
    key: RsaPublicKey,
}

impl PublicKey {
    fn from_rsa(k: &RsaPublicKey) -> Result<Self, String> {
        if k.size() < 256 {
            return Err("RSA keys must be at least 2048 bits".into());
        }
        let n = URL_SAFE_NO_PAD.encode(k.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(k.e().to_bytes_be());
        // RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
        let kid = URL_SAFE_NO_PAD.encode(sha256(format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#).as_bytes()));
        Ok(PublicKey { kid, n, e, key: k.clone() })
    }

    fn jwk(&self) -> Value {
        json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e })
    }
}

/// The current signing key and the previous public keys.
#[derive(Clone)]
pub struct OAuthKeys {
    current: PublicKey,
    /// Parsed once (with its CRT values precomputed): parsing the PEM/DER again for every
    /// token, as the jsonwebtoken crate did, cost a key validation per signature.
    signing: RsaPrivateKey,
    previous: Vec<PublicKey>,
}

impl std::fmt::Debug for OAuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "OAuthKeys(kid={}, previous={})", self.current.kid, self.previous.len())
    }
}

/// Splits a config value into PEM documents: PEM text as is, or base64 of PEM text
/// (a dotenv-friendly one-line form), several separated by commas or whitespace.
fn pem_documents(value: &str) -> Result<Vec<String>, String> {
    let value = value.trim();
    if value.contains("-----BEGIN") {
        let mut docs = Vec::new();
        let mut rest = value;
        while let Some(start) = rest.find("-----BEGIN") {
            let after = rest.get(start..).unwrap_or_default();
            let end_marker = after.find("-----END").ok_or("PEM without an END line")?;
            let end = after.get(end_marker..).and_then(|t| t.find('\n')).map_or(after.len(), |i| end_marker + i);
            let (doc, tail) = after.split_at_checked(end).unwrap_or((after, ""));
            docs.push(doc.trim().replace("\\n", "\n"));
            rest = tail;
        }
        return Ok(docs);
    }
    let mut docs = Vec::new();
    for part in value.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()) {
        let bytes = STANDARD
            .decode(part.trim_end_matches('=').to_owned() + &"=".repeat((4 - part.trim_end_matches('=').len() % 4) % 4))
            .map_err(|_| "a key is neither PEM nor base64 of a PEM".to_string())?;
        let text = String::from_utf8(bytes).map_err(|_| "a base64 key does not decode to PEM text".to_string())?;
        if !text.contains("-----BEGIN") {
            return Err("a base64 key does not decode to PEM text".into());
        }
        docs.extend(pem_documents(&text)?);
    }
    Ok(docs)
}

fn private_key(pem: &str) -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| "not an RSA private key in PKCS#8 or PKCS#1 PEM".to_string())
}

fn public_key(pem: &str) -> Result<RsaPublicKey, String> {
    if let Ok(k) = private_key(pem) {
        return Ok(k.to_public_key());
    }
    RsaPublicKey::from_public_key_pem(pem).or_else(|_| RsaPublicKey::from_pkcs1_pem(pem)).map_err(|_| "not an RSA key in PEM".to_string())
}

impl OAuthKeys {
    /// Parses `OAUTH_SIGNING_KEY` and, if set, `OAUTH_PREVIOUS_SIGNING_KEYS`.
    pub fn parse(current: &str, previous: Option<&str>) -> Result<Self, String> {
        let docs = pem_documents(current).map_err(|e| format!("OAUTH_SIGNING_KEY: {e}"))?;
        let [doc] = docs.as_slice() else {
            return Err("OAUTH_SIGNING_KEY must hold exactly one private key".into());
        };
        let key = private_key(doc).map_err(|e| format!("OAUTH_SIGNING_KEY: {e}"))?;
        let pk = PublicKey::from_rsa(&key.to_public_key()).map_err(|e| format!("OAUTH_SIGNING_KEY: {e}"))?;
        let mut prev = Vec::new();
        if let Some(p) = previous.filter(|p| !p.trim().is_empty()) {
            for doc in pem_documents(p).map_err(|e| format!("OAUTH_PREVIOUS_SIGNING_KEYS: {e}"))? {
                let k = PublicKey::from_rsa(&public_key(&doc).map_err(|e| format!("OAUTH_PREVIOUS_SIGNING_KEYS: {e}"))?)?;
                if k.kid != pk.kid && !prev.iter().any(|x: &PublicKey| x.kid == k.kid) {
                    prev.push(k);
                }
            }
        }
        Ok(OAuthKeys { current: pk, signing: key, previous: prev })
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The JWK Set (RFC 7517 section 5): the signing key first, then the previous keys.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = std::iter::once(&self.current).chain(&self.previous).map(PublicKey::jwk).collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` with RS256 and the current `kid`: a JWS compact serialisation
    /// (RFC 7515 section 7.1) with RSASSA-PKCS1-v1_5 over SHA-256 (RFC 7518 section 3.3),
    /// computed here in Rust. The Worker signs through WebCrypto instead
    /// (`service::jwt::sign`, the same bytes: PKCS#1 v1.5 is deterministic), with this as
    /// its fallback.
    pub fn sign<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, String> {
        let input = self.signing_input(claims, typ)?;
        let sig = self.sign_in_rust(&input)?;
        Ok(Self::finish(input, &sig))
    }

    /// The JWS signing input (`BASE64URL(header) "." BASE64URL(claims)`), the header
    /// naming RS256 and the current `kid`.
    pub fn signing_input<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String, String> {
        let header = JwsHeader { typ: Some(typ.to_owned()), alg: "RS256".to_owned(), kid: Some(self.current.kid.clone()) };
        let header = serde_json::to_vec(&header).map_err(|e| format!("signing a JWT: {e}"))?;
        let claims = serde_json::to_vec(claims).map_err(|e| format!("signing a JWT: {e}"))?;
        let mut out = URL_SAFE_NO_PAD.encode(header);
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims));
        Ok(out)
    }

    /// The RS256 signature of `input`, in pure Rust (blinded with a random factor against
    /// timing attacks on the private key). ~12 ms of CPU in wasm for a 2048-bit key.
    pub fn sign_in_rust(&self, input: &str) -> Result<Vec<u8>, String> {
        self.signing
            .sign_with_rng(&mut OsRng, Pkcs1v15Sign::new::<sha2::Sha256>(), &sha256(input.as_bytes()))
            .map_err(|e| format!("signing a JWT: {e}"))
    }

    /// The compact JWS: `input "." BASE64URL(signature)`.
    pub fn finish(mut input: String, signature: &[u8]) -> String {
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        input
    }

    /// The signing key as PKCS#8 DER (for WebCrypto's `importKey("pkcs8", ...)`).
    pub fn signing_key_pkcs8(&self) -> Result<Vec<u8>, String> {
        self.signing.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).map_err(|e| format!("OAUTH_SIGNING_KEY: {e}"))
    }

    /// Verifies the signature (with the key named by `kid`, current or previous), `typ`,
    /// `iss` and `aud`, and returns the claims. Expiry is checked by the caller, who knows
    /// the time. RFC 7519 section 7.2; only RS256 is accepted (RFC 8725 section 3.1: the
    /// algorithm is ours to pin, never the token's to choose).
    fn verify<T: DeserializeOwned>(&self, token: &str, typ: &str, issuer: &str, audience: &str) -> Result<T, String> {
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("bad JWT header: not three parts".into());
        };
        let header: JwsHeader =
            URL_SAFE_NO_PAD.decode(h64).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("bad JWT header: not base64url JSON")?;
        if header.alg != "RS256" {
            return Err("only RS256 is accepted".into());
        }
        if header.typ.as_deref().map(|t| t.to_ascii_lowercase()) != Some(typ.to_owned()) {
            return Err(format!("the JWT is not of type {typ}"));
        }
        let kid = header.kid.ok_or("the JWT has no kid")?;
        let key = std::iter::once(&self.current).chain(&self.previous).find(|k| k.kid == kid).ok_or("the JWT was signed by an unknown key")?;
        let sig = URL_SAFE_NO_PAD.decode(s64).map_err(|_| "invalid JWT: the signature is not base64url")?;
        // The signing input is the first two parts exactly as received.
        let input = token.get(..h64.len() + 1 + p64.len()).ok_or("invalid JWT")?;
        key.key.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), &sha256(input.as_bytes()), &sig).map_err(|_| "invalid JWT: bad signature")?;
        let claims: Value =
            URL_SAFE_NO_PAD.decode(p64).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or("invalid JWT: the claims are not base64url JSON")?;
        for required in ["exp", "iss", "aud", "sub"] {
            if claims.get(required).is_none() {
                return Err(format!("invalid JWT: no {required} claim"));
            }
        }
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err("invalid JWT: wrong issuer".into());
        }
        // RFC 7519 section 4.1.3: one audience string, or an array of them.
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err("invalid JWT: wrong audience".into());
        }
        serde_json::from_value(claims).map_err(|e| format!("invalid JWT: {e}"))
    }

    /// Verifies an access token issued by [`OAuthKeys::sign`] with [`AccessClaims`].
    pub fn verify_access(&self, token: &str, issuer: &str, audience: &str, now_secs: u64) -> Result<AccessClaims, JwtError> {
        let c: AccessClaims = self.verify(token, ACCESS_TOKEN_TYP, issuer, audience).map_err(JwtError::Invalid)?;
        if c.exp <= now_secs {
            return Err(JwtError::Expired);
        }
        Ok(c)
    }

    /// Verifies signature, `typ`, `iss` and `aud` of an access token but not its expiry
    /// (revocation accepts expired tokens: RFC 7009 section 2.2).
    pub fn verify_access_any_time(&self, token: &str, issuer: &str, audience: &str) -> Result<AccessClaims, String> {
        self.verify(token, ACCESS_TOKEN_TYP, issuer, audience)
    }
}

/// The JOSE header we write and read (RFC 7515 section 4.1), in the field order the
/// jsonwebtoken crate wrote, so tokens are the same bytes as before.
#[derive(Serialize, Deserialize)]
struct JwsHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

#[derive(Debug)]
pub enum JwtError {
    /// Well signed, but past `exp` (the client should refresh: soft logout).
    Expired,
    Invalid(String),
}

/// Whether a bearer token is shaped like a JWS compact serialisation (three base64url
/// parts), as opposed to a legacy opaque token.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// The claims of an access token (RFC 9068 section 2.2, plus Matrix's device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The Matrix user ID.
    pub sub: String,
    /// The client-server API, named by the public base URL.
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
    pub device_id: String,
    /// The OAuth session (one authorisation grant and its refresh token family).
    pub sid: String,
}

/// The claims of an OpenID Connect ID token (OIDC Core section 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Left half of the SHA-256 of the access token (OIDC Core section 3.1.3.6).
    pub at_hash: String,
    pub device_id: String,
}

/// `at_hash` for an RS256 ID token.
pub fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&sha256(access_token.as_bytes())[..16])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const KEY1: &str = include_str!("testdata/key1.pem");
    pub const KEY2: &str = include_str!("testdata/key2.pem");
    pub const KEY2_PUB: &str = include_str!("testdata/key2.pub.pem");

    fn claims(exp: u64) -> AccessClaims {
        AccessClaims {
            iss: "https://hs.example/".into(),
            sub: "@a:hs.example".into(),
            aud: "https://hs.example".into(),
            exp,
            iat: 100,
            jti: "j1".into(),
            scope: "urn:matrix:client:api:*".into(),
            client_id: "c1".into(),
            device_id: "DEV".into(),
            sid: "s1".into(),
        }
    }

    #[test]
    fn sign_verify_and_jwks() {
        let k = OAuthKeys::parse(KEY1, None).unwrap();
        let t = k.sign(&claims(1000), ACCESS_TOKEN_TYP).unwrap();
        assert!(looks_like_jwt(&t));
        assert!(!looks_like_jwt("syt_abc"));
        let c = k.verify_access(&t, "https://hs.example/", "https://hs.example", 999).unwrap();
        assert_eq!(c, claims(1000));
        assert!(matches!(k.verify_access(&t, "https://hs.example/", "https://hs.example", 1000), Err(JwtError::Expired)));
        assert!(matches!(k.verify_access(&t, "https://other/", "https://hs.example", 1), Err(JwtError::Invalid(_))));
        assert!(matches!(k.verify_access(&t, "https://hs.example/", "c1", 1), Err(JwtError::Invalid(_))));
        // A tampered payload fails.
        let parts: Vec<&str> = t.split('.').collect();
        let mut c2 = claims(1000);
        c2.sub = "@admin:hs.example".into();
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c2).unwrap()), parts[2]);
        assert!(matches!(k.verify_access(&forged, "https://hs.example/", "https://hs.example", 1), Err(JwtError::Invalid(_))));
        // An ID token (another typ) is not an access token.
        let id = k.sign(&claims(1000), "JWT").unwrap();
        assert!(k.verify_access(&id, "https://hs.example/", "https://hs.example", 1).is_err());

        let jwks = k.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["kid"], k.kid());
        assert_eq!(jwks["keys"][0]["e"], "AQAB");
        assert_eq!(jwks["keys"][0]["alg"], "RS256");
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let old = OAuthKeys::parse(KEY2, None).unwrap();
        let t = old.sign(&claims(1000), ACCESS_TOKEN_TYP).unwrap();
        let new = OAuthKeys::parse(KEY1, Some(KEY2_PUB)).unwrap();
        assert_ne!(new.kid(), old.kid());
        assert_eq!(new.verify_access(&t, "https://hs.example/", "https://hs.example", 1).unwrap().jti, "j1");
        let jwks = new.jwks();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, vec![new.kid(), old.kid()]);
        // Without the previous key, the old token is refused.
        let alone = OAuthKeys::parse(KEY1, None).unwrap();
        assert!(alone.verify_access(&t, "https://hs.example/", "https://hs.example", 1).is_err());
        // Base64 forms, and a private key as a "previous" key, work too.
        let b64 = STANDARD.encode(KEY1);
        let prev = format!("{}, {}", STANDARD.encode(KEY2), STANDARD.encode(KEY2_PUB));
        let k = OAuthKeys::parse(&b64, Some(&prev)).unwrap();
        assert_eq!(k.kid(), new.kid());
        assert_eq!(k.jwks()["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_keys() {
        assert!(OAuthKeys::parse("", None).is_err());
        assert!(OAuthKeys::parse("not a key", None).is_err());
        assert!(OAuthKeys::parse(KEY2_PUB, None).is_err()); // public, cannot sign
        assert!(OAuthKeys::parse(&format!("{KEY1}\n{KEY2}"), None).is_err());
        assert!(OAuthKeys::parse(KEY1, Some("garbage!")).is_err());
    }

    #[test]
    fn at_hash_is_half_a_sha256() {
        assert_eq!(at_hash("x").len(), 22);
    }

    /// A token signed by the jsonwebtoken crate (before this module signed by itself) with
    /// KEY1: tokens issued before the change still verify, and signing (deterministic for
    /// PKCS#1 v1.5) gives the same bytes.
    const JSONWEBTOKEN_VECTOR: &str = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJSUzI1NiIsImtpZCI6Il9PWUE2bkpJSXdLVGJfY2d2SG53OEVncktjNHNVd1hfVTFDQ1YzcU5mc1UifQ.eyJpc3MiOiJodHRwczovL2hzLmV4YW1wbGUvIiwic3ViIjoiQGE6aHMuZXhhbXBsZSIsImF1ZCI6Imh0dHBzOi8vaHMuZXhhbXBsZSIsImV4cCI6NDAwMDAwMDAwMCwiaWF0IjoxMDAsImp0aSI6ImoxIiwic2NvcGUiOiJ1cm46bWF0cml4OmNsaWVudDphcGk6KiIsImNsaWVudF9pZCI6ImMxIiwiZGV2aWNlX2lkIjoiREVWIiwic2lkIjoiczEifQ.WthLi2bX2NwxoErC9Bt158pXVT-rbnWgMEalZ7z8YjiHEoNzfkfpNmnspxeKaP6SYjPYxxbGf4lXj887Qvm0036caMv8FA-HncGidSOZ8S22zCCrImLHp4YkU52412P3qrxs-ErmJMGZv6mepryGU1Usg_TZhHDzfuqCzMpxLFCTCnqEc8XPpp3rqSo3AqF_Hm_ZmhCbFGCuQlE-DhEv19j8-bKPBdKyX0RwIVVfHjZa2Pa5O7IrrOx2dvfkaGdaEOuOfaVpzd_fBijiLK6KH9q3r4CA3uJgWg6IIiq8zZrLzrzbAKsxLf-igrffNoKCNTulJZy7wvig5RwWcS_bqQ";

    #[test]
    fn tokens_from_jsonwebtoken_still_verify() {
        let k = OAuthKeys::parse(KEY1, None).unwrap();
        let mut c = claims(4_000_000_000);
        let got = k.verify_access(JSONWEBTOKEN_VECTOR, "https://hs.example/", "https://hs.example", 1).unwrap();
        assert_eq!(got, c);
        assert_eq!(k.sign(&c, ACCESS_TOKEN_TYP).unwrap(), JSONWEBTOKEN_VECTOR);
        // Our access tokens name one audience: another is refused, and so is a header with
        // another alg or a token without a signature part.
        c.aud = "https://other.example".into();
        let t = k.sign(&c, ACCESS_TOKEN_TYP).unwrap();
        assert!(k.verify_access(&t, "https://hs.example/", "https://hs.example", 1).is_err());
        let parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"typ":"at+jwt","alg":"none","kid":"x"}"#);
        assert!(k.verify_access(&format!("{none}.{}.", parts[1]), "https://hs.example/", "https://hs.example", 1).is_err());
        assert!(k.verify_access(&format!("{}.{}", parts[0], parts[1]), "https://hs.example/", "https://hs.example", 1).is_err());
    }
}
