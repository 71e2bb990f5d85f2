//! One-time and fallback key uploads, shared by `/keys/upload` and dehydrated devices
//! (MSC3814), which upload a device's keys with the device.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::core::e2ee::{parse_key_map, UploadedKey};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::service::keys::{self, Uploaded};

/// The device's one-time and fallback keys of an upload body. `org.matrix.msc2732.fallback_keys`
/// is the name older clients use.
pub fn uploaded_keys(body: &Value) -> Result<(Vec<UploadedKey>, Vec<UploadedKey>)> {
    let otks = parse_key_map(&body["one_time_keys"], "one_time_keys").map_err(|e| err!(BadJson, "{e}"))?;
    let fb = if body["fallback_keys"].is_null() { &body["org.matrix.msc2732.fallback_keys"] } else { &body["fallback_keys"] };
    let fallbacks = parse_key_map(fb, "fallback_keys").map_err(|e| err!(BadJson, "{e}"))?;
    let mut algs = BTreeSet::new();
    if !fallbacks.iter().all(|k| algs.insert(k.algorithm.clone())) {
        return Err(err!(InvalidParam, "At most one fallback key per algorithm"));
    }
    Ok((otks, fallbacks))
}

/// Stores one-time and fallback keys in the user's `UserKeys` object; returns the counts.
pub async fn store_keys(ctx: &Ctx, user: &str, device: &str, otks: &[UploadedKey], fallbacks: &[UploadedKey]) -> Result<BTreeMap<String, u64>> {
    match keys::upload(&ctx.env, user, device, otks, fallbacks).await? {
        Uploaded::Counts(c) => Ok(c),
        // Synapse's answer: a key ID may not be reused for another key.
        Uploaded::Conflict(id) => Err(err!(InvalidParam, "One time key {id} already exists with a different key")),
    }
}
