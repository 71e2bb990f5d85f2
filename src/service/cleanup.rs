//! The scheduled clean-up (issue 18): run by the Cron Trigger (`[triggers] crons` in
//! `wrangler.toml`, `scheduled` in `src/entry.rs`), it deletes what has expired. Each run is
//! bounded — at most `CLEANUP_BATCH` rows per table, `CLEANUP_BATCH` `tmp/` objects in R2,
//! `CLEANUP_USERS_PER_RUN` users' to-device queues — and resumable: the D1 and R2 deletes
//! take whatever is still expired, and the to-device sweep keeps its place in KV.
//!
//! What goes (README "Scheduled clean-up"): created media IDs never uploaded, UIA sessions,
//! login tokens, failed-login records, admin nonces, revoked or device-less OAuth sessions
//! and their refresh families, old OAuth code guards and browser sessions, old federation
//! to-device IDs (`store::cleanup`); `tmp/` objects of interrupted large uploads in R2; the
//! queued to-device messages (and send transactions, sliding connections) of devices that no
//! longer exist, in each user's `UserSync` object.

use serde::Serialize;

use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::durable_objects::protocol::{UserSyncProto, UserSyncRequest, UserSyncResponse};
use crate::error::{Error, Result};
use crate::service::objects::call;
use crate::store::cleanup::{self as store, Ages};

/// The KV key holding the last user whose to-device queue was swept.
const TO_DEVICE_CURSOR: &str = "cleanup:to_device_after";

/// What one run deleted (logged as one JSON line).
#[derive(Serialize, Default, Debug)]
pub struct Report {
    /// Rows per D1 table.
    pub d1: Vec<(&'static str, usize)>,
    /// `tmp/` objects deleted from R2.
    pub r2_tmp: usize,
    /// Users whose `UserSync` queue was swept, and to-device messages dropped.
    pub to_device_users: usize,
    pub to_device_removed: u64,
    /// Parts that failed (the others still ran; the next run tries again).
    pub errors: Vec<String>,
}

/// The clean-up's knobs (wrangler.toml vars; README "Scheduled clean-up").
struct Limits {
    batch: u32,
    tmp_age_ms: u64,
    users_per_run: u32,
}

fn limits(ctx: &Ctx) -> Limits {
    let num = |k: &str, default: u64| ctx.env.var(k).ok().and_then(|v| v.to_string().trim().parse::<u64>().ok()).unwrap_or(default);
    Limits {
        batch: num("CLEANUP_BATCH", 500).clamp(1, 10_000) as u32,
        tmp_age_ms: num("CLEANUP_TMP_AGE_SECS", 86_400) * 1000,
        users_per_run: num("CLEANUP_USERS_PER_RUN", 20).min(500) as u32,
    }
}

/// One run. Each part's failure is recorded and the other parts still run.
pub async fn run(ctx: &Ctx) -> Report {
    let lim = limits(ctx);
    let now = now_ms();
    let mut report = Report::default();
    let ages = Ages {
        uia_ms: crate::store::uia::SESSION_LIFETIME_MS,
        login_failures_ms: ctx.config.login_failures_window_ms,
        revoked_oauth_ms: ctx.config.access_token_lifetime_ms.max(86_400_000),
    };
    match store::delete_expired(&ctx.db, now, &ages, lim.batch).await {
        Ok(d1) => report.d1 = d1,
        Err(e) => report.errors.push(format!("d1: {e}")),
    }
    match tmp_objects(ctx, now, &lim).await {
        Ok(n) => report.r2_tmp = n,
        Err(e) => report.errors.push(format!("r2: {e}")),
    }
    if let Err(e) = to_device(ctx, &lim, &mut report).await {
        report.errors.push(format!("to-device: {e}"));
    }
    report
}

/// Deletes `tmp/` objects older than `CLEANUP_TMP_AGE_SECS`: a large upload is copied to its
/// hash key and its `tmp/` object deleted within the request, so an old one is a leftover of
/// an interrupted request. (Incomplete multipart uploads are not listed by R2; the bucket's
/// lifecycle rule aborts them, README "Scheduled clean-up".)
async fn tmp_objects(ctx: &Ctx, now: u64, lim: &Limits) -> Result<usize> {
    let bucket = ctx.media()?;
    let r2 = |e: worker::Error| Error::internal(format!("R2 tmp/: {e}"));
    let listed = bucket.list().prefix("tmp/").limit(lim.batch.min(1000)).execute().await.map_err(r2)?;
    let old: Vec<String> =
        listed.objects().into_iter().filter(|o| o.uploaded().as_millis().saturating_add(lim.tmp_age_ms) <= now).map(|o| o.key()).collect();
    if !old.is_empty() {
        bucket.delete_multiple(old.iter().map(String::as_str).collect()).await.map_err(r2)?;
    }
    Ok(old.len())
}

/// Sweeps the `UserSync` objects of the next `CLEANUP_USERS_PER_RUN` users: drops what they
/// keep for devices no longer in D1 (a device deleted while its forget call failed, or a
/// message queued while the device was being deleted).
async fn to_device(ctx: &Ctx, lim: &Limits, report: &mut Report) -> Result<()> {
    if lim.users_per_run == 0 {
        return Ok(());
    }
    let kv = ctx.kv()?;
    let kv_err = |e: worker::kv::KvError| Error::internal(format!("KV: {e}"));
    let after = kv.get(TO_DEVICE_CURSOR).text().await.map_err(kv_err)?.unwrap_or_default();
    let users = store::users_with_devices(&ctx.db, &after, lim.users_per_run).await?;
    for (user, devices) in &users {
        match call::<UserSyncProto>(&ctx.env, user, &UserSyncRequest::PruneDevices { keep: devices.clone() }).await? {
            UserSyncResponse::Pruned { removed } => report.to_device_removed += removed,
            _ => return Err(crate::service::objects::unexpected::<UserSyncProto>()),
        }
        report.to_device_users += 1;
    }
    // The end of the users: start again from the first next run.
    let next = match users.last() {
        Some((u, _)) if users.len() as u32 == lim.users_per_run => u.clone(),
        _ => String::new(),
    };
    kv.put(TO_DEVICE_CURSOR, next).map_err(kv_err)?.execute().await.map_err(kv_err)?;
    Ok(())
}
