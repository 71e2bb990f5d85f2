//! The fan-out after new room events commit: [`after_append`] records what each member's
//! push rules say about them (unread counts, `/notifications`), wakes the syncs of everyone
//! concerned ([`crate::service::wakeups`]), queues our own events for the other servers in
//! the room ([`crate::service::federation::sender`]) and hands pushes to the members' push
//! gateways in the background. To-device queues live in [`crate::service::to_device`].

use ruma::events::TimelineEventType;
use std::collections::{BTreeSet, HashMap};

use futures_util::future::join_all;
use ruma::push::Ruleset;
use ruma::{OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::{json, Value};
use worker::Env;

use crate::core::config::Config;
use crate::core::json::JsonExt;
use crate::core::push::{self, RoomFacts};
use crate::core::room::pdu::{parse_stored, Pdu};
use crate::core::room::power;
use crate::error::{Error, Result};
use crate::store::db::Db;
use crate::store::fanout::{self, FanoutInputs};
use crate::store::sync as sstore;

/// After events were appended to a room: wake everyone the events concern (joined,
/// invited, knocking, and the targets of membership changes) and queue our events for
/// federation ([`wake`]), then record push actions for the joined members and send pushes
/// in the background ([`record_pushes`]). The members come from D1 (one batch with the push
/// rules); the `Room` object, which knows them, calls the two halves itself.
pub async fn after_append(env: &Env, db: &Db, config: &Config, pdus: &[Pdu]) -> Result<()> {
    let Some(first) = pdus.first() else { return Ok(()) };
    let room_id = first.room_id.clone();
    // Members, their stored push rules and the room state the rules look at: one batch.
    let inputs = fanout::inputs(db, room_id.as_str()).await?;
    let (affected, joined) = audience(&inputs, pdus);
    wake(env, config, pdus, affected, &joined).await;
    record_pushes(env, db, config, pdus, inputs).await;
    Ok(())
}

/// The targets of the membership events among `pdus` (someone who just left or was
/// kicked is woken too).
pub fn membership_targets(pdus: &[Pdu]) -> impl Iterator<Item = String> + '_ {
    pdus.iter().filter(|p| p.kind == TimelineEventType::RoomMember).filter_map(|p| p.state_key.clone())
}

/// Right after events commit: wakes the syncs of `affected` (local users; see
/// [`crate::service::wakeups`]) and queues our own events for the servers of the `joined`
/// members (one Durable Object call each, sent later by each destination's queue), both at
/// once. Reads nothing from D1 and waits for no push-rule work.
pub async fn wake(env: &Env, config: &Config, pdus: &[Pdu], affected: Vec<String>, joined: &[String]) {
    let joined_servers: Vec<&str> = joined.iter().filter_map(|u| crate::core::federation::queue::server_of(u)).collect();
    let federation = crate::service::federation::sender::send_pdus_to(env, config, joined_servers, pdus);
    let local = crate::service::wakeups::notify_users(env, config, affected);
    let (queued, ()) = futures_util::future::join(federation, local).await;
    if let Err(e) = queued {
        let room = pdus.first().map(|p| p.room_id.to_string()).unwrap_or_default();
        worker::console_error!("federation queue for {room}: {e}");
    }
}

/// Everyone `pdus` concern, from the fan-out's inputs: (whom to wake: joined, invited and
/// knocking members and the targets of membership changes; the joined members).
pub(crate) fn audience(inputs: &FanoutInputs, pdus: &[Pdu]) -> (Vec<String>, Vec<String>) {
    let joined = inputs.members.iter().filter(|m| m.membership == "join").map(|m| m.user_id.clone()).collect();
    let affected = inputs.members.iter().map(|m| m.user_id.clone()).chain(membership_targets(pdus)).collect();
    (affected, joined)
}

