//! Sync wake-ups through each user's `UserSync` Durable Object (see
//! `durable_objects/user_sync.rs` for why nothing is lost): writers call [`notify_users`]
//! after their D1 write committed; a waiting `/sync` reads [`sync_version`] before it looks
//! at the stores, then [`wait`]s on that value.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use ruma::UserId;
use worker::Env;

use crate::core::config::Config;
use crate::durable_objects::protocol::{UserSyncProto, UserSyncRequest as Req, UserSyncResponse as Resp};
use crate::error::Result;
use crate::service::objects::{call, unexpected};

/// Wakes the waiting syncs of these users (local users only; duplicates are skipped). One
/// Durable Object call per user, all in flight at once. Failures are ignored: a missed
/// wake-up only delays a sync to its timeout.
pub async fn notify_users<I: IntoIterator<Item = String>>(env: &Env, config: &Config, users: I) {
    let local: BTreeSet<String> =
        users.into_iter().filter(|u| UserId::parse(u.as_str()).is_ok_and(|u| u.server_name() == config.server_name)).collect();
    join_all(local.iter().map(|u| call::<UserSyncProto>(env, u, &Req::Notify))).await;
}

/// The user's change counter, read before a sync checks the stores.
pub async fn sync_version(env: &Env, user: &str) -> Result<String> {
    match call::<UserSyncProto>(env, user, &Req::Version).await? {
        Resp::Version { v } => Ok(v),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}

/// Waits until the user's counter moves past `seen` or `timeout_ms` passes. Returns the
/// counter when woken (the value to wait on next), `None` on timeout.
pub async fn wait(env: &Env, user: &str, seen: &str, timeout_ms: u64) -> Result<Option<String>> {
    match call::<UserSyncProto>(env, user, &Req::Wait { seen: seen.to_owned(), timeout_ms }).await? {
        Resp::Waited { woken, v } => Ok(woken.then_some(v)),
        _ => Err(unexpected::<UserSyncProto>()),
    }
}
