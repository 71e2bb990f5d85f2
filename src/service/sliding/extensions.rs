//! Sliding sync extensions (MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960
//! receipts, MSC3961 typing). Each reads what the `/sync` v3 stream of the same data reads
//! (`service::sync`, `store::sync`), over the connection's `(since, now]`; the rules of
//! scope and shape are native (`core::sliding::extensions`). All five run concurrently:
//! at most two Durable Object calls (to-device, key counts) and a few D1 statements,
//! whatever the number of rooms.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::try_join5;

use crate::api::auth::Authed;
use crate::core::filter::Filter;
use crate::core::sliding::extensions::{
    self as ext, AccountDataResponse, E2eeResponse, ExtensionsRequest, ExtensionsResponse, RoomsEphemeral, ScopedRequest, ToDeviceRequest,
    ToDeviceResponse,
};
use crate::core::sync::{add_receipt, AccountDataEvent, ReceiptContent};
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
///
/// On an incremental request, a room sends what changed in `(since, now]`; use
/// [`compute_with_initial`] to have rooms that enter the response get their current
/// receipts, typing and room account data.
pub async fn compute(
    ctx: &Ctx,
    me: &Authed,
    req: &ExtensionsRequest,
    since: Option<&SyncToken>,
    now: &SyncToken,
    scope: &Scope<'_>,
) -> Result<ExtensionsResponse> {
    compute_with_initial(ctx, me, req, since, now, scope, &[]).await
}

/// [`compute`], where `initial` names the rooms this response sends with `initial: true`
/// (new to the connection, or sent afresh): as Synapse, those get the current receipts,
/// typing and room account data rather than the changes since the last response.
pub async fn compute_with_initial(
    ctx: &Ctx,
    me: &Authed,
    req: &ExtensionsRequest,
    since: Option<&SyncToken>,
    now: &SyncToken,
    scope: &Scope<'_>,
    initial: &[String],
) -> Result<ExtensionsResponse> {
    let (to_device, e2ee, account_data, receipts, typing) = try_join5(
        to_device_ext(ctx, me, &req.to_device),
        e2ee_ext(ctx, me, req.e2ee.enabled, since, now),
        account_data_ext(ctx, me, &req.account_data, since, now, scope, initial),
        receipts_ext(ctx, me, &req.receipts, since, now, scope, initial),
        typing_ext(ctx, me, &req.typing, since, now, scope, initial),
    )
    .await?;
    Ok(ExtensionsResponse { to_device, e2ee, account_data, receipts, typing })
}

/// MSC3885: the device's queue in its `UserSync` object, as `/sync` v3 reads it. `since`
/// acknowledges (deletes) what it covers, so a retried request with the same `since` gets
/// the same messages. The batch is the object's (100, Synapse's cap on `limit` too).
async fn to_device_ext(ctx: &Ctx, me: &Authed, req: &ToDeviceRequest) -> Result<Option<ToDeviceResponse>> {
    if !req.enabled {
        return Ok(None);
    }
    let since = ext::to_device_since(req.since.as_deref());
    let (events, position) = to_device::take(ctx, me.user_id.as_str(), &me.device_id, since).await?;
    Ok(Some(ToDeviceResponse { next_batch: position.to_string(), events }))
}

/// MSC3884: device lists changed in `(since, now]` (none on a connection's first request:
/// the client queries everyone), and the key counts, sent every time.
async fn e2ee_ext(ctx: &Ctx, me: &Authed, enabled: bool, since: Option<&SyncToken>, now: &SyncToken) -> Result<Option<E2eeResponse>> {
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
    let (device_lists, keys) = futures_util::future::try_join(lists, e2ee::key_counts(ctx, user, &me.device_id)).await?;
    Ok(Some(E2eeResponse { device_lists, keys }))
}

fn in_scope(req: &ScopedRequest, scope: &Scope<'_>) -> BTreeSet<String> {
    req.rooms_in_scope(scope.lists, scope.subscriptions)
}

/// MSC3959: global account data as `/sync` v3 (all of it, with the default push rules, on
/// a connection's first request; else what changed), and that of the rooms in scope.
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
    let rooms = in_scope(req, scope);
    let first: Vec<String> = ext::first_sent(&rooms, since.is_none(), initial).into_iter().collect();
    let all = Filter::default();
    let changed = account_data::since(ctx, &me.user_id, &all, since, now);
    // On a first request `changed` already holds everything.
    let fresh = async {
        if since.is_some() && !first.is_empty() {
            sstore::room_account_data(&ctx.db, me.user_id.as_str(), &first, now.account_data).await
        } else {
            Ok(vec![])
        }
    };
    let (changed, fresh) = futures_util::future::try_join(changed, fresh).await?;
    let fresh = fresh.into_iter().map(|a| {
        let content = serde_json::from_str(&a.content).unwrap_or_else(|_| serde_json::json!({}));
        (a.room_id, AccountDataEvent { kind: a.kind, content })
    });
    let room_events = changed.rooms.into_iter().flat_map(|(r, evs)| evs.into_iter().map(move |e| (r.clone(), e))).chain(fresh);
    Ok(ext::account_data_section(changed.global, room_events, &rooms))
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
    if !req.enabled {
        return Ok(None);
    }
    let user = me.user_id.as_str();
    let rooms = in_scope(req, scope);
    if rooms.is_empty() {
        return Ok(None);
    }
    let first_set = ext::first_sent(&rooms, since.is_none(), initial);
    let first: Vec<String> = first_set.iter().cloned().collect();
    let changed = async {
        match since {
            Some(s) if now.receipts > s.receipts => sstore::receipts_since(&ctx.db, user, s.receipts, now.receipts).await,
            _ => Ok(vec![]),
        }
    };
    let fresh = async {
        if first.is_empty() {
            Ok(vec![])
        } else {
            sstore::latest_receipts(&ctx.db, user, &first, FIRST_RECEIPTS_PER_ROOM, now.receipts).await
        }
    };
    let (changed, fresh) = futures_util::future::try_join(changed, fresh).await?;
    let mut content: BTreeMap<String, ReceiptContent> = BTreeMap::new();
    for rc in changed.into_iter().filter(|r| !first_set.contains(&r.room_id)).chain(fresh) {
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
    if !req.enabled {
        return Ok(None);
    }
    let user = me.user_id.as_str();
    let rooms = in_scope(req, scope);
    if rooms.is_empty() {
        return Ok(None);
    }
    let first = ext::first_sent(&rooms, since.is_none(), initial);
    let changed = async {
        match since {
            Some(s) if now.typing > s.typing => sstore::typing_since(&ctx.db, user, s.typing, now.typing).await,
            _ => Ok(vec![]),
        }
    };
    // The table holds one row per room: reading it whole for the new rooms is bounded.
    let current = async {
        if first.is_empty() || now.typing == 0 {
            Ok(vec![])
        } else {
            sstore::typing_since(&ctx.db, user, 0, now.typing).await
        }
    };
    let (changed, current) = futures_util::future::try_join(changed, current).await?;
    let rows = changed.into_iter().filter(|(r, _)| !first.contains(r)).chain(current.into_iter().filter(|(r, _)| first.contains(r))).collect();
    Ok(ext::typing_section(rows, &rooms, &first))
}
