//! Event reports (Synapse: docs/admin_api/event_reports.md), from
//! `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}` (table `reports`).

use serde_json::{json, Value};

use super::page;
use crate::api::auth::Authed;
use crate::core::admin::next_token;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::audit;
use crate::store::admin::{self as store, ReportRow};

fn report_json(r: &ReportRow, with_event: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "received_ts": r.created_ts as u64,
        "room_id": r.room_id,
        "name": r.room_name,
        "canonical_alias": r.canonical_alias,
        "event_id": r.event_id,
        "user_id": r.reporter,
        "sender": r.sender,
        "reason": r.reason,
        "score": r.score,
    });
    if with_event {
        let ev = r.event_json.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("event_json".into(), ev);
        }
    }
    v
}

/// # `GET /_synapse/admin/v1/event_reports`
/// Newest first (`dir=f`: oldest first), `from`/`limit`, `room_id`, `user_id` (the reporter).
pub async fn list_reports_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let (from, limit) = page(req, 100)?;
    let forwards = match req.query("dir") {
        None | Some("b") => false,
        Some("f") => true,
        Some(_) => return Err(err!(InvalidParam, "dir must be f or b")),
    };
    audit(me.user_id.as_str(), "list_event_reports", "");
    let (rows, total) = store::list_event_reports(&ctx.db, req.query("room_id"), req.query("user_id"), forwards, from, limit).await?;
    let mut body = json!({ "event_reports": rows.iter().map(|r| report_json(r, false)).collect::<Vec<_>>(), "total": total });
    if let (Some(t), Some(o)) = (next_token(from, rows.len(), total), body.as_object_mut()) {
        o.insert("next_token".into(), json!(t.parse::<u64>().unwrap_or(0)));
    }
    Ok(Response::ok(body))
}

fn report_id(s: &str) -> Result<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| err!(InvalidParam, "The report_id parameter must be a string representing a positive integer."))
}

/// # `GET /_synapse/admin/v1/event_reports/{reportId}`
pub async fn report_route(ctx: &Ctx, _req: &Request, me: &Authed, report: &str) -> Result<Response> {
    let id = report_id(report)?;
    audit(me.user_id.as_str(), "get_event_report", report);
    let r = store::get_event_report(&ctx.db, id).await?.ok_or_else(|| err!(NotFound, "Event report not found"))?;
    Ok(Response::ok(report_json(&r, true)))
}

/// # `DELETE /_synapse/admin/v1/event_reports/{reportId}`
pub async fn delete_report_route(ctx: &Ctx, _req: &Request, me: &Authed, report: &str) -> Result<Response> {
    let id = report_id(report)?;
    audit(me.user_id.as_str(), "delete_event_report", report);
    if !store::delete_report(&ctx.db, id).await? {
        return Err(err!(NotFound, "Event report not found"));
    }
    Ok(Response::ok(json!({})))
}