/// After the wake-ups: evaluates the joined local members' push rules on the events,
/// stores the ones that notify (unread counts, `/notifications`; one batch, when something
/// notifies) and hands pushes to the members' push gateways in the background. `inputs`
/// are what [`fanout::inputs`] reads (the `Room` object reads them in its append batch).
pub(crate) async fn record_pushes(env: &Env, db: &Db, config: &Config, pdus: &[Pdu], inputs: FanoutInputs) {
    let Some(first) = pdus.first() else { return };
    let pc = PushContext::new(config, &first.room_id, inputs);
    record_with(env, db, config, pdus, &pc).await;
}

/// [`record_pushes`] with a [`PushContext`] already built.
pub(crate) async fn record_with(env: &Env, db: &Db, config: &Config, pdus: &[Pdu], pc: &PushContext) {
    let Some(first) = pdus.first() else { return };
    let room_id = first.room_id.clone();
    let (stmts, pushes) = match push_plan(db, config, pc, pdus).await {
        Ok(p) => p,
        Err(e) => {
            worker::console_error!("push actions for {room_id}: {e}");
            return;
        }
    };
    if !stmts.is_empty() {
        if let Err(e) = db.batch(stmts).await {
            worker::console_error!("push actions for {room_id}: {e}");
            return;
        }
    }
    send_pushes_later(env, config, pushes);
}

/// Hands notifications to the members' push gateways in the background (never on the send
/// path).
pub(crate) fn send_pushes_later(env: &Env, config: &Config, pushes: Vec<PendingPush>) {
    if pushes.is_empty() {
        return;
    }
    let db2 = match env.d1("DB") {
        Ok(d) => Db::new(d),
        Err(e) => {
            worker::console_error!("push gateway: {e}");
            return;
        }
    };
    let allow = config.push_gateway_ip_allowlist.clone();
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = send_pushes(&db2, pushes, &allow).await {
            worker::console_error!("push gateway: {e}");
        }
    });
}

/// One notification to send to a user's pushers.
pub struct PendingPush {
    user_id: String,
    event: Value,
    unread: u64,
    highlight: bool,
}

/// What push-rule evaluation needs about a room, derived once from the fan-out's inputs
/// ([`FanoutInputs`]): the `Room` object keeps it between appends while the room's state and
/// the members' push rules stay the same (messages), so a send evaluates the rules before
/// its batch and writes the push actions in that same batch.
pub(crate) struct PushContext {
    /// Joined, invited and knocking members (whom to wake).
    members: Vec<String>,
    joined: Vec<String>,
    /// Joined local members with their push rules.
    local: Vec<(OwnedUserId, Ruleset)>,
    names: HashMap<String, String>,
    power_levels: Option<Value>,
    creators: Option<Vec<OwnedUserId>>,
    /// The members' push rules version the rules were read at (`fanout::push_rules_guard_stmt`).
    pub version: String,
}

impl PushContext {
    pub(crate) fn new(config: &Config, room_id: &RoomId, inputs: FanoutInputs) -> PushContext {
        let FanoutInputs { members, stored, state, version } = inputs;
        let joined: Vec<String> = members.iter().filter(|m| m.membership == "join").map(|m| m.user_id.clone()).collect();
        let local = joined
            .iter()
            .filter_map(|u| UserId::parse(u.as_str()).ok())
            .filter(|u| u.server_name() == config.server_name)
            .map(|u| {
                let rs = push::load_ruleset(stored.get(u.as_str()), &u);
                (u, rs)
            })
            .collect();
        let mut pl = None;
        let mut creators: Option<Vec<OwnedUserId>> = None;
        let mut names: HashMap<String, String> = HashMap::new();
        for s in &state {
            let v: Value = serde_json::from_str(&s.json).unwrap_or(Value::Null);
            match s.kind.as_str() {
                "m.room.power_levels" => pl = v.get("content").cloned(),
                // The creators as the room version defines them (ruma), the same rule as
                // everywhere else (`core::room::power`).
                "m.room.create" => {
                    let version = v.get("content").and_then(|c| c.get("room_version")).and_then(Value::as_str).unwrap_or("1");
                    if let Ok((_, rules)) = crate::core::room::version_rules(version) {
                        if rules.authorization.explicitly_privilege_room_creators {
                            let pdu = OwnedEventId::try_from(s.event_id.as_str())
                                .map_err(Error::internal)
                                .and_then(|id| Ok((id, parse_stored(&s.json)?)))
                                .and_then(|(id, json)| Pdu::from_json(id, json, Some(room_id)));
                            creators = pdu.and_then(|p| power::creators(&rules, &p)).ok();
                        }
                    }
                }
                _ => {
                    let name = v.get("content").and_then(|c| c.get("displayname")).and_then(Value::as_str).unwrap_or("").to_owned();
                    names.insert(s.state_key.clone(), name);
                }
            }
        }
        PushContext { members: members.into_iter().map(|m| m.user_id).collect(), joined, local, names, power_levels: pl, creators, version }
    }

