//! State-resolution fixtures (`tests/fixtures/state_res/*.json`):
//!
//! ```json
//! { "description": "…", "versions": ["10", "12"], "room": { … }?,
//!   "prefix": [steps], "branches": [[steps], [steps]],
//!   "expect": { "m.room.topic": { "": "label" }, "m.room.member": { "@bob": { "content": { "membership": "ban" } } } },
//!   "after": [steps] }
//! ```
//!
//! The prefix plays on one branch; each branch forks from its end; the branches' states are
//! resolved with `state::resolve`. An expected value is the label of the winning event, `null`
//! (no event at that key), `{"content": {…}}` (the winner's content has these fields), or
//! `{"highest_event_id": [labels]}` (the winner is the one of these events with the greatest
//! event ID — the last tie-break of the mainline order). `after` plays on the merged branch.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::expand_str;
use super::fixture::{run_all, RoomSetup, Run, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateResFixture {
    #[allow(dead_code)]
    description: String,
    versions: Vec<String>,
    room: Option<RoomSetup>,
    #[serde(default)]
    prefix: Vec<Step>,
    branches: Vec<Vec<Step>>,
    expect: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    after: Vec<Step>,
}

fn label_of(run: &Run, id: &ruma::EventId) -> String {
    run.labels.iter().find(|(_, v)| v.as_ref() as &ruma::EventId == id).map(|(k, _)| k.clone()).unwrap_or_else(|| id.to_string())
}

fn check_expectations(f: &StateResFixture, run: &Run, state: &crate::core::room::state::StateMap) -> Result<(), String> {
    for (kind, keys) in &f.expect {
        for (key, want) in keys {
            let at = state.get(&(kind.clone(), expand_str(key)));
            let got = at.map(|id| label_of(run, id));
            let fail = |what: String| Err(format!("({kind}, {key:?}): expected {what}, resolved to {got:?}"));
            match want {
                Value::Null if at.is_some() => return fail("no event".into()),
                Value::Null => {}
                Value::String(label) => {
                    let id = run.labels.get(label).ok_or_else(|| format!("expect: unknown label {label:?}"))?;
                    if at != Some(id) {
                        return fail(format!("{label:?}"));
                    }
                }
                Value::Object(o) if o.contains_key("content") => {
                    let Some(id) = at else { return fail(format!("content {}", o["content"])) };
                    let content = run.room.event(id).content_value();
                    let wanted = super::expand_users(&o["content"]);
                    for (field, value) in wanted.as_object().ok_or("expect: content must be an object")? {
                        if content.get(field) != Some(value) {
                            return fail(format!("content {wanted} (winner's content is {content})"));
                        }
                    }
                }
                Value::Object(o) if o.contains_key("highest_event_id") => {
                    let labels: Vec<String> = serde_json::from_value(o["highest_event_id"].clone()).map_err(|e| e.to_string())?;
                    let ids = labels
                        .iter()
                        .map(|l| run.labels.get(l).ok_or_else(|| format!("expect: unknown label {l:?}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let best = ids.iter().max().unwrap();
                    if at != Some(*best) {
                        return fail(format!("{:?} (greatest event ID of {labels:?})", label_of(run, best)));
                    }
                }
                other => return Err(format!("expect: cannot read {other}")),
            }
        }
    }
    Ok(())
}

#[test]
fn state_res_fixtures() {
    run_all::<StateResFixture>(
        "state_res",
        |f| f.versions.clone(),
        |f, run| {
            let start = match &f.room {
                Some(setup) => run.setup(setup)?,
                None => Default::default(),
            };
            let head = run.steps(start, &f.prefix)?;
            let mut branches = Vec::new();
            for (i, steps) in f.branches.iter().enumerate() {
                branches.push(run.steps(head.clone(), steps).map_err(|e| format!("branch {i}: {e}"))?);
            }
            let merged = run.room.merge(&branches).map_err(|e| format!("resolve: {e}"))?;
            // Resolution does not depend on the order of the branches.
            let mut reversed = branches.clone();
            reversed.reverse();
            let again = run.room.resolve(&reversed).map_err(|e| format!("resolve (reversed): {e}"))?;
            if again != merged.state {
                return Err("resolution depends on the order of the branches".into());
            }
            check_expectations(f, run, &merged.state)?;
            run.steps(merged, &f.after).map_err(|e| format!("after: {e}"))?;
            Ok(())
        },
    );
}
