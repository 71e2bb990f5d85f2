//! `to_device`: the device's messages, from the user's `UserSync` object (its own stream,
//! not D1).

use serde_json::Value;

use crate::core::sync::KeyCounts;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::to_device;

/// The device's messages after `since` (the ones up to `since` are deleted: the client has
/// them), and the position to put in the next token.
pub async fn take(ctx: &Ctx, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64)> {
    to_device::take_to_device(&ctx.env, user, device, since).await
}

/// [`take`], with the device's key counts (as `/sync` sends them) if the object has a fresh
/// copy.
pub async fn take_with_keys(ctx: &Ctx, user: &str, device: &str, since: u64) -> Result<(Vec<Value>, u64, Option<KeyCounts>)> {
    let (events, position, copy) = to_device::take_with_keys(&ctx.env, user, device, since).await?;
    Ok((events, position, copy.map(|c| KeyCounts::new(&c.one_time, c.unused_fallback))))
}