    /// Everyone `pdus` concern: (whom to wake: joined, invited and knocking members and the
    /// targets of membership changes; the joined members).
    pub(crate) fn audience(&self, pdus: &[Pdu]) -> (Vec<String>, Vec<String>) {
        (self.members.iter().cloned().chain(membership_targets(pdus)).collect(), self.joined.clone())
    }
}

/// Evaluates each joined local member's push rules (and an invited local user's) on each
/// event: the `push_actions` statements of the ones that notify, for the caller's batch, and
/// the pushes to send once they are stored.
pub(crate) async fn push_plan(
    db: &Db,
    config: &Config,
    pc: &PushContext,
    pdus: &[Pdu],
) -> Result<(Vec<worker::D1PreparedStatement>, Vec<PendingPush>)> {
    let Some(first) = pdus.first() else { return Ok((vec![], vec![])) };
    let room_id = first.room_id.clone();
    let quiet = |p: &Pdu| p.state_key.is_some() && !matches!(p.kind, TimelineEventType::RoomMember | TimelineEventType::RoomTombstone);
    let is_invite =
        |p: &Pdu| p.kind == TimelineEventType::RoomMember && p.content_value().get("membership").and_then(Value::as_str) == Some("invite");
    let invites = pdus.iter().any(is_invite);
    if (pc.local.is_empty() && !invites) || pdus.iter().all(quiet) {
        return Ok((vec![], vec![]));
    }
    let facts = RoomFacts {
        room_id: &room_id,
        member_count: pc.joined.len() as u64,
        power_levels: pc.power_levels.as_ref(),
        privileged_creators: pc.creators.clone(),
    };
    // Invited local users are not members yet, but an invite may notify them
    // (`.m.rule.invite_for_me`): the server's default rules.
    let mut invited: Vec<(OwnedUserId, Ruleset)> = Vec::new();
    for p in pdus.iter().filter(|p| is_invite(p)) {
        if let Some(u) = p.state_key.as_ref().and_then(|k| UserId::parse(k.as_str()).ok()).filter(|u| u.server_name() == config.server_name) {
            if !pc.local.iter().any(|(l, _)| *l == u) && !invited.iter().any(|(l, _)| *l == u) {
                let rs = push::load_ruleset(None, &u);
                invited.push((u, rs));
            }
        }
    }
    let evs: Vec<Value> = pdus.iter().map(|p| p.to_client(None)).collect();
    let mut stmts = Vec::new();
    let mut pushes = Vec::new();
    for (uid, rs) in pc.local.iter().chain(invited.iter()) {
        let user = uid.as_str();
        let display = pc.names.get(user).cloned().unwrap_or_else(|| uid.localpart().to_owned());
        for (p, ev) in pdus.iter().zip(&evs) {
            if p.sender.as_str() == user {
                continue;
            }
            let o = push::evaluate(rs, ev, &facts, uid, &display).await;
            if !o.notify {
                continue;
            }
            let thread = push::thread_of(&p.content_value());
            stmts.push(fanout::push_action_stmt(db, user, p.event_id.as_str(), room_id.as_str(), &thread, o.highlight, &o.actions)?);
            pushes.push(PendingPush { user_id: user.to_owned(), event: ev.clone(), unread: 0, highlight: o.highlight });
        }
    }
    Ok((stmts, pushes))
}

