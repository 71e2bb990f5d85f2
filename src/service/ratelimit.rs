//! Request rate limits (issue 18): [`check`] takes one action from a bucket kept by its
//! `RateLimiter` Durable Object and answers `429 M_LIMIT_EXCEEDED` with `retry_after_ms`
//! when the bucket is full. Buckets, defaults (Synapse's `rc_*`) and configuration:
//! [`crate::core::ratelimit::Bucket`], README "Rate limits".
//!
//! Cost: one Durable Object call per limited request (no D1 round trip); a bucket that is off
//! costs nothing. Server admins and `RATE_LIMIT_EXEMPT_USERS` are never refused, but the
//! admin flag is read (one D1 query) only when the object says no, so the common path pays
//! for no lookup.

use crate::core::ratelimit::Bucket;
use crate::ctx::Ctx;
use crate::durable_objects::protocol::{RateLimiterProto, RateLimiterRequest, RateLimiterResponse};
use crate::err;
use crate::error::{ErrorKind, Result};
use crate::http::Request;
use crate::service::objects::{call, unexpected};
use crate::store::accounts;

/// Takes one action from `bucket` for `key`: a user ID for the per-user buckets, else a
/// client address ([`addr`]).
pub async fn check(ctx: &Ctx, bucket: Bucket, key: &str) -> Result<()> {
    check_once(ctx, bucket, key, None).await
}

/// [`check`] for a request with an idempotency key (`once`, e.g. a send's transaction): a
/// retry of a request already charged is allowed without taking again (Synapse answers
/// retries from its transaction cache before any limit).
pub async fn check_once(ctx: &Ctx, bucket: Bucket, key: &str, once: Option<&str>) -> Result<()> {
    let Some(rate) = ctx.config.rate_limits.get(bucket) else {
        return Ok(());
    };
    let limits = &ctx.config.rate_limits;
    if bucket.per_user() && limits.exempt_users.iter().any(|u| u == key) {
        return Ok(());
    }
    let name = format!("{}:{key}", bucket.name());
    let request = RateLimiterRequest::Take { per_second: rate.per_second, burst: rate.burst, once: once.map(str::to_owned) };
    match call::<RateLimiterProto>(&ctx.env, &name, &request).await? {
        RateLimiterResponse::Allowed => Ok(()),
        RateLimiterResponse::Limited { retry_after_ms } => {
            if bucket.per_user() && accounts::get_user(&ctx.db, key).await?.is_some_and(|u| u.is_admin != 0) {
                return Ok(());
            }
            Err(err!(ErrorKind::LimitExceeded { retry_after_ms }, "Too many requests"))
        }
        RateLimiterResponse::Health(_) => Err(unexpected::<RateLimiterProto>()),
    }
}

/// The client address a per-address bucket is keyed by (`CF-Connecting-IP`; requests
/// without one, which Cloudflare never sends, share one bucket).
pub fn addr(req: &Request) -> &str {
    req.client_ip.as_deref().unwrap_or("unknown")
}
