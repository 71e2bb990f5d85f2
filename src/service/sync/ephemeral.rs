//! Rooms' ephemeral events: typing (`m.typing`) and receipts (`m.receipt`).

use std::collections::{BTreeMap, HashSet};

use serde_json::json;

use crate::core::filter::Filter;
use crate::core::sync::{add_receipt, EphemeralEvent, ReceiptContent};
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::sync::{self as sstore, MembershipRow};

/// Ephemeral events in `(since, now]` (everything current in an initial sync) per joined room
/// the filter allows, typing before receipts; rooms with none are absent.
pub async fn since(
    ctx: &Ctx,
    user: &str,
    f: &Filter,
    since: Option<&SyncToken>,
    now: &SyncToken,
    memberships: &[MembershipRow],
) -> Result<BTreeMap<String, Vec<EphemeralEvent>>> {
    let initial = since.is_none();
    let since = since.copied().unwrap_or_default();
    let mut out: BTreeMap<String, Vec<EphemeralEvent>> = BTreeMap::new();

    let typing = if initial || now.typing > since.typing { sstore::typing_since(&ctx.db, user, since.typing, now.typing).await? } else { vec![] };
    for (room_id, user_ids) in typing {
        // An initial sync has no earlier typing to clear.
        if initial && user_ids.is_empty() {
            continue;
        }
        out.entry(room_id).or_default().push(EphemeralEvent::Typing { user_ids });
    }

    let rcs =
        if initial || now.receipts > since.receipts { sstore::receipts_since(&ctx.db, user, since.receipts, now.receipts).await? } else { vec![] };
    let mut receipts: BTreeMap<String, ReceiptContent> = BTreeMap::new();
    for rc in rcs {
        let content = receipts.entry(rc.room_id).or_default();
        add_receipt(content, &rc.event_id, &rc.receipt_type, &rc.user_id, rc.ts as u64, &rc.thread_id);
    }
    for (room_id, content) in receipts {
        out.entry(room_id).or_default().push(EphemeralEvent::Receipt(content));
    }

    let joined: HashSet<&str> =
        memberships.iter().filter(|m| m.membership == "join" && f.room.room_allowed(&m.room_id)).map(|m| m.room_id.as_str()).collect();
    out.retain(|room_id, evs| {
        evs.retain(|e| f.room.ephemeral.matches(e.kind(), user, &json!({})));
        joined.contains(room_id.as_str()) && !evs.is_empty()
    });
    Ok(out)
}