/// Posts notifications to the users' HTTP pushers (spec: push-gateway API,
/// `POST /_matrix/push/v1/notify`). Runs in the background, never on the send path. Each
/// URL is checked again before the POST ([`push::check_gateway_url`]: pushers stored
/// before the check existed, or under another allow-list), and redirects are not followed
/// (a gateway has no reason to redirect, and a redirect could point anywhere).
async fn send_pushes(db: &Db, mut pushes: Vec<PendingPush>, allow_ips: &[std::net::IpAddr]) -> Result<()> {
    let users: Vec<String> = pushes.iter().map(|p| p.user_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let pushers = sstore::pushers_of(db, &users).await?;
    if pushers.is_empty() {
        return Ok(());
    }
    let mut unread: HashMap<String, u64> = HashMap::new();
    for u in &users {
        if pushers.iter().any(|p| &p.user_id == u) {
            let n: u64 = sstore::unread_counts(db, u).await?.iter().map(|c| c.2).sum();
            unread.insert(u.clone(), n);
        }
    }
    for p in pushes.iter_mut() {
        p.unread = unread.get(&p.user_id).copied().unwrap_or(0);
    }
    let mut sends = Vec::new();
    for p in &pushes {
        for pusher in pushers.iter().filter(|x| x.user_id == p.user_id && x.kind == "http") {
            let data: Value = serde_json::from_str(&pusher.data).unwrap_or(Value::Null);
            let Some(url) = data.get("url").and_then(Value::as_str) else { continue };
            let url = match push::check_gateway_url(url, allow_ips) {
                Ok(u) => u,
                Err(e) => {
                    worker::console_error!("push gateway of {} refused: {e}", pusher.user_id);
                    continue;
                }
            };
            let format = data.get("format").and_then(Value::as_str);
            let mut notification = json!({
                "event_id": p.event.get("event_id"), "room_id": p.event.get("room_id"),
                "counts": { "unread": p.unread },
                "devices": [{
                    "app_id": pusher.app_id, "pushkey": pusher.pushkey,
                    "tweaks": if p.highlight { json!({"highlight": true}) } else { json!({}) },
                    "data": data.as_object().map(|o| o.iter().filter(|(k, _)| *k != "url").map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>()).unwrap_or_default(),
                }],
                "prio": if p.highlight { "high" } else { "low" },
            });
            if format != Some("event_id_only") {
                notification.set("type", p.event.get("type").cloned().unwrap_or_default());
                notification.set("sender", p.event.get("sender").cloned().unwrap_or_default());
                notification.set("content", p.event.get("content").cloned().unwrap_or_default());
            }
            let body = json!({ "notification": notification }).to_string();
            sends.push(async move {
                let headers = worker::Headers::new();
                let _ = headers.set("Content-Type", "application/json");
                let mut init = worker::RequestInit::new();
                init.with_method(worker::Method::Post)
                    .with_headers(headers)
                    .with_body(Some(body.into()))
                    .with_redirect(worker::RequestRedirect::Manual);
                if let Ok(req) = worker::Request::new_with_init(url.as_str(), &init) {
                    crate::service::meter::outbound();
                    match worker::Fetch::Request(req).send().await {
                        Ok(r) if (300..400).contains(&r.status_code()) => {
                            worker::console_error!("push to {url}: redirect ({}) not followed", r.status_code());
                        }
                        Ok(_) => {}
                        Err(e) => worker::console_error!("push to {url}: {e}"),
                    }
                }
            });
        }
    }
    join_all(sends).await;
    Ok(())
}
