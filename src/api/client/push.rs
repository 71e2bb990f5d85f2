//! Push rules, notifications and pushers (spec: client-server-api, "Push Notifications",
//! `modules/push.md`; OpenAPI `pushrules.yaml`, `notifications.yaml`, `pusher.yaml`).
//! The rules are the user's `m.push_rules` account data (the spec's server defaults until
//! the user changes something), so a change also reaches their other devices via `/sync`.

use crate::core::json::JsonExt;
use ruma::push::Ruleset;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::core::push::{self, EditError};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::account_data;
use crate::store::pushers::{self, NewPusher};
use crate::store::sync as sstore;

async fn load(ctx: &Ctx, me: &Authed) -> Result<Ruleset> {
    let stored = sstore::get_account_data(&ctx.db, me.user_id.as_str(), "", "m.push_rules").await?;
    Ok(push::load_ruleset(stored.as_ref(), &me.user_id))
}

async fn save(ctx: &Ctx, me: &Authed, rs: &Ruleset) -> Result<()> {
    account_data::put(ctx, me.user_id.as_str(), "", "m.push_rules", &push::to_stored(rs)).await
}

fn edit_err(e: EditError) -> crate::Error {
    match e {
        EditError::NotFound => err!(NotFound, "Unknown push rule"),
        EditError::Invalid(m) => err!(InvalidParam, "{m}"),
    }
}

fn scope_kind(scope: &str, kind: &str) -> Result<ruma::push::RuleKind> {
    if scope != "global" {
        return Err(err!(InvalidParam, "Only the global scope exists"));
    }
    push::parse_kind(kind).ok_or_else(|| err!(InvalidParam, "Unknown rule kind"))
}

/// # `GET /_matrix/client/v3/pushrules/`
pub async fn get_all_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    Ok(Response::ok(push::to_stored(&load(ctx, me).await?)))
}

/// # `GET /_matrix/client/v3/pushrules/global/`
/// Only the `global` scope exists.
pub async fn get_global_route(ctx: &Ctx, _req: &Request, me: &Authed, scope: &str) -> Result<Response> {
    if scope != "global" {
        return Err(err!(InvalidParam, "Only the global scope exists"));
    }
    Ok(Response::ok(serde_json::to_value(load(ctx, me).await?)?))
}

/// # `GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}`
pub async fn get_rule_route(ctx: &Ctx, _req: &Request, me: &Authed, scope: &str, kind: &str, rule_id: &str) -> Result<Response> {
    let k = scope_kind(scope, kind)?;
    let rs = load(ctx, me).await?;
    push::get_rule(&rs, k, rule_id).map(Response::ok).ok_or_else(|| err!(NotFound, "Unknown push rule"))
}

/// # `PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}`
pub async fn put_rule_route(ctx: &Ctx, req: &Request, me: &Authed, scope: &str, kind: &str, rule_id: &str) -> Result<Response> {
    let k = scope_kind(scope, kind)?;
    let body = req.json_value()?;
    let mut rs = load(ctx, me).await?;
    push::put_rule(&mut rs, k, rule_id, &body, req.query("before"), req.query("after")).map_err(edit_err)?;
    save(ctx, me, &rs).await?;
    Ok(Response::ok(json!({})))
}

