//! Thread summaries bundled in `unsigned.m.relations.m.thread` (spec: client-server-api,
//! "Threading", "Server-side aggregation"), for every endpoint that serves thread roots.

use crate::core::json::JsonExt;
use std::collections::HashMap;

use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::error::Result;
use crate::service::events::{to_client, Reader};
use crate::store::rooms;

/// Adds `unsigned.m.relations.m.thread` to thread roots among `events` (client format).
pub async fn bundle_thread_summaries(ctx: &Ctx, reader: &Reader<'_>, events: &mut [Value]) -> Result<()> {
    let ids: Vec<String> = events.iter().filter_map(|e| e["event_id"].as_str().map(str::to_owned)).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let summaries: HashMap<String, rooms::ThreadSummaryRow> =
        rooms::thread_summaries(&ctx.db, reader.user_id.as_str(), &ids).await?.into_iter().map(|s| (s.relates_to.clone(), s)).collect();
    if summaries.is_empty() {
        return Ok(());
    }
    let mut latest_rows: HashMap<String, Value> = HashMap::new();
    for s in summaries.values() {
        if let Some(row) = rooms::event_at_stream(&ctx.db, s.latest as u64).await? {
            let root = row.relates_to.clone().unwrap_or_default();
            if let Some(ev) = to_client(ctx, reader, &[row]).await?.into_iter().next() {
                latest_rows.insert(root, ev);
            }
        }
    }
    for ev in events.iter_mut() {
        let Some(id) = ev["event_id"].as_str().map(str::to_owned) else { continue };
        let Some(s) = summaries.get(&id) else { continue };
        let root_sender_is_me = ev["sender"].as_str() == Some(reader.user_id.as_str());
        let thread = json!({
            "latest_event": latest_rows.get(&id).cloned().unwrap_or(Value::Null),
            "count": s.count as u64,
            "current_user_participated": s.mine > 0.0 || root_sender_is_me,
        });
        if let Some(unsigned) = ev.object_at("unsigned") {
            unsigned.entry("m.relations").or_insert(Value::Null).set("m.thread", thread);
        }
    }
    Ok(())
}
