//! Sliding sync extensions (MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960
//! receipts, MSC3961 typing). Each reads what the `/sync` v3 stream of the same data reads
//! (`service::sync`, `store::sync`), over the connection's `(since, now]`; the rules of
//! scope and shape are native (`core::sliding::extensions`). All five run concurrently:
//! one `UserSync` request for the to-device queue and the key counts copy (`UserKeys` only
//! when that copy is missing or stale, as `/sync` v3) and a few D1 statements, whatever the
//! number of rooms.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::try_join5;

use crate::api::auth::Authed;
use crate::core::filter::Filter;
use crate::core::sliding::extensions::{
    self as ext, AccountDataResponse, E2eeResponse, ExtensionsRequest, ExtensionsResponse, RoomsEphemeral, ScopedRequest, ToDeviceRequest,
    ToDeviceResponse,
};
use crate::core::sync::{add_receipt, AccountDataEvent, DeviceLists, KeyCounts, ReceiptContent};
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::sync::{account_data, device_lists, e2ee, to_device};
use crate::store::sync as sstore;

/// Receipts of other users sent per room the client receives for the first time: those on
/// the latest events, which is where a client shows them (Synapse sends the receipts of the
/// timeline's events; this bounds the rows whatever the room's size).
const FIRST_RECEIPTS_PER_ROOM: u32 = 20;

/// The rooms of this response, which the scoped extensions (`lists`/`rooms`) choose from.
pub struct Scope<'a> {
    /// List name → room IDs in that list's window in this response.
    pub lists: &'a BTreeMap<String, Vec<String>>,
    /// Subscribed room IDs.
    pub subscriptions: &'a [String],
}

/// The extensions of one response. `since`: the positions the connection's previous
/// response covered (None on its first request); `now`: this response's positions.
/// `initial` names the rooms this response sends with `initial: true` (new to the
/// connection, or sent afresh): as Synapse, those get the current receipts, typing and room
/// account data rather than the changes since the last response; the others send what
/// changed in `(since, now]`.
pub async fn compute(
    ctx: &Ctx,
    me: &Authed,
    req: &ExtensionsRequest,
    since: Option<&SyncToken>,
    now: &SyncToken,
    scope: &Scope<'_>,
    initial: &[String],
) -> Result<ExtensionsResponse> {
    let (to_device, e2ee, account_data, receipts, typing) = try_join5(
        to_device_ext(ctx, me, &req.to_device, req.e2ee.enabled),
        e2ee_ext(ctx, me, req.e2ee.enabled, !req.to_device.enabled, since, now),
        account_data_ext(ctx, me, &req.account_data, since, now, scope, initial),
        receipts_ext(ctx, me, &req.receipts, since, now, scope, initial),
        typing_ext(ctx, me, &req.typing, since, now, scope, initial),
    )
    .await?;
    let (to_device, copy) = to_device;
    let e2ee = match (e2ee, copy) {
        (Some((device_lists, Some(keys))), _) | (Some((device_lists, None)), Some(keys)) => Some(E2eeResponse { device_lists, keys }),
        // The object had no fresh copy: ask `UserKeys` and leave the object one.
        (Some((device_lists, None)), None) => {
            Some(E2eeResponse { device_lists, keys: e2ee::key_counts_for_sync(ctx, me.user_id.as_str(), &me.device_id).await? })
        }
        (None, _) => None,
    };
    Ok(ExtensionsResponse { to_device, e2ee, account_data, receipts, typing })
}

/// MSC3885: the device's queue in its `UserSync` object, as `/sync` v3 reads it. `since`
/// acknowledges (deletes) what it covers, so a retried request with the same `since` gets
/// the same messages. The batch is the object's (100, Synapse's cap on `limit` too).
async fn to_device_ext(ctx: &Ctx, me: &Authed, req: &ToDeviceRequest, want_keys: bool) -> Result<(Option<ToDeviceResponse>, Option<KeyCounts>)> {
    if !req.enabled {
        return Ok((None, None));
    }
    let (user, device) = (me.user_id.as_str(), me.device_id.as_str());
    let since = ext::to_device_since(req.since.as_deref());
    // With the e2ee extension on, the same request brings the object's key counts copy.
    let (events, position, keys) = if want_keys {
        to_device::take_with_keys(ctx, user, device, since).await?
    } else {
        let (events, position) = to_device::take(ctx, user, device, since).await?;
        (events, position, None)
    };
    Ok((Some(ToDeviceResponse { next_batch: position.to_string(), events }), keys))
}

