//! The JSON fixture format shared by the auth and state-resolution fixtures, and the runner
//! that plays steps on a [`TestRoom`].
//!
//! A step: `{ "sender": "alice", "type": "m.room.member", "state_key": "@bob",
//! "content": {...}, "expect": "allow" | "deny" }`, with optional `label` (to name the event
//! later), `ts` (its `origin_server_ts`), `versions` (play it only in these room versions),
//! `reason` (a substring the refusal must contain), `auth_events` (labels; the event is then
//! built by hand with exactly these auth events instead of those `prepare_event` picks —
//! `"missing"` is an unknown event ID, `"state:TYPE"` / `"state:TYPE|KEY"` the event at that
//! key in the branch's state) and `comment`. `expect` defaults to `allow`.
//!
//! Users: a sender `alice` is `@alice:example.org`, `carol:other.org` is `@carol:other.org`; in
//! state keys and in content (strings and object keys) `"@alice"` expands the same way.
//! A create event's content gets `room_version`, and `creator` where the version needs it,
//! unless given.
//!
//! `room` (optional) builds the room with `create::plan` first: `{ "creator": "alice",
//! "request": { createRoom body }, "users": { "@bob": 50 }, "members": ["bob"] }` — `users`
//! is merged into the power levels' `users` (the creator is left out in v12 by `plan`), each
//! member is invited by the creator and joins. Setup events are labelled by type
//! (`m.room.power_levels`, `m.room.member|@bob`, …).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ruma::OwnedEventId;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{expand_str, expand_users, new_event, user, Branch, TestRoom};
use crate::core::room::create::{plan, CreateRoomRequest};
use crate::core::room::pdu::NewEvent;
use crate::error::{Error, ErrorKind};

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Allow,
    Deny,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub label: Option<String>,
    pub sender: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: Option<String>,
    #[serde(default = "empty_object")]
    pub content: Value,
    #[serde(default)]
    pub expect: Expect,
    pub ts: Option<u64>,
    pub auth_events: Option<Vec<String>>,
    pub versions: Option<Vec<String>>,
    pub reason: Option<String>,
    pub comment: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSetup {
    pub creator: String,
    #[serde(default = "empty_object")]
    pub request: Value,
    #[serde(default)]
    pub users: Map<String, Value>,
    #[serde(default)]
    pub members: Vec<String>,
}

/// The JSON files of a fixture directory (`tests/fixtures/<dir>`), sorted by name.
pub fn fixture_files(dir: &str) -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, text)
        })
        .collect()
}

/// A fixture being played in one room version: the room and the labelled events.
pub struct Run {
    pub room: TestRoom,
    pub labels: BTreeMap<String, OwnedEventId>,
    /// Steps played (allowed or denied as expected).
    pub steps: usize,
}

impl Run {
    pub fn new(version: &str) -> Run {
        Run { room: TestRoom::new(version), labels: BTreeMap::new(), steps: 0 }
    }

    /// Builds the room from `setup` (see the module docs); returns the branch after it.
    pub fn setup(&mut self, setup: &RoomSetup) -> Result<Branch, String> {
        let rules = &self.room.rules.authorization;
        let req: CreateRoomRequest = serde_json::from_value(expand_users(&setup.request)).map_err(|e| format!("room.request: {e}"))?;
        let creator = user(&setup.creator);
        let p = plan(&req, &creator, (None, None), &self.room.version, !rules.use_room_create_sender, rules.explicitly_privilege_room_creators, None)
            .map_err(|e| format!("plan: {e}"))?;
        let mut events = vec![p.create];
        events.extend(p.rest);
        for e in &mut events {
            if e.kind == "m.room.power_levels" {
                for (u, level) in &setup.users {
                    e.content["users"][expand_str(u)] = level.clone();
                }
            }
        }
        for m in &setup.members {
            let who = user(m).to_string();
            events.push(new_event(&setup.creator, "m.room.member", Some(&who), json!({"membership": "invite"})));
            events.push(new_event(m, "m.room.member", Some(&who), json!({"membership": "join"})));
        }
        let mut branch = Branch::default();
        for e in &events {
            let label = match e.state_key.as_deref() {
                Some("") | None => e.kind.clone(),
                Some(k) => format!("{}|{k}", e.kind),
            };
            let (pdu, next) = self.room.send(&branch, e, None).map_err(|err| format!("setup event {label} refused: {err}"))?;
            self.labels.insert(label, pdu.event_id);
            branch = next;
        }
        Ok(branch)
    }

    fn to_new_event(&self, step: &Step) -> NewEvent {
        let mut new = new_event(&step.sender, &step.kind, step.state_key.as_deref(), step.content.clone());
        if step.kind == "m.room.create" && new.content.is_object() {
            let rules = &self.room.rules.authorization;
            if new.content.get("room_version").is_none() {
                new.content["room_version"] = json!(self.room.version);
            }
            if !rules.use_room_create_sender && new.content.get("creator").is_none() {
                new.content["creator"] = json!(new.sender);
            }
        }
        new
    }

