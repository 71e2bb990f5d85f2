//! Push rules (spec: client-server-api, "Push Notifications", "Push Rules"): the user's
//! ruleset as stored (`m.push_rules` account data, `{"global": Ruleset}`), edits by the
//! `/pushrules` API, and evaluation of a new event for one user with ruma's `push` module.
//! The outcome feeds `unread_notifications` (notify, highlight) in `/sync`, `/notifications`
//! and pushers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ruma::push::{
    Action, NewConditionalPushRule, NewPatternedPushRule, NewPushRule, NewSimplePushRule, PushCondition, PushConditionPowerLevelsCtx,
    PushConditionRoomCtx, RuleKind, Ruleset,
};
use ruma::room_version_rules::RoomPowerLevelsRules;
use ruma::serde::Raw;
use ruma::{Int, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId};
use serde_json::{json, Value};
use url::Url;

use super::preview;

/// The stored form of a user's rules: `{"global": <Ruleset>}`, the server defaults when
/// nothing is stored (or what is stored no longer parses).
pub fn load_ruleset(stored: Option<&Value>, user: &UserId) -> Ruleset {
    stored
        .and_then(|v| v.get("global"))
        .and_then(|g| serde_json::from_value::<Ruleset>(g.clone()).ok())
        .unwrap_or_else(|| Ruleset::server_default(user))
}

pub fn to_stored(rs: &Ruleset) -> Value {
    json!({ "global": rs })
}

pub fn parse_kind(s: &str) -> Option<RuleKind> {
    match s {
        "override" => Some(RuleKind::Override),
        "underride" => Some(RuleKind::Underride),
        "sender" => Some(RuleKind::Sender),
        "room" => Some(RuleKind::Room),
        "content" => Some(RuleKind::Content),
        _ => None,
    }
}

/// One rule as the API shows it (`GET /pushrules/global/{kind}/{ruleId}`).
pub fn get_rule(rs: &Ruleset, kind: RuleKind, rule_id: &str) -> Option<Value> {
    let all = serde_json::to_value(rs).ok()?;
    let key = kind.as_str().to_owned();
    all.get(&key)?.as_array()?.iter().find(|r| r["rule_id"] == rule_id).cloned()
}

/// Why an edit was refused: `(errcode kind, message)`; `NotFound` or `InvalidParam`/`BadJson`.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    NotFound,
    Invalid(String),
}

/// `PUT /pushrules/global/{kind}/{ruleId}`: a new or replaced user rule.
pub fn put_rule(rs: &mut Ruleset, kind: RuleKind, rule_id: &str, body: &Value, before: Option<&str>, after: Option<&str>) -> Result<(), EditError> {
    let actions: Vec<Action> = serde_json::from_value(body.get("actions").cloned().unwrap_or(Value::Null))
        .map_err(|e| EditError::Invalid(format!("Invalid actions: {e}")))?;
    let rule = match kind {
        RuleKind::Override | RuleKind::Underride => {
            let conditions: Vec<PushCondition> = match body.get("conditions") {
                Some(c) => serde_json::from_value(c.clone()).map_err(|e| EditError::Invalid(format!("Invalid conditions: {e}")))?,
                None => vec![],
            };
            let r = NewConditionalPushRule::new(rule_id.to_owned(), conditions, actions);
            if kind == RuleKind::Override {
                NewPushRule::Override(r)
            } else {
                NewPushRule::Underride(r)
            }
        }
        RuleKind::Content => {
            let pattern = body["pattern"].as_str().ok_or_else(|| EditError::Invalid("content rules need a pattern".into()))?;
            NewPushRule::Content(NewPatternedPushRule::new(rule_id.to_owned(), pattern.to_owned(), actions))
        }
        RuleKind::Room => {
            let room = OwnedRoomId::try_from(rule_id).map_err(|_| EditError::Invalid("room rules are named by room ID".into()))?;
            NewPushRule::Room(NewSimplePushRule::new(room, actions))
        }
        RuleKind::Sender => {
            let user = OwnedUserId::try_from(rule_id).map_err(|_| EditError::Invalid("sender rules are named by user ID".into()))?;
            NewPushRule::Sender(NewSimplePushRule::new(user, actions))
        }
        _ => return Err(EditError::Invalid("unknown rule kind".into())),
    };
    rs.insert(rule, after, before).map_err(|e| match e {
        ruma::push::InsertPushRuleError::UnknownRuleId => EditError::NotFound,
        e => EditError::Invalid(e.to_string()),
    })
}

