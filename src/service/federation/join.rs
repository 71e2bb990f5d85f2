//! Joining a room that lives on other servers (spec: server-server-api, "Joining Rooms"):
//! `make_join` on a resident server, our signature on the template, `send_join`, and the
//! room's `Room` object stores the state and auth chain it got, checked.

use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{json, Value};

use crate::core::federation::pdu::{finish_template, to_wire};
use crate::core::federation::uri_component;
use crate::core::json::JsonExt;
use crate::core::room::pdu::NewEvent;
use crate::core::room::{version_rules, SUPPORTED_VERSIONS};
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::http::Method;
use crate::service::federation::client;
use crate::service::federation::room::{store_join, JoinedRoom};
use crate::service::membership::add_profile;

/// Joins `user` to `room_id` through the first of `servers` that lets us; returns the join's
/// event ID. Every server failing gives the last failure.
pub async fn join_remote(ctx: &Ctx, user: &UserId, room_id: &RoomId, servers: &[OwnedServerName], reason: Option<&str>) -> Result<String> {
    let mut last = err!(NotFound, "No server in the room could be reached to join it");
    for server in servers.iter().filter(|s| s.as_str() != ctx.server_name()) {
        match join_via(ctx, user, room_id, server, reason).await {
            Ok(id) => {
                // An invite that led here is answered.
                ctx.db.batch(vec![crate::store::federation_rooms::delete_remote_invite_stmt(&ctx.db, room_id.as_str(), user.as_str())?]).await?;
                return Ok(id);
            }
            Err(e) => {
                worker::console_warn!("join of {room_id} via {server}: {e}");
                last = e;
            }
        }
    }
    Err(last)
}

async fn join_via(ctx: &Ctx, user: &UserId, room_id: &RoomId, server: &ServerName, reason: Option<&str>) -> Result<String> {
    let vers: String = SUPPORTED_VERSIONS.iter().map(|(v, _)| format!("&ver={v}")).collect();
    let path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?{}",
        uri_component(room_id.as_str()),
        uri_component(user.as_str()),
        vers.trim_start_matches('&')
    );
    let made = client::request(ctx, server, Method::Get, &path, None).await?;
    let version = made.get("room_version").and_then(Value::as_str).unwrap_or("1").to_owned();
    let (_, rules) = version_rules(&version)?;
    let mut template = made.get("event").cloned().ok_or_else(|| err!(Unknown, "The resident server sent no join template"))?;
    // Our profile in the member event, as a local join has it.
    let mut profile =
        NewEvent { kind: "m.room.member".into(), state_key: Some(user.to_string()), content: json!({}), sender: user.to_owned(), redacts: None };
    add_profile(ctx, &mut profile, user).await?;
    if let (Some(content), Some(extra)) = (template.get_mut("content").and_then(Value::as_object_mut), profile.content.as_object()) {
        for (k, v) in extra {
            content.insert(k.clone(), v.clone());
        }
        content.insert("membership".into(), json!("join"));
        if let Some(r) = reason {
            content.insert("reason".into(), json!(r));
        }
    }
    if template.get("sender").and_then(Value::as_str) != Some(user.as_str())
        || template.get("state_key").and_then(Value::as_str) != Some(user.as_str())
    {
        return Err(err!(Unknown, "The join template is not for this user"));
    }
    template.set("room_id", json!(room_id));
    let pdu = finish_template(&rules, &template, now_ms(), ctx.server_name(), &ctx.config.signing_key)?;
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", uri_component(room_id.as_str()), uri_component(pdu.event_id.as_str()));
    let sent = client::request(ctx, server, Method::Put, &path, Some(&to_wire(&pdu))).await?;
    let list = |k: &str| sent.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    // A resident server may add its signature (restricted joins): take its copy then.
    let join_event = sent.get("event").filter(|e| e.is_object()).cloned().unwrap_or_else(|| to_wire(&pdu));
    let joined = JoinedRoom { room_version: version, join_event, state: list("state"), auth_chain: list("auth_chain") };
    if joined.state.is_empty() {
        return Err(Error::internal("send_join answered without the room state"));
    }
    store_join(ctx, room_id, server, joined).await
}
