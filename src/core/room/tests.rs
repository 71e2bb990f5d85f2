//! An in-memory room engine for tests: every event of one room in a map, and branches (a
//! state map, forward extremities and a depth) that new events are sent on top of with
//! [`auth::prepare_event`]. Several branches fork from the same head and meet again through
//! [`state::resolve`]. The JSON fixtures in `tests/fixtures/{auth,state_res}/` drive it
//! (see `fixture.rs`); other tests can use it directly.

mod auth_fixtures;
mod fixture;
mod state_res_fixtures;

use ruma::events::TimelineEventType;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::{self, RoomHead};
use super::pdu::{build_pdu, NewEvent, Pdu};
use super::state::{self, StateMap};
use super::version_rules;
use crate::core::signing::ServerSigningKey;
use crate::error::Result;

/// The server of short user names (`alice` → `@alice:example.org`).
pub const DEFAULT_SERVER: &str = "example.org";

/// A user ID from a short name: `alice`, `@alice`, `carol:other.org` or a full user ID.
pub fn user(name: &str) -> OwnedUserId {
    let bare = name.strip_prefix('@').unwrap_or(name);
    let full = if bare.contains(':') { format!("@{bare}") } else { format!("@{bare}:{DEFAULT_SERVER}") };
    UserId::parse(full).unwrap_or_else(|e| panic!("bad user name {name:?}: {e}"))
}

/// Expands short user IDs in strings and object keys: `"@alice"` (an `@` and no `:`) becomes
/// `"@alice:example.org"`; everything else is kept.
pub fn expand_users(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(expand_str(s)),
        Value::Array(a) => Value::Array(a.iter().map(expand_users).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (expand_str(k), expand_users(v))).collect()),
        other => other.clone(),
    }
}

/// `"@alice"` → `"@alice:example.org"`; other strings unchanged.
pub fn expand_str(s: &str) -> String {
    if s.len() > 1 && s.starts_with('@') && !s.contains(':') {
        format!("{s}:{DEFAULT_SERVER}")
    } else {
        s.to_owned()
    }
}

/// A deterministic signing key per server, so event IDs are stable from run to run.
pub fn server_key(server: &str) -> ServerSigningKey {
    let seed = Sha256::digest(format!("stratus fixture key for {server}").as_bytes());
    ServerSigningKey::parse(&format!("ed25519 fixture {}", STANDARD_NO_PAD.encode(seed))).expect("fixture key")
}

/// One line of history: the state after its last event, its forward extremities and the
/// greatest depth among them. Cheap to clone; forks are clones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Branch {
    pub state: StateMap,
    pub extremities: Vec<OwnedEventId>,
    pub depth: u64,
}

impl Branch {
    /// The event ID at `(kind, state_key)`.
    pub fn get(&self, kind: &str, state_key: &str) -> Option<&OwnedEventId> {
        self.state.get(&(kind.to_owned(), state_key.to_owned()))
    }
}

/// All events of one room, by ID.
pub struct TestRoom {
    pub version: String,
    pub rules: RoomVersionRules,
    /// Known once the create event is sent in v12; fixed before.
    pub room_id: Option<OwnedRoomId>,
    pub events: BTreeMap<OwnedEventId, Pdu>,
    /// The `origin_server_ts` of the next event sent without an explicit one.
    pub clock: u64,
}

impl TestRoom {
    /// An empty room of the given version. Before v12 its ID is `!fixture:example.org`.
    pub fn new(version: &str) -> TestRoom {
        let (_, rules) = version_rules(version).unwrap_or_else(|e| panic!("room version {version}: {e}"));
        let room_id = if rules.authorization.room_create_event_id_as_room_id {
            None
        } else {
            Some(RoomId::parse(format!("!fixture:{DEFAULT_SERVER}")).unwrap())
        };
        TestRoom { version: version.to_owned(), rules, room_id, events: BTreeMap::new(), clock: 1_000_000 }
    }