pub fn delete_rule(rs: &mut Ruleset, kind: RuleKind, rule_id: &str) -> Result<(), EditError> {
    rs.remove(kind, rule_id).map_err(|e| match e {
        ruma::push::RemovePushRuleError::NotFound => EditError::NotFound,
        e => EditError::Invalid(e.to_string()),
    })
}

pub fn set_enabled(rs: &mut Ruleset, kind: RuleKind, rule_id: &str, enabled: bool) -> Result<(), EditError> {
    rs.set_enabled(kind, rule_id, enabled).map_err(|_| EditError::NotFound)
}

pub fn set_actions(rs: &mut Ruleset, kind: RuleKind, rule_id: &str, actions: &Value) -> Result<(), EditError> {
    let actions: Vec<Action> = serde_json::from_value(actions.clone()).map_err(|e| EditError::Invalid(format!("Invalid actions: {e}")))?;
    rs.set_actions(kind, rule_id, actions).map_err(|_| EditError::NotFound)
}

/// What the rules say about one event for one user.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub notify: bool,
    pub highlight: bool,
    /// The matched rule's actions, as JSON (for `/notifications` and pushers).
    pub actions: Vec<Value>,
}

/// The room facts a rule may look at (spec: "Conditions").
pub struct RoomFacts<'a> {
    pub room_id: &'a RoomId,
    pub member_count: u64,
    /// `m.room.power_levels` content, if any.
    pub power_levels: Option<&'a Value>,
    /// The room's creators, which rank above every power level from room v12 on.
    pub privileged_creators: Option<Vec<OwnedUserId>>,
}

/// Evaluates `event` (the client or PDU JSON of a room event) for `user`. The sender's
/// own events never notify (ruma checks this too).
pub async fn evaluate(rs: &Ruleset, event: &Value, room: &RoomFacts<'_>, user: &UserId, display_name: &str) -> Outcome {
    let mut ctx = PushConditionRoomCtx::new(
        room.room_id.to_owned(),
        UInt::try_from(room.member_count).unwrap_or(UInt::MAX),
        user.to_owned(),
        display_name.to_owned(),
    );
    if let Some(pl) = room.power_levels {
        let users: BTreeMap<OwnedUserId, Int> = pl["users"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((OwnedUserId::try_from(k.as_str()).ok()?, Int::new(v.as_i64().or_else(|| v.as_str()?.parse().ok())?)?)))
                    .collect()
            })
            .unwrap_or_default();
        let users_default = Int::new(pl["users_default"].as_i64().unwrap_or(0)).unwrap_or_default();
        let notifications = serde_json::from_value(pl.get("notifications").cloned().unwrap_or(json!({})))
            .unwrap_or_else(|_| serde_json::from_value(json!({})).expect("defaults"));
        let rules = match &room.privileged_creators {
            Some(c) => RoomPowerLevelsRules::new(&ruma::room_version_rules::AuthorizationRules::V12, c.iter().cloned()),
            None => RoomPowerLevelsRules::new(&ruma::room_version_rules::AuthorizationRules::V1, std::iter::empty()),
        };
        ctx = ctx.with_power_levels(PushConditionPowerLevelsCtx::new(users, users_default, notifications, rules));
    }
    let Ok(raw) = Raw::<Value>::from_json_string(event.to_string()) else {
        return Outcome::default();
    };
    let actions = rs.get_actions(&raw, &ctx).await;
    Outcome {
        notify: actions.iter().any(Action::should_notify),
        highlight: actions.iter().any(Action::is_highlight),
        actions: actions.iter().filter_map(|a| serde_json::to_value(a).ok()).collect(),
    }
}

/// The thread an event counts towards for `unread_thread_notifications`: its thread root for
/// `m.thread` relations, `main` otherwise (spec: "Receiving notifications", threads).
pub fn thread_of(content: &Value) -> String {
    let r = &content["m.relates_to"];
    match (r["rel_type"].as_str(), r["event_id"].as_str()) {
        (Some("m.thread"), Some(root)) => root.to_owned(),
        _ => "main".to_owned(),
    }
}

