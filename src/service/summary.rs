//! Room summaries and who may preview a room, shared by `GET /room_summary` (spec v1.15),
//! `GET /hierarchy` (spaces) and the public room directory.

use crate::core::json::JsonExt;
use ruma::UserId;
use serde_json::{json, Value};

use crate::core::room::version_rules;
use crate::core::spaces::{open_to_preview, restricted_by_rooms};
use crate::ctx::Ctx;
use crate::error::Result;
use crate::store::rooms;

/// The state a summary is made of (all with an empty state key).
const SUMMARY_STATE: [&str; 9] = [
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.create",
    "m.room.encryption",
];

/// A room as a user may see it before joining.
pub struct RoomPreview {
    /// The `RoomSummary` object of the spec (`definitions/room_summary.yaml`).
    pub summary: Value,
    /// The user's membership, if any.
    pub membership: Option<String>,
    /// Whether the user may see the room: joined or invited, or the room is public,
    /// knockable or world-readable, or restricted to rooms the user is in (the list of
    /// `GET /hierarchy`, which is also the rule Synapse uses for summaries).
    pub visible: bool,
}

/// The public summary of a room when its joined-member count is already known (the room
/// directory counts them in its query).
pub async fn room_summary(ctx: &Ctx, room_id: &str, joined: u64) -> Result<Value> {
    let keys: Vec<(String, String)> = SUMMARY_STATE.iter().map(|t| (t.to_string(), String::new())).collect();
    let state = rooms::current_state_keys(&ctx.db, room_id, &keys).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let c = |t: &str| state.get(&(t.to_owned(), String::new())).and_then(|e| pdus.get(e)).map(|p| p.content_value()).unwrap_or(Value::Null);
    Ok(build_summary(room_id, joined, c))
}

/// The summary, the user's membership and whether the user may see the room; `None` if
/// the room is not known here.
pub async fn preview(ctx: &Ctx, room_id: &str, user: Option<&UserId>) -> Result<Option<RoomPreview>> {
    let Some(room) = rooms::get_room(&ctx.db, room_id).await? else {
        return Ok(None);
    };
    let mut keys: Vec<(String, String)> = SUMMARY_STATE.iter().map(|t| (t.to_string(), String::new())).collect();
    if let Some(u) = user {
        keys.push(("m.room.member".into(), u.to_string()));
    }
    let state = rooms::current_state_keys(&ctx.db, room_id, &keys).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let content = |t: &str, k: &str| state.get(&(t.to_owned(), k.to_owned())).and_then(|e| pdus.get(e)).map(|p| p.content_value());
    let joined = rooms::joined_count(&ctx.db, room_id).await?;
    let summary = build_summary(room_id, joined, |t| content(t, "").unwrap_or(Value::Null));
    let membership =
        user.and_then(|u| content("m.room.member", u.as_str())).and_then(|c| c.get("membership").and_then(Value::as_str).map(str::to_owned));
    let rules = Some(version_rules(&room.room_version)?.1.authorization);
    let join_rule = summary.get("join_rule").and_then(Value::as_str).unwrap_or("invite");
    let mut visible = open_to_preview(join_rule, summary.get("world_readable").and_then(Value::as_bool) == Some(true), rules.as_ref())
        || matches!(membership.as_deref(), Some("join") | Some("invite"));
    if let (false, Some(u), true) = (visible, user, restricted_by_rooms(join_rule, rules.as_ref())) {
        for allowed in summary.get("allowed_room_ids").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if rooms::membership(&ctx.db, allowed, u.as_str()).await?.as_deref() == Some("join") {
                visible = true;
                break;
            }
        }
    }
    Ok(Some(RoomPreview { summary, membership, visible }))
}

fn build_summary(room_id: &str, joined: u64, c: impl Fn(&str) -> Value) -> Value {
    let mut s = json!({
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": c("m.room.history_visibility").get("history_visibility").and_then(Value::as_str) == Some("world_readable"),
        "guest_can_join": c("m.room.guest_access").get("guest_access").and_then(Value::as_str) == Some("can_join"),
        "join_rule": c("m.room.join_rules").get("join_rule").and_then(Value::as_str).unwrap_or("invite"),
    });
    for (key, t, field) in [
        ("name", "m.room.name", "name"),
        ("topic", "m.room.topic", "topic"),
        ("avatar_url", "m.room.avatar", "url"),
        ("canonical_alias", "m.room.canonical_alias", "alias"),
    ] {
        if let Some(v) = c(t).get(field).and_then(Value::as_str).filter(|v| !v.is_empty()) {
            s.set(key, json!(v));
        }
    }
    let jr = c("m.room.join_rules");
    if matches!(jr.get("join_rule").and_then(Value::as_str), Some("restricted") | Some("knock_restricted")) {
        let allowed: Vec<&str> = jr
            .get("allow")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("type").and_then(Value::as_str) == Some("m.room_membership"))
            .filter_map(|a| a.get("room_id").and_then(Value::as_str))
            .collect();
        s.set("allowed_room_ids", json!(allowed));
    }
    let create = c("m.room.create");
    if let Some(t) = create.get("type").and_then(Value::as_str) {
        s.set("room_type", json!(t));
    }
    if let Some(v) = create.get("room_version").and_then(Value::as_str) {
        s.set("room_version", json!(v));
    }
    if let Some(a) = c("m.room.encryption").get("algorithm").and_then(Value::as_str) {
        s.set("encryption", json!(a));
    }
    s
}
