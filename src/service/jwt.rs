//! RS256 signatures of the OAuth provider's JWTs through WebCrypto
//! (`crypto.subtle.sign` with RSASSA-PKCS1-v1_5): workerd computes them natively, where the
//! same signature in wasm (`core::oauth::jwt`, the rsa crate) costs ~12 ms of CPU, the most
//! of a token exchange (issue #17: every client endpoint within 10 ms). PKCS#1 v1.5 is
//! deterministic, so both give the same bytes; the Rust signer stays as the fallback.

use std::cell::RefCell;

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::password::{call, get, js_err};
use crate::core::oauth::jwt::OAuthKeys;
use crate::error::{Error, Result};

thread_local! {
    /// The imported signing key (a `CryptoKey`) by `kid`: importing parses the DER again,
    /// so an isolate does it once per key.
    static KEY: RefCell<Option<(String, JsValue)>> = const { RefCell::new(None) };
}

fn algorithm() -> Result<Object> {
    let alg = Object::new();
    Reflect::set(&alg, &JsValue::from_str("name"), &JsValue::from_str("RSASSA-PKCS1-v1_5")).map_err(js_err("sign parameters"))?;
    Reflect::set(&alg, &JsValue::from_str("hash"), &JsValue::from_str("SHA-256")).map_err(js_err("sign parameters"))?;
    Ok(alg)
}

async fn crypto_key(subtle: &JsValue, keys: &OAuthKeys) -> Result<JsValue> {
    if let Some(k) = KEY.with(|c| c.borrow().as_ref().filter(|(kid, _)| kid == keys.kid()).map(|(_, k)| k.clone())) {
        return Ok(k);
    }
    let der = keys.signing_key_pkcs8().map_err(Error::internal)?;
    let usages: Array = [JsValue::from_str("sign")].iter().collect();
    let key = call(
        subtle,
        "importKey",
        &[JsValue::from_str("pkcs8"), Uint8Array::from(der.as_slice()).into(), algorithm()?.into(), JsValue::FALSE, usages.into()],
    )
    .await?;
    KEY.with(|c| *c.borrow_mut() = Some((keys.kid().to_owned(), key.clone())));
    Ok(key)
}

async fn webcrypto_sign(keys: &OAuthKeys, input: &str) -> Result<Vec<u8>> {
    let subtle = get(&get(&js_sys::global(), "crypto")?, "subtle")?;
    let key = crypto_key(&subtle, keys).await?;
    let sig = call(&subtle, "sign", &[algorithm()?.into(), key, Uint8Array::from(input.as_bytes()).into()]).await?;
    Ok(Uint8Array::new(&sig).to_vec())
}

/// `keys.sign(claims, typ)` (RFC 7515 compact JWS, RS256, the current `kid`), the signature
/// computed by WebCrypto, or in Rust if WebCrypto fails (logged; same token, only slower).
pub(crate) async fn sign<T: Serialize>(keys: &OAuthKeys, claims: &T, typ: &str) -> Result<String> {
    let input = keys.signing_input(claims, typ).map_err(Error::internal)?;
    let sig = match webcrypto_sign(keys, &input).await {
        Ok(sig) if !sig.is_empty() => sig,
        Ok(_) => {
            worker::console_error!("WebCrypto RS256 gave no signature; signing in wasm");
            keys.sign_in_rust(&input).map_err(Error::internal)?
        }
        Err(e) => {
            worker::console_error!("{e}; signing in wasm");
            keys.sign_in_rust(&input).map_err(Error::internal)?
        }
    };
    Ok(OAuthKeys::finish(input, &sig))
}
