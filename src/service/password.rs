//! Password hashing in the Worker through WebCrypto (`crypto.subtle.deriveBits` with
//! PBKDF2): workerd computes it natively, several times faster than the same PBKDF2 in
//! wasm, which matters because Cloudflare counts it as the request's CPU time. The stored
//! format and the bytes are exactly those of `core::crypto` (PBKDF2-HMAC-SHA256, 32 bytes),
//! so hashes made by either verify with the other.

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::core::crypto::{new_salt, PasswordHash};
use crate::error::{Error, Result};

pub(crate) fn js_err(what: &str) -> impl Fn(JsValue) -> Error + '_ {
    move |e| Error::internal(format!("WebCrypto {what}: {e:?}"))
}

pub(crate) fn get(target: &JsValue, key: &str) -> Result<JsValue> {
    Reflect::get(target, &JsValue::from_str(key)).map_err(js_err(key))
}

pub(crate) async fn call(subtle: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue> {
    let f: Function = get(subtle, method)?.dyn_into().map_err(js_err(method))?;
    let promise: Promise = f.apply(subtle, &args.iter().collect::<Array>()).map_err(js_err(method))?.dyn_into().map_err(js_err(method))?;
    JsFuture::from(promise).await.map_err(js_err(method))
}

/// workerd refuses PBKDF2 above this many iterations; such hashes are derived in wasm.
const WEBCRYPTO_MAX_ITERATIONS: u32 = 100_000;

/// PBKDF2-HMAC-SHA256, 32 bytes: by `crypto.subtle`, or in pure Rust past workerd's
/// iteration limit or if WebCrypto fails (logged; the answer is the same, only slower).
pub(crate) async fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Result<Vec<u8>> {
    if iterations <= WEBCRYPTO_MAX_ITERATIONS {
        match webcrypto_pbkdf2(password, salt, iterations).await {
            Ok(out) if out.len() == 32 => return Ok(out),
            Ok(out) => worker::console_error!("WebCrypto PBKDF2 gave {} bytes; deriving in wasm", out.len()),
            Err(e) => worker::console_error!("{e}; deriving in wasm"),
        }
    }
    Ok(crate::core::crypto::pbkdf2_sha256(password, salt, iterations).to_vec())
}

async fn webcrypto_pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Result<Vec<u8>> {
    let subtle = get(&get(&js_sys::global(), "crypto")?, "subtle")?;
    let usages: Array = [JsValue::from_str("deriveBits")].iter().collect();
    let key = call(
        &subtle,
        "importKey",
        &[JsValue::from_str("raw"), Uint8Array::from(password).into(), JsValue::from_str("PBKDF2"), JsValue::FALSE, usages.into()],
    )
    .await?;
    let params = Object::new();
    for (k, v) in [
        ("name", JsValue::from_str("PBKDF2")),
        ("hash", JsValue::from_str("SHA-256")),
        ("salt", Uint8Array::from(salt).into()),
        ("iterations", JsValue::from(iterations)),
    ] {
        Reflect::set(&params, &JsValue::from_str(k), &v).map_err(js_err("deriveBits parameters"))?;
    }
    let bits = call(&subtle, "deriveBits", &[params.into(), key, JsValue::from(256u32)]).await?;
    Ok(Uint8Array::new(&bits).to_vec())
}

/// A new stored hash of `password` with `iterations`.
pub(crate) async fn hash(password: &str, iterations: u32) -> Result<String> {
    let salt = new_salt();
    let hash = pbkdf2_sha256(password.as_bytes(), &salt, iterations).await?;
    Ok(PasswordHash { iterations, salt, hash }.format())
}

/// Whether `password` matches the stored hash; an unparsable hash never matches.
pub(crate) async fn verify(password: &str, stored: &str) -> Result<bool> {
    let Some(h) = PasswordHash::parse(stored) else { return Ok(false) };
    Ok(h.matches(&pbkdf2_sha256(password.as_bytes(), &h.salt, h.iterations).await?))
}