/// `unread_notifications` (and, when the filter asks for per-thread counts,
/// `unread_thread_notifications`) from per-thread `(thread, notifications, highlights)`
/// counts (spec: client-server-api, "Receiving notifications"; sync.yaml). Without
/// per-thread counts every thread adds to the room's totals; with them, the totals are the
/// main timeline's only and each thread root gets its own entry.
pub fn unread_json(counts: &[(String, u64, u64)], per_thread: bool) -> (Value, Option<Value>) {
    let (mut n, mut h) = (0, 0);
    let mut threads = serde_json::Map::new();
    for (thread, tn, th) in counts {
        if per_thread && thread != "main" {
            threads.insert(thread.clone(), json!({ "notification_count": tn, "highlight_count": th }));
        } else {
            n += tn;
            h += th;
        }
    }
    (json!({ "notification_count": n, "highlight_count": h }), per_thread.then_some(Value::Object(threads)))
}

/// The path every push gateway URL has (spec: client-server-api, `POST /pushers/set`,
/// `data.url`: "MUST be an HTTPS URL with a path of `/_matrix/push/v1/notify`").
pub const GATEWAY_PATH: &str = "/_matrix/push/v1/notify";

/// Checks an HTTP pusher's `data.url`, when it is set and again before each send (a pusher
/// stored earlier, or a configuration that changed since, is held to the same rule): `https`
/// with the notify path, no credentials, and a host the server may reach, by the address
/// rules of URL previews ([`crate::core::preview::check_host`]): never `localhost`, a
/// single-label or local-only name, or an IP literal in a loopback, private, link-local or
/// otherwise special range. IP literals in `allow_ips` (`PUSH_GATEWAY_IP_ALLOWLIST`, for tests
/// and private deployments) pass the address check and may also use `http`.
pub fn check_gateway_url(raw: &str, allow_ips: &[IpAddr]) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "data.url is not a valid URL")?;
    let allowlisted = preview::is_allowlisted(&url, allow_ips);
    match url.scheme() {
        "https" => {}
        "http" if allowlisted => {}
        _ => return Err("data.url must be an https URL"),
    }
    if url.path() != GATEWAY_PATH {
        return Err("data.url must have the path /_matrix/push/v1/notify");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("data.url must not contain credentials");
    }
    preview::check_host(&url, allow_ips).map_err(|_| "data.url must not point at a local or private address")?;
    Ok(url)
}

