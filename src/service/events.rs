//! Serving stored events to a client: history visibility on every read path, redacted
//! events served redacted (with `redacted_because`), the sender's transaction ID echoed to
//! the device that sent it, and `age`.

use crate::core::json::JsonExt;
use std::collections::HashMap;

use ruma::room_version_rules::RoomVersionRules;
use ruma::UserId;
use serde_json::{json, Value};

use crate::core::room::visibility::{may_see, HistoryVisibility};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::service::rooms::room_rules;
use crate::store::rooms::{self, EventRow};

/// Who is reading: the user and, for transaction-ID echo, their device.
pub struct Reader<'a> {
    pub user_id: &'a UserId,
    pub device_id: Option<&'a str>,
}

/// Keeps the events (all of one room) the user may see, in the given order.
pub async fn filter_visible(ctx: &Ctx, reader: &Reader<'_>, room_id: &str, rows: Vec<EventRow>) -> Result<Vec<EventRow>> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let up_to = rows.iter().map(|r| r.pos()).max().unwrap_or(0);
    let history = rooms::visibility_history(&ctx.db, room_id, reader.user_id.as_str(), up_to).await?;
    Ok(filter_visible_in(&history, reader, rows))
}

/// [`filter_visible`] over a [`rooms::visibility_history`] already read: all of the reader's
/// membership changes in the room and its history-visibility changes up to at least the
/// last of `rows` (later ones are never consulted).
pub fn filter_visible_in(history: &[EventRow], reader: &Reader<'_>, rows: Vec<EventRow>) -> Vec<EventRow> {
    let me = reader.user_id.as_str();
    // Rule 3 of the spec looks forward: did the user join at any point after the event?
    let joins: Vec<i64> = history.iter().filter(|h| h.kind == "m.room.member" && h.membership.as_deref() == Some("join")).map(|h| h.pos()).collect();
    // Assumes a linear room (one writer per room, no federation yet): "the state before
    // event X" is taken as the result of the history entries with a lower stream position.
    // In a DAG this must become the state before each event (`service::state`), which costs
    // a state-group load per distinct group of the page.
    let at = |stream: i64| -> (HistoryVisibility, Option<String>) {
        let mut vis = HistoryVisibility::Shared;
        let mut membership = None;
        for h in history.iter().take_while(|h| h.pos() < stream) {
            if h.kind == "m.room.history_visibility" {
                let content: Value =
                    serde_json::from_str::<Value>(&h.json).map(|j| j.get("content").cloned().unwrap_or_default()).unwrap_or(Value::Null);
                vis = HistoryVisibility::parse(content.get("history_visibility").and_then(Value::as_str));
            } else {
                membership = h.membership.clone();
            }
        }
        (vis, membership)
    };
    rows.into_iter()
        .filter(|row| {
            let (mut vis, mut membership) = at(row.pos());
            if row.kind == "m.room.history_visibility" {
                // Both sides of a visibility change see the change itself.
                let content: Value =
                    serde_json::from_str::<Value>(&row.json).map(|j| j.get("content").cloned().unwrap_or_default()).unwrap_or(Value::Null);
                vis = vis.most_open(HistoryVisibility::parse(content.get("history_visibility").and_then(Value::as_str)));
            }
            if row.kind == "m.room.member" && row.state_key.as_deref() == Some(me) {
                // A user always sees their own membership changes.
                membership = row.membership.clone().or(membership);
                if matches!(membership.as_deref(), Some("join") | Some("invite") | Some("knock") | Some("leave") | Some("ban")) {
                    return true;
                }
            }
            let joined_after = joins.iter().any(|j| *j > row.pos());
            may_see(vis, membership.as_deref(), joined_after)
        })
        .collect()
}

/// Client format of stored events, with redactions applied.
pub async fn to_client(ctx: &Ctx, reader: &Reader<'_>, rows: &[EventRow]) -> Result<Vec<Value>> {
    to_client_known(ctx, reader, rows, HashMap::new(), HashMap::new()).await
}

/// [`to_client`] with some redaction events (by ID) and rooms' version rules already known:
/// only what is missing is read (one query for the redactions, one per room for the rules).
pub async fn to_client_known(
    ctx: &Ctx,
    reader: &Reader<'_>,
    rows: &[EventRow],
    mut redactions: HashMap<String, EventRow>,
    mut rules: HashMap<String, RoomVersionRules>,
) -> Result<Vec<Value>> {
    // Load the redaction events of redacted events in one query.
    let redaction_ids: Vec<String> = rows.iter().filter_map(|r| r.redacted_by.clone()).filter(|id| !redactions.contains_key(id)).collect();
    if !redaction_ids.is_empty() {
        redactions.extend(rooms::get_events(&ctx.db, &redaction_ids).await?.into_iter().map(|r| (r.event_id.clone(), r)));
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut pdu = row.pdu()?;
        let mut unsigned = json!({ "age": now_ms().saturating_sub(row.origin_server_ts as u64) });
        if let (Some(t), Some(d)) = (&row.txn_id, &row.txn_device) {
            if row.sender == reader.user_id.as_str() && reader.device_id == Some(d.as_str()) {
                unsigned.set("transaction_id", json!(t));
            }
        }
        if let Some(r) = row.redacted_by.as_ref().and_then(|id| redactions.get(id)) {
            if !rules.contains_key(&row.room_id) {
                rules.insert(row.room_id.clone(), room_rules(&ctx.db, &row.room_id).await?);
            }
            let r_rules = rules.get(&row.room_id).ok_or_else(|| Error::internal("room rules"))?;
            pdu = pdu.redacted(r_rules)?;
            let because = r.pdu()?.to_client(None);
            unsigned.set("redacted_because", because);
        }
        out.push(pdu.to_client(Some(unsigned)));
    }
    Ok(out)
}

/// Whether the room's current `m.room.history_visibility` (the event `hv`, if any) is
/// `world_readable`.
pub async fn is_world_readable(ctx: &Ctx, hv: Option<&ruma::EventId>) -> Result<bool> {
    let Some(e) = hv else { return Ok(false) };
    let Some(row) = rooms::get_event(&ctx.db, e.as_str()).await? else { return Ok(false) };
    let v: Value = serde_json::from_str(&row.json)?;
    Ok(v.get("content").and_then(|x| x.get("history_visibility")).and_then(Value::as_str) == Some("world_readable"))
}

/// The user may read this room's history at all: a member now or before, or a
/// `world_readable` room. Otherwise `403` (spec: the user must have been in the room).
pub async fn check_can_read(ctx: &Ctx, user_id: &UserId, room_id: &str) -> Result<()> {
    let exists = rooms::get_room(&ctx.db, room_id).await?.is_some();
    let membership = if exists { rooms::membership(&ctx.db, room_id, user_id.as_str()).await? } else { None };
    check_can_read_known(ctx, room_id, exists, membership.is_some()).await
}

/// [`check_can_read`] with the room's existence and whether the user has a membership in it
/// already read; only a non-member's check reads more (the history visibility).
pub async fn check_can_read_known(ctx: &Ctx, room_id: &str, exists: bool, member: bool) -> Result<()> {
    if !exists {
        return Err(err!(Forbidden, "You are not in this room"));
    }
    if member {
        return Ok(());
    }
    let hv = rooms::current_state_keys(&ctx.db, room_id, &[("m.room.history_visibility".into(), String::new())]).await?;
    if is_world_readable(ctx, hv.values().next().map(|e| e.as_ref())).await? {
        return Ok(());
    }
    Err(err!(Forbidden, "You are not in this room"))
}
