//! The server's ed25519 signing key and the key document it publishes at
//! `/_matrix/key/v2/server` (spec: server-server-api, "Publishing Keys").

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use ruma::signatures::{sign_json, KeyPair, Signature};
use ruma::{CanonicalJsonObject, CanonicalJsonValue};
use serde_json::json;

/// An ed25519 key with its version (the `a_AbCd` in `ed25519:a_AbCd`).
#[derive(Clone)]
pub struct ServerSigningKey {
    key: SigningKey,
    version: String,
}

impl std::fmt::Debug for ServerSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "ServerSigningKey(ed25519:{})", self.version)
    }
}

impl ServerSigningKey {
    /// Parses Synapse's signing-key file format: `ed25519 VERSION BASE64SEED`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let ["ed25519", version, seed] = parts.as_slice() else {
            return Err("SIGNING_KEY must look like `ed25519 <version> <base64 seed>`".into());
        };
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("SIGNING_KEY version must be [a-zA-Z0-9_]+".into());
        }
        let seed = STANDARD_NO_PAD.decode(seed.trim_end_matches('=')).map_err(|_| "SIGNING_KEY seed is not base64".to_string())?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| "SIGNING_KEY seed must be 32 bytes".to_string())?;
        Ok(Self { key: SigningKey::from_bytes(&seed), version: (*version).to_owned() })
    }

    /// A fresh key (used by tests; the dev tooling makes keys with the same format).
    pub fn generate() -> Self {
        let seed: [u8; 32] = super::crypto::random_array();
        let version = format!("a_{}", &super::crypto::random_alpha(4));
        Self { key: SigningKey::from_bytes(&seed), version }
    }

    pub fn to_config_string(&self) -> String {
        format!("ed25519 {} {}", self.version, STANDARD_NO_PAD.encode(self.key.to_bytes()))
    }

    /// `ed25519:VERSION`.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.version)
    }

    /// Unpadded base64 of the public key.
    pub fn public_key_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// Signs a JSON object in place under `signatures.{server_name}` (ruma's canonical JSON).
    pub fn sign_object(&self, server_name: &str, object: &mut CanonicalJsonObject) -> Result<(), String> {
        sign_json(server_name, self, object).map_err(|e| e.to_string())
    }

    /// The signed `/_matrix/key/v2/server` response, valid until `valid_until_ts`.
    pub fn key_document(&self, server_name: &str, valid_until_ts: u64) -> serde_json::Value {
        let doc = json!({
            "server_name": server_name,
            "valid_until_ts": valid_until_ts,
            "verify_keys": { self.key_id(): { "key": self.public_key_base64() } },
            "old_verify_keys": {},
        });
        let mut object: CanonicalJsonObject = match CanonicalJsonValue::try_from(doc) {
            Ok(CanonicalJsonValue::Object(o)) => o,
            _ => unreachable!("the document is an object of canonical values"),
        };
        self.sign_object(server_name, &mut object).expect("the key document is signable");
        serde_json::to_value(object).expect("canonical JSON serialises")
    }
}

impl KeyPair for ServerSigningKey {
    fn sign(&self, message: &[u8]) -> Signature {
        let key_id = self.key_id().try_into().expect("version was validated");
        Signature::new(key_id, self.key.sign(message).to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::serde::Base64;
    use ruma::signatures::{verify_json, PublicKeyMap, PublicKeySet};

    #[test]
    fn parse_round_trip() {
        let k = ServerSigningKey::generate();
        let again = ServerSigningKey::parse(&k.to_config_string()).unwrap();
        assert_eq!(k.public_key_base64(), again.public_key_base64());
        assert_eq!(k.key_id(), again.key_id());
        assert!(ServerSigningKey::parse("ed25519 a_b !!!").is_err());
        assert!(ServerSigningKey::parse("rsa a_b AAAA").is_err());
        assert!(!format!("{k:?}").contains(k.to_config_string().get(15..).unwrap()));
    }

    #[test]
    fn key_document_verifies_with_ruma() {
        let k = ServerSigningKey::generate();
        let doc = k.key_document("example.org", 123);
        assert_eq!(doc["verify_keys"][k.key_id()]["key"], k.public_key_base64());
        let object: CanonicalJsonObject = match CanonicalJsonValue::try_from(doc).unwrap() {
            CanonicalJsonValue::Object(o) => o,
            _ => panic!(),
        };
        let mut set = PublicKeySet::new();
        set.insert(k.key_id(), Base64::parse(k.public_key_base64()).unwrap());
        let mut map = PublicKeyMap::new();
        map.insert("example.org".into(), set);
        verify_json(&map, &object).expect("signature verifies");
        // A tampered document does not.
        let mut tampered = object.clone();
        tampered.insert("valid_until_ts".into(), CanonicalJsonValue::Integer(999u32.into()));
        assert!(verify_json(&map, &tampered).is_err());
    }
}