    pub fn fetch(&self) -> impl Fn(&EventId) -> Option<Pdu> + '_ {
        move |id: &EventId| self.events.get(id).cloned()
    }

    pub fn event(&self, id: &EventId) -> &Pdu {
        self.events.get(id).unwrap_or_else(|| panic!("unknown event {id}"))
    }

    fn next_ts(&mut self, ts: Option<u64>) -> u64 {
        let t = ts.unwrap_or(self.clock);
        self.clock = self.clock.max(t) + 1000;
        t
    }

    /// Sends `new` on top of `branch` with [`auth::prepare_event`], signed by the sender's
    /// server. Allowed: the event is stored and the extended branch returned. Refused: the
    /// error, and nothing changes.
    pub fn send(&mut self, branch: &Branch, new: &NewEvent, ts: Option<u64>) -> Result<(Pdu, Branch)> {
        let server = new.sender.server_name().as_str().to_owned();
        let ts = self.next_ts(ts);
        let head = RoomHead {
            rules: &self.rules,
            room_id: self.room_id.as_deref(),
            state: &branch.state,
            extremities: &branch.extremities,
            max_depth: branch.depth,
        };
        let pdu = auth::prepare_event(&head, new, ts, &server, &server_key(&server), &self.fetch())?;
        Ok(self.accept(branch, pdu))
    }

    /// Like [`send`](Self::send) but with the given `auth_events` instead of those picked from
    /// the state: built with [`build_pdu`] and checked with [`auth::check`] against its auth
    /// events and the branch's state.
    pub fn send_with_auth_events(&mut self, branch: &Branch, new: &NewEvent, auth_events: &[OwnedEventId], ts: Option<u64>) -> Result<(Pdu, Branch)> {
        let server = new.sender.server_name().as_str().to_owned();
        let ts = self.next_ts(ts);
        let room_id =
            if new.kind == "m.room.create" && self.rules.authorization.room_create_event_id_as_room_id { None } else { self.room_id.as_deref() };
        let depth = if branch.extremities.is_empty() { 1 } else { branch.depth + 1 };
        let pdu = build_pdu(&self.rules, room_id, new, &branch.extremities, auth_events, depth, ts, &server, &server_key(&server))?;
        {
            let fetch = self.fetch();
            let with_self = |id: &EventId| if id == pdu.event_id { Some(pdu.clone()) } else { fetch(id) };
            auth::check(&self.rules, &pdu, &branch.state, &with_self)?;
        }
        Ok(self.accept(branch, pdu))
    }

    fn accept(&mut self, branch: &Branch, pdu: Pdu) -> (Pdu, Branch) {
        if pdu.kind == TimelineEventType::RoomCreate && self.room_id.is_none() {
            self.room_id = Some(pdu.room_id.clone());
        }
        let next = Branch { state: state::state_after(&branch.state, &pdu), extremities: vec![pdu.event_id.clone()], depth: pdu.depth };
        self.events.insert(pdu.event_id.clone(), pdu.clone());
        (pdu, next)
    }

    /// State resolution v2 over the branches' states.
    pub fn resolve(&self, branches: &[Branch]) -> Result<StateMap> {
        let maps: Vec<StateMap> = branches.iter().map(|b| b.state.clone()).collect();
        state::resolve(&self.rules, &maps, self.fetch())
    }

    /// The branches joined: resolved state, all their extremities, the greatest depth.
    pub fn merge(&self, branches: &[Branch]) -> Result<Branch> {
        let state = self.resolve(branches)?;
        let mut extremities: Vec<OwnedEventId> = Vec::new();
        for b in branches {
            for e in &b.extremities {
                if !extremities.contains(e) {
                    extremities.push(e.clone());
                }
            }
        }
        Ok(Branch { state, extremities, depth: branches.iter().map(|b| b.depth).max().unwrap_or(0) })
    }
}

/// A `NewEvent` from short names; content user IDs are expanded (see [`expand_users`]).
pub fn new_event(sender: &str, kind: &str, state_key: Option<&str>, content: Value) -> NewEvent {
    NewEvent { kind: kind.to_owned(), state_key: state_key.map(expand_str), content: expand_users(&content), sender: user(sender), redacts: None }
}