/// # `DELETE /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}`
pub async fn delete_rule_route(ctx: &Ctx, _req: &Request, me: &Authed, scope: &str, kind: &str, rule_id: &str) -> Result<Response> {
    let k = scope_kind(scope, kind)?;
    let mut rs = load(ctx, me).await?;
    push::delete_rule(&mut rs, k, rule_id).map_err(edit_err)?;
    save(ctx, me, &rs).await?;
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}` (`enabled`, `actions`)
pub async fn get_attr_route(ctx: &Ctx, _req: &Request, me: &Authed, scope: &str, kind: &str, rule_id: &str, attr: &str) -> Result<Response> {
    let k = scope_kind(scope, kind)?;
    let rs = load(ctx, me).await?;
    let rule = push::get_rule(&rs, k, rule_id).ok_or_else(|| err!(NotFound, "Unknown push rule"))?;
    match attr {
        "enabled" => Ok(Response::ok(json!({ "enabled": rule.get("enabled") }))),
        "actions" => Ok(Response::ok(json!({ "actions": rule.get("actions") }))),
        _ => Err(err!(Unrecognized, "Unknown attribute")),
    }
}

/// # `PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/{attr}` (`enabled`, `actions`)
pub async fn put_attr_route(ctx: &Ctx, req: &Request, me: &Authed, scope: &str, kind: &str, rule_id: &str, attr: &str) -> Result<Response> {
    let k = scope_kind(scope, kind)?;
    let body = req.json_value()?;
    let mut rs = load(ctx, me).await?;
    match attr {
        "enabled" => {
            let e = body.get("enabled").and_then(Value::as_bool).ok_or_else(|| err!(BadJson, "enabled must be a boolean"))?;
            push::set_enabled(&mut rs, k, rule_id, e).map_err(edit_err)?;
        }
        "actions" => push::set_actions(&mut rs, k, rule_id, body.get("actions").unwrap_or(&Value::Null)).map_err(edit_err)?,
        _ => return Err(err!(Unrecognized, "Unknown attribute")),
    }
    save(ctx, me, &rs).await?;
    Ok(Response::ok(json!({})))
}

/// # `GET /_matrix/client/v3/notifications`
/// Newest first; `from` is the `next_token` of the previous page; `only=highlight`.
pub async fn notifications_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let limit = req.query("limit").map(|l| l.parse::<u32>().map_err(|_| err!(InvalidParam, "bad limit"))).transpose()?.unwrap_or(20).clamp(1, 100);
    let before = req.query("from").map(|f| f.parse::<u64>().map_err(|_| err!(InvalidParam, "bad from"))).transpose()?.unwrap_or(u64::MAX >> 12);
    let only_highlight = req.query("only") == Some("highlight");
    let rows = sstore::notifications(&ctx.db, me.user_id.as_str(), before, limit, only_highlight).await?;
    let mut out = Vec::new();
    for r in &rows {
        let pdu: Value = serde_json::from_str(&r.json).unwrap_or(Value::Null);
        let mut ev = json!({ "event_id": r.event_id, "room_id": r.room_id });
        for k in ["type", "content", "sender", "origin_server_ts", "state_key"] {
            if let Some(v) = pdu.get(k) {
                ev.set(k, v.clone());
            }
        }
        out.push(json!({
            "actions": serde_json::from_str::<Value>(&r.actions).unwrap_or(json!([])),
            "event": ev, "read": r.read != 0.0, "room_id": r.room_id, "ts": r.ts as u64,
        }));
    }
    let mut body = json!({ "notifications": out });
    if rows.len() as u32 == limit {
        if let Some(last) = rows.last() {
            body.set("next_token", json!((last.stream as u64).to_string()));
        }
    }
    Ok(Response::ok(body))
}

/// # `GET /_matrix/client/v3/pushers`
pub async fn pushers_route(ctx: &Ctx, _req: &Request, me: &Authed) -> Result<Response> {
    let rows = sstore::pushers_of(&ctx.db, &[me.user_id.to_string()]).await?;
    Ok(Response::ok(json!({ "pushers": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>() })))
}

/// # `POST /_matrix/client/v3/pushers/set`
/// `kind: null` deletes; `append: false` (default) removes other users' pushers with the
/// same app ID and pushkey. An http pusher's `data.url` must be an `https` URL with the path
/// `/_matrix/push/v1/notify` on a host the server may reach (spec: pusher.yaml
/// `postPusher`; the server POSTs message contents there, so no loopback or private
/// address: [`push::check_gateway_url`]); else 400 `M_INVALID_PARAM`.
pub async fn set_pusher_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let b = req.json_value()?;
    let s = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(app_id), Some(pushkey)) = (s("app_id"), s("pushkey")) else {
        return Err(err!(MissingParam, "app_id and pushkey are required"));
    };
    let user = me.user_id.as_str();
    if b.get("kind").is_none_or(Value::is_null) {
        pushers::delete(&ctx.db, user, &app_id, &pushkey).await?;
        return Ok(Response::ok(json!({})));
    }
    let kind = s("kind").ok_or_else(|| err!(BadJson, "kind must be a string or null"))?;
    let (Some(app_name), Some(dev_name), Some(lang)) = (s("app_display_name"), s("device_display_name"), s("lang")) else {
        return Err(err!(MissingParam, "app_display_name, device_display_name and lang are required"));
    };
    let data = b.get("data").cloned().unwrap_or(json!({}));
    if !data.is_object() {
        return Err(err!(BadJson, "data must be an object"));
    }
    if kind == "http" {
        let url = data.get("url").and_then(Value::as_str).ok_or_else(|| err!(MissingParam, "data.url is required for http pushers"))?;
        push::check_gateway_url(url, &ctx.config.push_gateway_ip_allowlist).map_err(|m| err!(InvalidParam, "{m}"))?;
    }
    let tag = s("profile_tag");
    let p = NewPusher {
        user,
        device: &me.device_id,
        app_id: &app_id,
        pushkey: &pushkey,
        kind: &kind,
        app_display_name: &app_name,
        device_display_name: &dev_name,
        profile_tag: tag.as_deref(),
        lang: &lang,
        data: &data.to_string(),
    };
    pushers::set(&ctx.db, &p, b.get("append").and_then(Value::as_bool).unwrap_or(false)).await?;
    Ok(Response::ok(json!({})))
}