    fn resolve_ref(&self, branch: &Branch, r: &str) -> Result<OwnedEventId, String> {
        if r == "missing" {
            return Ok(OwnedEventId::try_from("$missingmissingmissingmissingmissingmissingm").unwrap());
        }
        if let Some(key) = r.strip_prefix("state:") {
            let (t, k) = key.split_once('|').unwrap_or((key, ""));
            return branch.get(t, &expand_str(k)).cloned().ok_or_else(|| format!("no state at {key}"));
        }
        let label = match r.split_once('|') {
            Some((t, k)) => format!("{t}|{}", expand_str(k)),
            None => r.to_owned(),
        };
        self.labels.get(&label).cloned().ok_or_else(|| format!("unknown label {r:?}"))
    }

    /// Plays one step on `branch`. `Ok(Some(branch))`: allowed as expected, the extended
    /// branch. `Ok(None)`: denied as expected (the room is unchanged) or not for this version.
    /// `Err`: the step did not go as the fixture says.
    pub fn step(&mut self, branch: &Branch, step: &Step) -> Result<Option<Branch>, String> {
        if step.versions.as_ref().is_some_and(|v| !v.contains(&self.room.version)) {
            return Ok(None);
        }
        self.steps += 1;
        let what = format!(
            "{} {}{} by {}{}",
            step.label.as_deref().unwrap_or("step"),
            step.kind,
            step.state_key.as_ref().map(|k| format!(" [{k}]")).unwrap_or_default(),
            step.sender,
            step.comment.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
        );
        let new = self.to_new_event(step);
        let before = self.room.events.len();
        let result = match &step.auth_events {
            Some(refs) => {
                let ids = refs.iter().map(|r| self.resolve_ref(branch, r)).collect::<Result<Vec<_>, _>>()?;
                self.room.send_with_auth_events(branch, &new, &ids, step.ts)
            }
            None => self.room.send(branch, &new, step.ts),
        };
        match (result, step.expect) {
            (Ok((pdu, next)), Expect::Allow) => {
                if let Some(l) = &step.label {
                    self.labels.insert(l.clone(), pdu.event_id);
                }
                Ok(Some(next))
            }
            (Ok((pdu, _)), Expect::Deny) => Err(format!("{what}: allowed ({}), expected deny", pdu.event_id)),
            (Err(e), Expect::Allow) => Err(format!("{what}: refused, expected allow: {e}")),
            (Err(e), Expect::Deny) => {
                if self.room.events.len() != before {
                    return Err(format!("{what}: refused but the room changed"));
                }
                match &e {
                    Error::Matrix(ErrorKind::Forbidden, msg) => match &step.reason {
                        Some(r) if !msg.contains(r.as_str()) => Err(format!("{what}: refused for {msg:?}, expected a reason containing {r:?}")),
                        _ => Ok(None),
                    },
                    other => Err(format!("{what}: refused with {other}, expected M_FORBIDDEN")),
                }
            }
        }
    }

    /// Plays steps one after the other; denied steps leave the branch as it was.
    pub fn steps(&mut self, mut branch: Branch, steps: &[Step]) -> Result<Branch, String> {
        for s in steps {
            if let Some(next) = self.step(&branch, s)? {
                branch = next;
            }
        }
        Ok(branch)
    }
}

/// Runs `play` for every fixture file of `dir` and every room version it names; panics with
/// the list of failures. Returns (fixtures, cases, steps).
pub fn run_all<F: for<'de> Deserialize<'de>>(
    dir: &str,
    versions: impl Fn(&F) -> Vec<String>,
    play: impl Fn(&F, &mut Run) -> Result<(), String>,
) -> (usize, usize, usize) {
    let files = fixture_files(dir);
    assert!(!files.is_empty(), "no fixtures in tests/fixtures/{dir}");
    let (mut cases, mut steps, mut failures) = (0, 0, Vec::new());
    for (name, text) in &files {
        let fixture: F = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{dir}/{name}: bad fixture: {e}"));
                continue;
            }
        };
        let vs = versions(&fixture);
        if vs.is_empty() {
            failures.push(format!("{dir}/{name}: names no room version"));
        }
        for v in vs {
            cases += 1;
            let mut run = Run::new(&v);
            if let Err(e) = play(&fixture, &mut run) {
                failures.push(format!("{dir}/{name} (room v{v}): {e}"));
            }
            steps += run.steps;
        }
    }
    eprintln!("{dir}: {} fixtures, {cases} cases, {steps} steps", files.len());
    assert!(failures.is_empty(), "{} of {cases} fixture cases failed:\n{}", failures.len(), failures.join("\n"));
    (files.len(), cases, steps)
}