#[test]
fn engine_builds_a_room_and_forks() {
    use serde_json::json;
    for v in ["10", "12"] {
        let mut room = TestRoom::new(v);
        let mut create = json!({ "room_version": v });
        if v == "10" {
            create["creator"] = json!("@alice");
        }
        let (c, b) = room.send(&Branch::default(), &new_event("alice", "m.room.create", Some(""), create), None).unwrap();
        assert_eq!(room.room_id.as_deref(), Some(&*c.room_id));
        let (_, b) = room.send(&b, &new_event("alice", "m.room.member", Some("@alice"), json!({"membership": "join"})), None).unwrap();
        let (_, left) = room.send(&b, &new_event("alice", "m.room.topic", Some(""), json!({"topic": "l"})), None).unwrap();
        let (_, right) = room.send(&b, &new_event("alice", "m.room.name", Some(""), json!({"name": "r"})), None).unwrap();
        let merged = room.merge(&[left.clone(), right.clone()]).unwrap();
        assert_eq!(merged.get("m.room.topic", ""), left.get("m.room.topic", ""));
        assert_eq!(merged.get("m.room.name", ""), right.get("m.room.name", ""));
        assert_eq!(merged.extremities.len(), 2);
        // A message on the merged branch points at both extremities.
        let (m, _) = room.send(&merged, &new_event("alice", "m.room.message", None, json!({"body": "hi"})), None).unwrap();
        assert_eq!(m.prev_events.len(), 2);
    }
}

#[test]
fn conflicted_subgraph_is_the_paths_between_conflicted_events() {
    use serde_json::json;
    let mut room = TestRoom::new("12");
    let mut b = Branch::default();
    let send = |room: &mut TestRoom, b: &mut Branch, e: NewEvent| {
        let (p, next) = room.send(b, &e, None).unwrap();
        *b = next;
        p.event_id
    };
    let create = send(&mut room, &mut b, new_event("alice", "m.room.create", Some(""), json!({"room_version": "12"})));
    let join = send(&mut room, &mut b, new_event("alice", "m.room.member", Some("@alice"), json!({"membership": "join"})));
    let pl1 = send(&mut room, &mut b, new_event("alice", "m.room.power_levels", Some(""), json!({"users": {}})));
    let pl2 = send(&mut room, &mut b, new_event("alice", "m.room.power_levels", Some(""), json!({"users": {"@bob": 10}})));
    let topic = send(&mut room, &mut b, new_event("alice", "m.room.topic", Some(""), json!({"topic": "t"})));
    let sub = state::conflicted_subgraph(&[pl1.clone(), topic.clone()], &room.fetch());
    let want: std::collections::HashSet<_> = [pl1, pl2, topic].into_iter().collect();
    assert_eq!(sub, want, "create {create} and join {join} are ancestors only");
}

#[test]
fn resolution_does_not_depend_on_the_order_of_the_states() {
    use serde_json::json;
    for v in ["10", "12"] {
        let mut room = TestRoom::new(v);
        let mut create = json!({ "room_version": v });
        if v == "10" {
            create["creator"] = json!("@alice");
        }
        let (_, b) = room.send(&Branch::default(), &new_event("alice", "m.room.create", Some(""), create), None).unwrap();
        let (_, b) = room.send(&b, &new_event("alice", "m.room.member", Some("@alice"), json!({"membership": "join"})), None).unwrap();
        let users = if v == "12" { json!({"@bob": 100}) } else { json!({"@alice": 100, "@bob": 100}) };
        let (_, b) = room.send(&b, &new_event("alice", "m.room.power_levels", Some(""), json!({ "users": users })), None).unwrap();
        let (_, b) = room.send(&b, &new_event("alice", "m.room.join_rules", Some(""), json!({"join_rule": "public"})), None).unwrap();
        let (_, b) = room.send(&b, &new_event("bob", "m.room.member", Some("@bob"), json!({"membership": "join"})), None).unwrap();
        let (_, left) = room.send(&b, &new_event("alice", "m.room.topic", Some(""), json!({"topic": "l"})), None).unwrap();
        let (_, right) = room.send(&b, &new_event("bob", "m.room.topic", Some(""), json!({"topic": "r"})), None).unwrap();
        let one = room.resolve(&[left.clone(), right.clone()]).unwrap();
        let two = room.resolve(&[right.clone(), left.clone()]).unwrap();
        assert_eq!(one, two, "v{v}");
    }
}