/// Runs a future that never waits on I/O (ruma's rule evaluation) to completion.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    fn noop(_: *const ()) {}
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{room_id, user_id};

    fn facts<'a>(pl: Option<&'a Value>) -> RoomFacts<'a> {
        RoomFacts { room_id: room_id!("!r:x"), member_count: 3, power_levels: pl, privileged_creators: None }
    }

    fn msg(sender: &str, body: &str) -> Value {
        json!({"type": "m.room.message", "sender": sender, "room_id": "!r:x", "event_id": "$e",
               "content": {"msgtype": "m.text", "body": body}})
    }

    #[test]
    fn gateway_urls() {
        let ok = |u: &str, allow: &[IpAddr]| check_gateway_url(u, allow).is_ok();
        assert!(ok("https://push.example.org/_matrix/push/v1/notify", &[]));
        assert!(ok("https://push.example.org:8443/_matrix/push/v1/notify", &[]));
        assert!(ok("https://93.184.216.34/_matrix/push/v1/notify", &[]));
        for bad in [
            "http://push.example.org/_matrix/push/v1/notify",
            "https://push.example.org/_matrix/push/v1/notify/extra",
            "https://push.example.org/notify",
            "https://push.example.org/",
            "https://127.0.0.1/_matrix/push/v1/notify",
            "https://10.0.0.1/_matrix/push/v1/notify",
            "https://169.254.169.254/_matrix/push/v1/notify",
            "https://[::1]/_matrix/push/v1/notify",
            "https://[::ffff:127.0.0.1]/_matrix/push/v1/notify",
            "https://[fd00::1]/_matrix/push/v1/notify",
            "https://localhost/_matrix/push/v1/notify",
            "https://gateway/_matrix/push/v1/notify",
            "https://push.internal/_matrix/push/v1/notify",
            "https://u:p@push.example.org/_matrix/push/v1/notify",
            "ftp://push.example.org/_matrix/push/v1/notify",
            "not a url",
        ] {
            assert!(!ok(bad, &[]), "{bad}");
        }
        // Allow-listed IP literals may be private and use http; names never are.
        let allow = preview::parse_ip_list("127.0.0.1").unwrap();
        assert!(ok("http://127.0.0.1:8000/_matrix/push/v1/notify", &allow));
        assert!(ok("https://127.0.0.1/_matrix/push/v1/notify", &allow));
        assert!(!ok("http://127.0.0.1:8000/wrong", &allow));
        assert!(!ok("http://127.0.0.2/_matrix/push/v1/notify", &allow));
        assert!(!ok("http://localhost/_matrix/push/v1/notify", &allow));
        assert!(!ok("http://push.example.org/_matrix/push/v1/notify", &allow));
    }

    #[test]
    fn defaults_notify_and_highlight_on_mention() {
        let me = user_id!("@bob:x");
        let rs = load_ruleset(None, me);
        let o = block_on(evaluate(&rs, &msg("@alice:x", "hello"), &facts(None), me, "Bob"));
        assert!(o.notify && !o.highlight);
        let mut m = msg("@alice:x", "hey, look");
        m["content"]["m.mentions"] = json!({"user_ids": ["@bob:x"]});
        let o = block_on(evaluate(&rs, &m, &facts(None), me, "Bob"));
        assert!(o.notify && o.highlight, "an intentional mention highlights");
        let o = block_on(evaluate(&rs, &msg("@bob:x", "Bob"), &facts(None), me, "Bob"));
        assert!(!o.notify, "own events never notify");
        let pl = json!({"users": {"@alice:x": 100}});
        let mut m = msg("@alice:x", "hi all");
        m["content"]["m.mentions"] = json!({"room": true});
        let o = block_on(evaluate(&rs, &m, &facts(Some(&pl)), me, "Bob"));
        assert!(o.highlight, "@room from a user with power highlights");
    }

    #[test]
    fn edits_and_disabling() {
        let me = user_id!("@bob:x");
        let mut rs = load_ruleset(None, me);
        // A room rule that silences the room.
        put_rule(&mut rs, RuleKind::Room, "!r:x", &json!({"actions": []}), None, None).unwrap();
        let o = block_on(evaluate(&rs, &msg("@alice:x", "hello"), &facts(None), me, "Bob"));
        assert!(!o.notify);
        assert!(get_rule(&rs, RuleKind::Room, "!r:x").is_some());
        delete_rule(&mut rs, RuleKind::Room, "!r:x").unwrap();
        assert_eq!(delete_rule(&mut rs, RuleKind::Room, "!r:x"), Err(EditError::NotFound));
        // Disable the default catch-all message rule.
        set_enabled(&mut rs, RuleKind::Underride, ".m.rule.message", false).unwrap();
        let o = block_on(evaluate(&rs, &msg("@alice:x", "hello"), &facts(None), me, "Bob"));
        assert!(!o.notify);
        set_enabled(&mut rs, RuleKind::Underride, ".m.rule.message", true).unwrap();
        set_actions(&mut rs, RuleKind::Underride, ".m.rule.message", &json!(["notify", {"set_tweak": "highlight"}])).unwrap();
        let o = block_on(evaluate(&rs, &msg("@alice:x", "hello"), &facts(None), me, "Bob"));
        assert!(o.highlight);
        // Round trip through storage.
        let stored = to_stored(&rs);
        let back = load_ruleset(Some(&stored), me);
        assert_eq!(serde_json::to_value(&back).unwrap(), stored["global"]);
        assert!(put_rule(&mut rs, RuleKind::Override, ".x", &json!({"actions": []}), None, None).is_err());
        assert!(put_rule(&mut rs, RuleKind::Content, "c", &json!({"actions": ["notify"]}), None, None).is_err());
    }

    #[test]
    fn unread_counts_by_thread() {
        let c = vec![("main".to_owned(), 2, 1), ("$t".to_owned(), 3, 0)];
        let (total, threads) = unread_json(&c, false);
        assert_eq!(total, json!({"notification_count": 5, "highlight_count": 1}));
        assert!(threads.is_none());
        let (total, threads) = unread_json(&c, true);
        assert_eq!(total, json!({"notification_count": 2, "highlight_count": 1}));
        assert_eq!(threads.unwrap(), json!({"$t": {"notification_count": 3, "highlight_count": 0}}));
        assert_eq!(unread_json(&[], false).0, json!({"notification_count": 0, "highlight_count": 0}));
    }

    #[test]
    fn threads() {
        assert_eq!(thread_of(&json!({"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}})), "$root");
        assert_eq!(thread_of(&json!({"body": "x"})), "main");
    }
}