/// MSC3884: device lists changed in `(since, now]` (none on a connection's first request:
/// the client queries everyone), and the key counts, sent every time. The counts come with
/// the to-device extension's `UserSync` request when that extension is on (see
/// [`compute`]); only without it are they asked of `UserKeys` here (`counts_here`).
async fn e2ee_ext(
    ctx: &Ctx,
    me: &Authed,
    enabled: bool,
    counts_here: bool,
    since: Option<&SyncToken>,
    now: &SyncToken,
) -> Result<Option<(DeviceLists, Option<KeyCounts>)>> {
    if !enabled {
        return Ok(None);
    }
    let user = me.user_id.as_str();
    let lists = async {
        match since {
            Some(s) => device_lists::between(ctx, user, s, now).await,
            None => Ok(Default::default()),
        }
    };
    let keys = async {
        match counts_here {
            true => e2ee::key_counts(ctx, user, &me.device_id).await.map(Some),
            false => Ok(None),
        }
    };
    Ok(Some(futures_util::future::try_join(lists, keys).await?))
}

fn in_scope(req: &ScopedRequest, scope: &Scope<'_>) -> BTreeSet<String> {
    req.rooms_in_scope(scope.lists, scope.subscriptions)
}

/// MSC3959: global account data as `/sync` v3 (all of it, with the default push rules, on
/// a connection's first request; else what changed), and that of the rooms in scope: all of
/// it for a room the client receives for the first time, else what changed. A first
/// request reads the global data and the scope's rooms only, not every room's.
async fn account_data_ext(
    ctx: &Ctx,
    me: &Authed,
    req: &ScopedRequest,
    since: Option<&SyncToken>,
    now: &SyncToken,
    scope: &Scope<'_>,
    initial: &[String],
) -> Result<Option<AccountDataResponse>> {
    if !req.enabled {
        return Ok(None);
    }
    let user = me.user_id.as_str();
    let rooms = in_scope(req, scope);
    let first: Vec<String> = ext::first_sent(&rooms, since.is_none(), initial).into_iter().collect();
    let event = |a: sstore::AccountDataRow| {
        let content = serde_json::from_str(&a.content).unwrap_or_else(|_| serde_json::json!({}));
        (a.room_id, AccountDataEvent { kind: a.kind, content })
    };
    let (global, room_events) = match since {
        None => {
            // The room ID "" is the global account data.
            let ids: Vec<String> = std::iter::once(String::new()).chain(first).collect();
            let rows = sstore::room_account_data(&ctx.db, user, &ids, now.account_data).await?;
            let (global, room_events): (Vec<_>, Vec<_>) = rows.into_iter().map(event).partition(|(r, _)| r.is_empty());
            let mut global: Vec<AccountDataEvent> = global.into_iter().map(|(_, e)| e).collect();
            if !global.iter().any(|e| e.kind == "m.push_rules") {
                global.push(account_data::default_push_rules(&me.user_id));
            }
            (global, room_events)
        }
        Some(_) => {
            let all = Filter::default();
            let fresh = async {
                if first.is_empty() {
                    return Ok(vec![]);
                }
                sstore::room_account_data(&ctx.db, user, &first, now.account_data).await
            };
            let (changed, fresh) = futures_util::future::try_join(account_data::since(ctx, &me.user_id, &all, since, now), fresh).await?;
            // A room's full read comes after its changes, so it is what stays.
            let changed_rooms = changed.rooms.into_iter().flat_map(|(r, evs)| evs.into_iter().map(move |e| (r.clone(), e)));
            (changed.global, changed_rooms.chain(fresh.into_iter().map(event)).collect())
        }
    };
    Ok(ext::account_data_section(global, room_events, &rooms))
}

