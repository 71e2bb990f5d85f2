//! The events `createRoom` sends, in the spec's order (client-server-api, "Creation"):
//! create, the creator's join, power levels, canonical alias, preset state, `initial_state`,
//! name, topic, then invites.

use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::pdu::NewEvent;
use crate::err;
use crate::error::Result;

#[derive(Debug, Default, Deserialize)]
pub struct CreateRoomRequest {
    pub visibility: Option<String>,
    pub room_alias_name: Option<String>,
    pub name: Option<String>,
    pub topic: Option<String>,
    #[serde(default)]
    pub invite: Vec<String>,
    #[serde(default)]
    pub invite_3pid: Vec<Value>,
    pub room_version: Option<String>,
    pub creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    pub initial_state: Vec<InitialState>,
    pub preset: Option<String>,
    #[serde(default)]
    pub is_direct: bool,
    pub power_level_content_override: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
pub struct InitialState {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub state_key: String,
    pub content: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

pub struct Plan {
    /// The create event (sent first; its ID may become the room ID).
    pub create: NewEvent,
    /// Everything after it, in order. The room ID is filled in by the sender.
    pub rest: Vec<NewEvent>,
    pub invitees: Vec<OwnedUserId>,
    pub preset: Preset,
}

fn state(kind: &str, key: &str, content: Value, sender: &UserId) -> NewEvent {
    NewEvent { kind: kind.into(), state_key: Some(key.into()), content, sender: sender.to_owned(), redacts: None }
}

/// Plans the events of a new room. `use_creator_field`: room versions 1–10 name the creator in
/// the create event; `creators_privileged`: room version 12 gives creators infinite power, and
/// they must not be listed in the power levels.
pub fn plan(
    req: &CreateRoomRequest,
    creator: &UserId,
    creator_profile: (Option<String>, Option<String>),
    room_version: &str,
    use_creator_field: bool,
    creators_privileged: bool,
    canonical_alias: Option<&str>,
) -> Result<Plan> {
    if !req.invite_3pid.is_empty() {
        return Err(err!(Unknown, "Third-party invites are not supported"));
    }
    let preset = match req.preset.as_deref() {
        Some("private_chat") => Preset::PrivateChat,
        Some("trusted_private_chat") => Preset::TrustedPrivateChat,
        Some("public_chat") => Preset::PublicChat,
        Some(other) => return Err(err!(BadJson, "Unknown preset {other}")),
        None if req.visibility.as_deref() == Some("public") => Preset::PublicChat,
        None => Preset::PrivateChat,
    };
    match req.visibility.as_deref() {
        None | Some("public") | Some("private") => {}
        Some(v) => return Err(err!(BadJson, "Unknown visibility {v}")),
    }
    let mut invitees = Vec::new();
    for i in &req.invite {
        let id = crate::core::ids::parse_client_user_id(i)?;
        if id != creator && !invitees.contains(&id) {
            invitees.push(id);
        }
    }

    let mut create_content = req.creation_content.clone().unwrap_or_default();
    // Room version 12: extra creators are user IDs with power over the room (spec: room
    // version 12 auth rules); refuse invalid ones here with 400 rather than as a failed room.
    if let Some(extra) = create_content.get("additional_creators") {
        let list = extra.as_array().ok_or_else(|| err!(InvalidParam, "additional_creators must be a list of user IDs"))?;
        for u in list {
            crate::core::ids::parse_client_user_id(u.as_str().ok_or_else(|| err!(InvalidParam, "additional_creators must be a list of user IDs"))?)?;
        }
    }
    create_content.insert("room_version".into(), json!(room_version));
    if use_creator_field {
        create_content.insert("creator".into(), json!(creator));
    } else {
        create_content.remove("creator");
    }
    if creators_privileged && preset == Preset::TrustedPrivateChat {
        // v12: trusted private chats make the invitees creators too (MSC4289).
        let additional_creators: Vec<String> = invitees.iter().map(|u| u.to_string()).collect();
        if !additional_creators.is_empty() {
            create_content.insert("additional_creators".into(), json!(additional_creators));
        }
    }
    let create = state("m.room.create", "", Value::Object(create_content), creator);

    let mut rest = Vec::new();
    let mut member = Map::new();
    member.insert("membership".into(), json!("join"));
    if let Some(d) = creator_profile.0 {
        member.insert("displayname".into(), json!(d));
    }
    if let Some(a) = creator_profile.1 {
        member.insert("avatar_url".into(), json!(a));
    }
    rest.push(state("m.room.member", creator.as_str(), Value::Object(member), creator));

    let mut users = Map::new();
    if !creators_privileged {
        users.insert(creator.to_string(), json!(100));
        if preset == Preset::TrustedPrivateChat {
            for i in &invitees {
                users.insert(i.to_string(), json!(100));
            }
        }
    }
    let mut pl = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
            "m.room.server_acl": 100, "m.room.encryption": 100
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": if preset == Preset::PublicChat { 0 } else { 50 },
        "historical": 100
    });
    if let Some(o) = &req.power_level_content_override {
        if let Some(pl) = pl.as_object_mut() {
            for (k, v) in o {
                pl.insert(k.clone(), v.clone());
            }
        }
        crate::core::ids::check_power_levels_users(&pl)?;
    }
    rest.push(state("m.room.power_levels", "", pl, creator));
    if let Some(alias) = canonical_alias {
        rest.push(state("m.room.canonical_alias", "", json!({ "alias": alias }), creator));
    }

    let (join_rule, history, guest) = match preset {
        Preset::PublicChat => ("public", "shared", "forbidden"),
        _ => ("invite", "shared", "can_join"),
    };
    rest.push(state("m.room.join_rules", "", json!({ "join_rule": join_rule }), creator));
    rest.push(state("m.room.history_visibility", "", json!({ "history_visibility": history }), creator));
    rest.push(state("m.room.guest_access", "", json!({ "guest_access": guest }), creator));

    for s in &req.initial_state {
        if s.kind == "m.room.create" || s.kind == "m.room.member" {
            return Err(err!(InvalidParam, "initial_state may not contain {}", s.kind));
        }
        // A later event for the same key replaces an earlier preset event in the state.
        rest.push(state(&s.kind, &s.state_key, Value::Object(s.content.clone()), creator));
    }
    if let Some(name) = &req.name {
        if name.len() > 255 {
            return Err(err!(BadJson, "Room name too long"));
        }
        rest.push(state("m.room.name", "", json!({ "name": name }), creator));
    }
    if let Some(topic) = &req.topic {
        rest.push(state(
            "m.room.topic",
            "",
            json!({ "topic": topic, "m.topic": { "m.text": [ { "body": topic, "mimetype": "text/plain" } ] } }),
            creator,
        ));
    }
    for i in &invitees {
        let c = if req.is_direct { json!({ "membership": "invite", "is_direct": true }) } else { json!({ "membership": "invite" }) };
        rest.push(state("m.room.member", i.as_str(), c, creator));
    }
    Ok(Plan { create, rest, invitees, preset })
}
