//! What a sync returns, one module per stream, each building typed values
//! ([`crate::core::sync`]) that `/sync` v3 and sliding sync (MSC4186) can share. The
//! handler (`api::client::sync`) parses parameters, long-polls and answers; [`compute`] is
//! one pass over every stream.
//!
//! The `since` token carries one position per stream ([`SyncToken`]). A sync reads every
//! stream's current position and the user's memberships in one D1 batch (one snapshot), then
//! reads each stream over `(since, now]` with one statement covering all rooms: its cost does
//! not grow by a query per room per stream. A stream whose position has not moved is not read.

pub mod account_data;
pub mod device_lists;
pub mod e2ee;
pub mod ephemeral;
pub mod presence;
pub mod rooms;
pub mod to_device;

use crate::api::auth::Authed;
use crate::core::filter::Filter;
use crate::core::sync::{KeyCounts, SyncResponse};
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::sync as sstore;

/// A sync's parameters.
pub struct Params {
    pub since: Option<SyncToken>,
    pub full_state: bool,
    /// `use_state_after` (MSC4222): the state at the end of the timeline, not its start.
    pub state_after: bool,
    pub filter: Filter,
    /// `set_presence` (`online` or `unavailable`) to apply before reading the streams: its
    /// read rides in the snapshot's batch. The handler clears it after the first pass.
    pub set_presence: Option<String>,
    /// What the handler already knows of the device's `UserSync` state (from its watch).
    pub device: DeviceHints,
}

/// What a long-polling sync's watch told ([`crate::service::wakeups::Watch`]), so a pass
/// skips the Durable Object requests it can: an idle poll then makes none beyond the watch.
#[derive(Default)]
pub struct DeviceHints {
    /// No to-device message can be waiting after `since`: don't read the queue.
    pub skip_to_device: bool,
    /// The device's key counts, known: don't ask for them.
    pub keys: Option<KeyCounts>,
}

/// One pass over every stream. `next_batch` moves only when the response holds something
/// ([`SyncResponse::has_updates`]) or the sync is initial: a sync that finds nothing hands
/// back the token it was given.
///
/// The first D1 round trip is the snapshot batch, which also carries the caller's token check
/// (a token from the isolate's cache, [`crate::api::auth::confirm_stmt`]) and the presence row
/// `set_presence` needs: an incremental sync with nothing new makes that one round trip. So
/// does one whose news are new events in rooms joined before the token (the woken pass of a
/// long poll, typically): the batch also carries those rooms' timeline windows, state resets
/// and unread counts ([`sstore::RoomNews`]).
pub async fn compute(ctx: &Ctx, me: &Authed, p: &Params) -> Result<SyncResponse> {
    let snap = open(ctx, me, p).await?;
    compute_from(ctx, me, p, snap).await
}

/// The snapshot, with the token check and `set_presence` folded into its batch. Nothing is
/// written before the token is confirmed. A presence change moves the presence stream after
/// the snapshot, so the snapshot is read again then (rare: only when the presence changes).
async fn open(ctx: &Ctx, me: &Authed, p: &Params) -> Result<sstore::Snapshot> {
    let user = me.user_id.as_str();
    // The rooms' news ride in the snapshot for an incremental sync (not with `full_state`,
    // where every room is read whole).
    let window = Some(rooms::timeline_window(&p.filter)).filter(|_| p.since.is_some() && !p.full_state);
    let mut lead = Vec::new();
    let confirm = crate::api::auth::confirm_stmt(ctx, me)?;
    let confirms = confirm.is_some();
    lead.extend(confirm);
    if p.set_presence.is_some() {
        lead.push(sstore::get_presence_stmt(&ctx.db, user)?);
    }
    let lazy = p.filter.lazy_load_members();
    let snap = sstore::snapshot_with(&ctx.db, user, p.since.as_ref(), window, lazy, lead).await?;
    let mut lead_rows = snap.lead.iter();
    if confirms {
        crate::api::auth::confirm_rows(me, lead_rows.next())?;
    }
    if let Some(s) = &p.set_presence {
        let old = sstore::presence_of(lead_rows.next());
        if presence::set_by_sync_over(ctx, user, s, old).await? {
            return sstore::snapshot_with(&ctx.db, user, p.since.as_ref(), window, lazy, vec![]).await;
        }
    }
    Ok(snap)
}

async fn compute_from(ctx: &Ctx, me: &Authed, p: &Params, snap: sstore::Snapshot) -> Result<SyncResponse> {
    let sstore::Snapshot { mut now, members: memberships, newly_joined, news, .. } = snap;
    let member_events = news.as_ref().is_none_or(|n| n.member_events);
    let user = me.user_id.as_str();
    let since = p.since.as_ref();
    let f = &p.filter;

    // The streams read independently of each other (each only over `(since, now]`), so their
    // D1 statements and the `UserSync` request are in flight at once: a woken sync waits for
    // the slowest, not the sum (the rooms' own reads stay in order inside `rooms::plan`).
    let device_lists = async {
        // Whose keys to re-query (not in an initial sync: the client queries all).
        match since {
            Some(s) => device_lists::between_known(ctx, user, s, &now, member_events).await,
            None => Ok(Default::default()),
        }
    };
    let (mut plan, ephemeral, ad, presence, (to_device, td_pos, keys), device_lists) = futures_util::try_join!(
        rooms::plan(ctx, me, p, &now, &memberships, newly_joined, news),
        ephemeral::since(ctx, user, f, since, &now, &memberships),
        account_data::since(ctx, &me.user_id, f, since, &now),
        presence::since(ctx, user, f, since, &now),
        device_streams(ctx, user, &me.device_id, since.map_or(0, |s| s.to_device), &p.device),
        device_lists,
    )?;
    plan.add_ephemeral(ephemeral);
    plan.add_account_data(ad.rooms, &memberships, p);
    let rooms = rooms::finish(ctx, me, p, plan).await?;
    now.to_device = td_pos;

    let mut out = SyncResponse {
        next_batch: String::new(),
        rooms,
        presence: presence.into(),
        account_data: ad.global.into(),
        to_device: to_device.into(),
        device_lists,
        keys,
    };
    let since = p.since.unwrap_or_default();
    let next = if p.since.is_none() || out.has_updates() { now.max(&since) } else { since };
    out.next_batch = next.encode();
    Ok(out)
}

/// To-device messages after `since` (and the position to hand back) and the key counts,
/// from the user's `UserSync` object, which keeps a copy of the counts: one request for
/// both, none when the watch already told them; `UserKeys` is asked only when the copy is
/// missing or stale.
async fn device_streams(ctx: &Ctx, user: &str, device: &str, since: u64, hints: &DeviceHints) -> Result<(Vec<serde_json::Value>, u64, KeyCounts)> {
    let (events, position, copy) = match (hints.skip_to_device, &hints.keys) {
        (true, _) => (Vec::new(), since, None),
        (false, Some(_)) => {
            let (e, p) = to_device::take(ctx, user, device, since).await?;
            (e, p, None)
        }
        (false, None) => to_device::take_with_keys(ctx, user, device, since).await?,
    };
    let keys = match (&hints.keys, copy) {
        (Some(k), _) => k.clone(),
        (None, Some(c)) => c,
        (None, None) => e2ee::key_counts_for_sync(ctx, user, device).await?,
    };
    Ok((events, position, keys))
}