/// The rooms a room-scoped ephemeral extension (receipts, typing) covers: those in scope,
/// and those among them the client receives for the first time (also as a list, for the
/// reads). `None`: the extension is off or has no room.
fn ephemeral_scope(
    req: &ScopedRequest,
    scope: &Scope<'_>,
    since: Option<&SyncToken>,
    initial: &[String],
) -> Option<(BTreeSet<String>, BTreeSet<String>, Vec<String>)> {
    if !req.enabled {
        return None;
    }
    let rooms = in_scope(req, scope);
    if rooms.is_empty() {
        return None;
    }
    let first = ext::first_sent(&rooms, since.is_none(), initial);
    let ids = first.iter().cloned().collect();
    Some((rooms, first, ids))
}

/// The two reads of a room-scoped ephemeral extension, concurrently: what changed since the
/// last response (`changed`, when the stream moved) and the current data of the rooms sent
/// for the first time (`current`, when there are some).
async fn changed_and_current<'a, T, C, F>(
    changed: Option<C>,
    first: &'a [String],
    current: impl FnOnce(&'a [String]) -> F,
) -> Result<(Vec<T>, Vec<T>)>
where
    C: std::future::Future<Output = Result<Vec<T>>>,
    F: std::future::Future<Output = Result<Vec<T>>>,
{
    let changed = async {
        match changed {
            Some(c) => c.await,
            None => Ok(vec![]),
        }
    };
    let current = async {
        match first.is_empty() {
            true => Ok(vec![]),
            false => current(first).await,
        }
    };
    futures_util::future::try_join(changed, current).await
}

/// MSC3960: receipts in `(since, now]` of the rooms in scope; a room the client receives
/// for the first time gets the latest ones and the user's own instead.
async fn receipts_ext(
    ctx: &Ctx,
    me: &Authed,
    req: &ScopedRequest,
    since: Option<&SyncToken>,
    now: &SyncToken,
    scope: &Scope<'_>,
    initial: &[String],
) -> Result<Option<RoomsEphemeral>> {
    let Some((rooms, first, first_ids)) = ephemeral_scope(req, scope, since, initial) else { return Ok(None) };
    let user = me.user_id.as_str();
    let changed = since.filter(|s| now.receipts > s.receipts).map(|s| sstore::receipts_since(&ctx.db, user, s.receipts, now.receipts));
    let (changed, fresh) =
        changed_and_current(changed, &first_ids, |ids| sstore::latest_receipts(&ctx.db, user, ids, FIRST_RECEIPTS_PER_ROOM, now.receipts)).await?;
    let mut content: BTreeMap<String, ReceiptContent> = BTreeMap::new();
    for rc in changed.into_iter().filter(|r| !first.contains(&r.room_id)).chain(fresh) {
        add_receipt(content.entry(rc.room_id).or_default(), &rc.event_id, &rc.receipt_type, &rc.user_id, rc.ts as u64, &rc.thread_id);
    }
    Ok(ext::receipts_section(content, &rooms))
}

/// MSC3961: who is typing in the rooms in scope (the `Room` objects publish it to D1), as
/// changed in `(since, now]`; a room the client receives for the first time gets its
/// current typing users.
async fn typing_ext(
    ctx: &Ctx,
    me: &Authed,
    req: &ScopedRequest,
    since: Option<&SyncToken>,
    now: &SyncToken,
    scope: &Scope<'_>,
    initial: &[String],
) -> Result<Option<RoomsEphemeral>> {
    let Some((rooms, first, first_ids)) = ephemeral_scope(req, scope, since, initial) else { return Ok(None) };
    let user = me.user_id.as_str();
    let changed = since.filter(|s| now.typing > s.typing).map(|s| sstore::typing_since(&ctx.db, user, s.typing, now.typing));
    let (changed, current) = changed_and_current(changed, &first_ids, |ids| sstore::typing_in_rooms(&ctx.db, user, ids, now.typing)).await?;
    let rows = changed.into_iter().filter(|(r, _)| !first.contains(r)).chain(current.into_iter().filter(|(r, _)| first.contains(r))).collect();
    Ok(ext::typing_section(rows, &rooms, &first))
}
