//! Creating and upgrading rooms (spec: client-server-api, "Creation", "Room Upgrades"), and
//! a room's version rules. The events go through the one write path, `timeline::write`.

use crate::core::json::JsonExt;
use ruma::events::room::power_levels::PowerLevelAction;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{json, Value};

use crate::core::room::create::{plan, CreateRoomRequest};
use crate::core::room::pdu::NewEvent;
use crate::core::room::version_rules;
use crate::ctx::Ctx;
use crate::err;
use crate::error::{Error, Result};
use crate::service::{directory, membership, power, timeline};
use crate::store::db::Db;
use crate::store::{accounts, rooms};

/// The rules of a room's version; `404` for an unknown room.
pub async fn room_rules(db: &Db, room_id: &str) -> Result<RoomVersionRules> {
    let room = rooms::get_room(db, room_id).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    Ok(version_rules(&room.room_version)?.1)
}

/// `POST /createRoom`: the events of the plan (`core::room::create`), then the alias and
/// the directory listing. Invitees who block invites are left out; the room is still
/// created (spec v1.18, "Invite permission").
pub async fn create_room(ctx: &Ctx, creator: &UserId, mut body: CreateRoomRequest) -> Result<OwnedRoomId> {
    let mut invite = Vec::with_capacity(body.invite.len());
    for invitee in std::mem::take(&mut body.invite) {
        let blocked = match UserId::parse(invitee.as_str()) {
            Ok(u) => membership::invites_blocked(ctx, &u).await?,
            Err(_) => false, // refused with 400 by the event plan
        };
        if !blocked {
            invite.push(invitee);
        }
    }
    body.invite = invite;
    let version = body.room_version.clone().unwrap_or_else(|| ctx.config.default_room_version.clone());
    let (_, rules) = version_rules(&version)?;
    let alias = match &body.room_alias_name {
        Some(name) => {
            let alias = directory::alias_for_name(ctx, name)?;
            if rooms::alias_room(&ctx.db, &alias).await?.is_some() {
                return Err(err!(RoomInUse, "Room alias already taken"));
            }
            Some(alias)
        }
        None => None,
    };
    // Users of other servers are invited once the room exists, over federation (their
    // server must sign the invite); local ones are in the creation events.
    let (local, remote): (Vec<String>, Vec<String>) = std::mem::take(&mut body.invite)
        .into_iter()
        .partition(|i| UserId::parse(i.as_str()).map_or(true, |u| u.server_name() == ctx.config.server_name));
    body.invite = local;
    let user = accounts::get_user(&ctx.db, creator.as_str()).await?;
    let profile = user.map(|u| (u.displayname, u.avatar_url)).unwrap_or((None, None));
    let p = plan(
        &body,
        creator,
        profile,
        &version,
        !rules.authorization.use_room_create_sender,
        rules.authorization.explicitly_privilege_room_creators,
        alias.as_deref(),
    )?;
    let mut events = vec![p.create];
    events.extend(p.rest);
    // Invites carry the invitee's profile, as those of `/invite` do.
    for ev in events.iter_mut().filter(|e| e.kind == "m.room.member" && e.content.get("membership").and_then(Value::as_str) == Some("invite")) {
        if let Some(target) = p.invitees.iter().find(|u| ev.state_key.as_deref() == Some(u.as_str())) {
            membership::add_profile(ctx, ev, target).await?;
        }
    }
    let pdus = timeline::write(&ctx.env, &ctx.db, &ctx.config, None, events, None).await?;
    let room_id = pdus.first().map(|p| p.room_id.clone()).ok_or_else(|| Error::internal("room created without events"))?;
    if let Some(a) = &alias {
        if !directory::insert_alias(ctx, a, &room_id, creator).await? {
            return Err(err!(RoomInUse, "Room alias already taken"));
        }
    }
    if body.visibility.as_deref() == Some("public") {
        rooms::set_public(&ctx.db, room_id.as_str(), true).await?;
    }
    for invitee in remote.iter().filter_map(|i| UserId::parse(i.as_str()).ok()) {
        // The room exists whatever the invitee's server says: a failed invite is logged
        // (and can be repeated with `/invite`), as a failed request would hide the room.
        if let Err(e) = invite_remote(ctx, creator, &room_id, &invitee, body.is_direct).await {
            worker::console_warn!("createRoom {room_id}: inviting {invitee}: {e}");
        }
    }
    Ok(room_id)
}

/// One invite of a user of another server into a new room.
async fn invite_remote(ctx: &Ctx, creator: &UserId, room_id: &RoomId, invitee: &UserId, is_direct: bool) -> Result<()> {
    let content = if is_direct { json!({ "membership": "invite", "is_direct": true }) } else { json!({ "membership": "invite" }) };
    let mut ev = NewEvent { kind: "m.room.member".into(), state_key: Some(invitee.to_string()), content, sender: creator.to_owned(), redacts: None };
    membership::add_profile(ctx, &mut ev, invitee).await?;
    crate::service::federation::invite::invite_remote(ctx, room_id, invitee, ev).await
}

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

