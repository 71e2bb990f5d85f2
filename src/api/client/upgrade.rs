//! Room upgrades (spec: client-server-api, "Room Upgrades", "Server behaviour"): a new room
//! with the old one's important state, a tombstone in the old room, aliases moved over, and
//! the old room restricted.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::client::directory::can_send_state;
use crate::api::client::rooms::parse_room_id;
use crate::core::room::pdu::NewEvent;
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::params;
use crate::service::timeline::{self, append_via_room};
use crate::store::{accounts, rooms};

/// State carried over to the new room (spec's list).
const CARRIED: &[&str] = &[
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
];

#[derive(Deserialize)]
struct UpgradeBody {
    new_version: String,
    #[serde(default)]
    additional_creators: Vec<String>,
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
pub async fn upgrade_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let old: ruma::OwnedRoomId = parse_room_id(room_id)?;
    let body: UpgradeBody = req.json()?;
    for c in &body.additional_creators {
        crate::core::ids::parse_client_user_id(c)?;
    }
    let (_, new_rules) = version_rules(&body.new_version)?;
    let old_row = rooms::get_room(&ctx.db, old.as_str()).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    if !can_send_state(ctx, old.as_str(), me.user_id.as_str(), "m.room.tombstone").await? {
        return Err(err!(Forbidden, "You don't have permission to upgrade this room"));
    }
    let state = rooms::current_state(&ctx.db, old.as_str()).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let content_of = |t: &str, k: &str| state.get(&(t.to_owned(), k.to_owned())).and_then(|e| pdus.get(e)).map(|p| p.content_value());
    let old_create = content_of("m.room.create", "").unwrap_or(Value::Null);

    let mut create = json!({ "room_version": body.new_version, "predecessor": { "room_id": old } });
    if !new_rules.authorization.room_create_event_id_as_room_id {
        // Before v12 the predecessor also names the last known event of the old room.
        if let Some(head) = &old_row.head_event {
            create["predecessor"]["event_id"] = json!(head);
        }
    }
    if let Some(t) = old_create.get("type") {
        create["type"] = t.clone();
    }
    if !new_rules.authorization.use_room_create_sender {
        create["creator"] = json!(me.user_id);
    }
    if new_rules.authorization.additional_room_creators && !body.additional_creators.is_empty() {
        create["additional_creators"] = json!(body.additional_creators);
    }
    let ev = |kind: &str, key: &str, content: Value| NewEvent {
        kind: kind.into(),
        state_key: Some(key.into()),
        content,
        sender: me.user_id.clone(),
        redacts: None,
    };
    let mut events = vec![ev("m.room.create", "", create)];
    let mut member = json!({ "membership": "join" });
    if let Some(u) = accounts::get_user(&ctx.db, me.user_id.as_str()).await? {
        if let Some(d) = u.displayname {
            member["displayname"] = json!(d);
        }
    }
    events.push(ev("m.room.member", me.user_id.as_str(), member));

    // Power levels: as before; the upgrader keeps the power to finish the upgrade. Room v12
    // gives creators infinite power and forbids listing them.
    let mut pl = content_of("m.room.power_levels", "").unwrap_or_else(|| json!({}));
    if !pl["users"].is_object() {
        pl["users"] = json!({});
    }
    if new_rules.authorization.explicitly_privilege_room_creators {
        if let Some(users) = pl["users"].as_object_mut() {
            users.remove(me.user_id.as_str());
            for c in &body.additional_creators {
                users.remove(c);
            }
        }
    } else {
        let cur = pl["users"][me.user_id.as_str()].as_i64().unwrap_or(0);
        pl["users"][me.user_id.as_str()] = json!(cur.max(100));
    }
    events.push(ev("m.room.power_levels", "", pl.clone()));
    for t in CARRIED {
        if let Some(c) = content_of(t, "") {
            events.push(ev(t, "", c));
        }
    }
    // Bans carry over.
    for ((t, k), e) in &state {
        if t == "m.room.member" {
            if let Some(p) = pdus.get(e) {
                if p.content_value()["membership"] == "ban" {
                    events.push(ev("m.room.member", k, json!({ "membership": "ban" })));
                }
            }
        }
    }
    let canonical = content_of("m.room.canonical_alias", "");
    let created = timeline::append(&ctx.db, &ctx.config, None, events, None).await?;
    // Wake the creator's and the invitees' syncs (rooms created here skip the Room object).
    let _ = crate::service::notify::after_append(&ctx.env, &ctx.db, &ctx.config, &created).await;
    let new_room = created[0].room_id.clone();

    // Move local aliases, then the canonical alias event.
    ctx.db.run("UPDATE room_aliases SET room_id = ? WHERE room_id = ?", params![new_room.as_str(), old.as_str()]).await?;
    if let Some(c) = canonical.filter(|c| c.as_object().is_some_and(|o| !o.is_empty())) {
        let _ = append_via_room(ctx, &new_room, &[ev("m.room.canonical_alias", "", c)], None).await;
        let _ = append_via_room(ctx, &old, &[ev("m.room.canonical_alias", "", json!({}))], None).await;
    }
    if old_row.is_public != 0 {
        ctx.db
            .run(
                "UPDATE rooms SET is_public = CASE room_id WHEN ? THEN 1 ELSE 0 END WHERE room_id IN (?, ?)",
                params![new_room.as_str(), new_room.as_str(), old.as_str()],
            )
            .await?;
    }

    // Tombstone, then restrict the old room: nobody below moderator may talk or invite.
    let tombstone = ev("m.room.tombstone", "", json!({ "body": "This room has been replaced", "replacement_room": new_room }));
    let mut restricted = content_of("m.room.power_levels", "").unwrap_or_else(|| json!({}));
    let floor = (restricted["users_default"].as_i64().unwrap_or(0) + 1).max(50);
    restricted["events_default"] = json!(restricted["events_default"].as_i64().unwrap_or(0).max(floor));
    restricted["invite"] = json!(restricted["invite"].as_i64().unwrap_or(0).max(floor));
    append_via_room(ctx, &old, &[tombstone], None).await?;
    let _ = append_via_room(ctx, &old, &[ev("m.room.power_levels", "", restricted)], None).await;
    Ok(Response::ok(json!({ "replacement_room": new_room })))
}
