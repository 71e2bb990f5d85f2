//! Global and per-room account data.

use std::collections::HashMap;

use ruma::UserId;
use serde_json::{json, Value};

use crate::core::filter::Filter;
use crate::core::sync::AccountDataEvent;
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::sync as sstore;

#[derive(Default)]
pub struct AccountData {
    pub global: Vec<AccountDataEvent>,
    /// Per room, as the filter allows; which rooms may show it is the rooms builder's call.
    pub rooms: HashMap<String, Vec<AccountDataEvent>>,
}

/// Account data written in `(since, now]` (all of it in an initial sync, with the default
/// push rules when the user has stored none).
pub async fn since(ctx: &Ctx, user_id: &UserId, f: &Filter, since: Option<&SyncToken>, now: &SyncToken) -> Result<AccountData> {
    let user = user_id.as_str();
    let initial = since.is_none();
    let after = since.map_or(0, |s| s.account_data);
    let mut out = AccountData::default();
    let rows = if initial || now.account_data > after { sstore::account_data_since(&ctx.db, user, after, now.account_data).await? } else { vec![] };
    for a in rows {
        let ev = AccountDataEvent { kind: a.kind, content: serde_json::from_str::<Value>(&a.content).unwrap_or(json!({})) };
        if a.room_id.is_empty() {
            if f.account_data.matches(&ev.kind, user, &ev.content) {
                out.global.push(ev);
            }
        } else if f.room.account_data.matches(&ev.kind, user, &ev.content) {
            out.rooms.entry(a.room_id).or_default().push(ev);
        }
    }
    if initial && !out.global.iter().any(|e| e.kind == "m.push_rules") && f.account_data.matches("m.push_rules", user, &json!({})) {
        out.global.push(default_push_rules(user_id));
    }
    Ok(out)
}

/// `m.push_rules` with the server's default rules, sent in an initial sync to a user who has
/// stored none.
pub fn default_push_rules(user_id: &UserId) -> AccountDataEvent {
    let rs = crate::core::push::load_ruleset(None, user_id);
    AccountDataEvent { kind: "m.push_rules".into(), content: crate::core::push::to_stored(&rs) }
}