/// A room upgrade (spec: "Room Upgrades", "Server behaviour"): a new room with the old
/// one's important state, a tombstone in the old room, aliases moved over, and the old
/// room restricted. Returns the new room.
pub async fn upgrade_room(ctx: &Ctx, user: &UserId, old: &RoomId, new_version: &str, additional_creators: &[String]) -> Result<OwnedRoomId> {
    let (_, new_rules) = version_rules(new_version)?;
    let old_row = rooms::get_room(&ctx.db, old.as_str()).await?.ok_or_else(|| err!(NotFound, "Room not found"))?;
    if !power::can_send_state(ctx, old.as_str(), user, "m.room.tombstone").await? {
        return Err(err!(Forbidden, "You don't have permission to upgrade this room"));
    }
    let state = rooms::current_state(&ctx.db, old.as_str()).await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let content_of = |t: &str, k: &str| state.get(&(t.to_owned(), k.to_owned())).and_then(|e| pdus.get(e)).map(|p| p.content_value());
    let old_create = content_of("m.room.create", "").unwrap_or(Value::Null);

    let mut create = json!({ "room_version": new_version, "predecessor": { "room_id": old } });
    if !new_rules.authorization.room_create_event_id_as_room_id {
        // Before v12 the predecessor also names the last known event of the old room.
        if let Some(head) = &old_row.head_event {
            if let Some(predecessor) = create.object_at("predecessor") {
                predecessor.insert("event_id".into(), json!(head));
            }
        }
    }
    if let Some(t) = old_create.get("type") {
        create.set("type", t.clone());
    }
    if !new_rules.authorization.use_room_create_sender {
        create.set("creator", json!(user));
    }
    if new_rules.authorization.additional_room_creators && !additional_creators.is_empty() {
        create.set("additional_creators", json!(additional_creators));
    }
    let ev = |kind: &str, key: &str, content: Value| NewEvent {
        kind: kind.into(),
        state_key: Some(key.into()),
        content,
        sender: user.to_owned(),
        redacts: None,
    };
    let mut events = vec![ev("m.room.create", "", create)];
    let mut member = json!({ "membership": "join" });
    if let Some(u) = accounts::get_user(&ctx.db, user.as_str()).await? {
        if let Some(d) = u.displayname {
            member.set("displayname", json!(d));
        }
    }
    events.push(ev("m.room.member", user.as_str(), member));

    // Power levels: as before; the upgrader keeps the power to finish the upgrade. Versions
    // that privilege creators give them infinite power and forbid listing them.
    let mut pl = content_of("m.room.power_levels", "").unwrap_or_else(|| json!({}));
    // `users` from the old room's state may be missing or not an object: it becomes `{}`.
    if let Some(users) = pl.object_at("users") {
        if new_rules.authorization.explicitly_privilege_room_creators {
            users.remove(user.as_str());
            for c in additional_creators {
                users.remove(c);
            }
        } else {
            let cur = users.get(user.as_str()).and_then(Value::as_i64).unwrap_or(0);
            users.insert(user.to_string(), json!(cur.max(100)));
        }
    }
    events.push(ev("m.room.power_levels", "", pl));
    for t in CARRIED {
        if let Some(c) = content_of(t, "") {
            events.push(ev(t, "", c));
        }
    }
    // Bans carry over.
    for ((t, k), e) in &state {
        if t == "m.room.member" {
            if let Some(p) = pdus.get(e) {
                if p.content_value().get("membership").and_then(Value::as_str) == Some("ban") {
                    events.push(ev("m.room.member", k, json!({ "membership": "ban" })));
                }
            }
        }
    }
    let canonical = content_of("m.room.canonical_alias", "");
    let created = timeline::write(&ctx.env, &ctx.db, &ctx.config, None, events, None).await?;
    let new_room = created.first().map(|p| p.room_id.clone()).ok_or_else(|| Error::internal("room created without events"))?;

    // Move local aliases, then the canonical alias event. The later steps are best effort
    // (the spec's "should"): the upgrade stands once the new room exists, so a refusal is
    // logged rather than failing a half-done upgrade.
    rooms::move_aliases(&ctx.db, old.as_str(), new_room.as_str()).await?;
    if let Some(c) = canonical.filter(|c| c.as_object().is_some_and(|o| !o.is_empty())) {
        best_effort(ctx, &new_room, ev("m.room.canonical_alias", "", c)).await;
        best_effort(ctx, old, ev("m.room.canonical_alias", "", json!({}))).await;
    }
    if old_row.is_public != 0 {
        rooms::move_public(&ctx.db, old.as_str(), new_room.as_str()).await?;
    }

    // Tombstone, then restrict the old room: nobody below moderator may talk or invite.
    let tombstone = ev("m.room.tombstone", "", json!({ "body": "This room has been replaced", "replacement_room": new_room }));
    let levels = power::load(&ctx.db, old.as_str()).await?;
    let floor = (levels.users_default() + 1).max(50);
    let mut restricted = content_of("m.room.power_levels", "").unwrap_or_else(|| json!({}));
    restricted.set("events_default", json!(levels.events_default().max(floor)));
    restricted.set("invite", json!(levels.action_level(PowerLevelAction::Invite).max(floor)));
    timeline::append_via_room(ctx, old, &[tombstone], None).await?;
    best_effort(ctx, old, ev("m.room.power_levels", "", restricted)).await;
    Ok(new_room)
}

async fn best_effort(ctx: &Ctx, room: &RoomId, ev: NewEvent) {
    let kind = ev.kind.clone();
    if let Err(e) = timeline::append_via_room(ctx, room, &[ev], None).await {
        worker::console_log!("room upgrade: {kind} in {room} not sent: {e}");
    }
}
