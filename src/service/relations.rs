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
    let summaries = rooms::thread_summaries(&ctx.db, reader.user_id.as_str(), &ids).await?;
    if summaries.is_empty() {
        return Ok(());
    }
    let streams: Vec<u64> = summaries.iter().map(|s| s.latest as u64).collect();
    let latest = rooms::events_at_streams(&ctx.db, &streams).await?;
    bundle_known_thread_summaries(ctx, reader, events, summaries, latest).await
}

/// [`bundle_thread_summaries`] with the summaries of (at least) the thread roots among
/// `events` and each thread's latest event already read.
pub async fn bundle_known_thread_summaries(
    ctx: &Ctx,
    reader: &Reader<'_>,
    events: &mut [Value],
    summaries: Vec<rooms::ThreadSummaryRow>,
    latest: Vec<rooms::EventRow>,
) -> Result<()> {
    if summaries.is_empty() {
        return Ok(());
    }
    let ids: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["event_id"].as_str()).collect();
    let summaries: HashMap<String, rooms::ThreadSummaryRow> =
        summaries.into_iter().filter(|s| ids.contains(s.relates_to.as_str())).map(|s| (s.relates_to.clone(), s)).collect();
    if summaries.is_empty() {
        return Ok(());
    }
    // The latest events in one pass (one read, only if one of them is redacted).
    let latest: Vec<rooms::EventRow> =
        latest.into_iter().filter(|r| r.relates_to.as_ref().is_some_and(|root| summaries.contains_key(root))).collect();
    let latest_rows: HashMap<String, Value> =
        latest.iter().map(|r| r.relates_to.clone().unwrap_or_default()).zip(to_client(ctx, reader, &latest).await?).collect();
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
