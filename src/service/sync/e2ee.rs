//! The device's one-time key counts and unused fallback key types, from the user's
//! `UserKeys` object (not D1).

use crate::core::sync::KeyCounts;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::keys;

pub async fn key_counts(ctx: &Ctx, user: &str, device: &str) -> Result<KeyCounts> {
    let (one_time, unused_fallback) = keys::counts(&ctx.env, user, device).await?;
    Ok(KeyCounts::new(&one_time, unused_fallback))
}

/// [`key_counts`] for `/sync` when the user's `UserSync` object had no fresh copy: asks
/// `UserKeys` and gives the object the copy.
pub async fn key_counts_for_sync(ctx: &Ctx, user: &str, device: &str) -> Result<KeyCounts> {
    let c = keys::counts_for_sync(&ctx.env, user, device).await?;
    Ok(KeyCounts::new(&c.one_time, c.unused_fallback))
}
