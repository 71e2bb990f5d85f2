//! Room state maps, the deltas stored between state snapshots, and state resolution v2
//! (ruma) where two state sets meet (spec: rooms/v2 "State resolution").

use std::collections::{BTreeMap, HashMap, HashSet};

use ruma::events::StateEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::{self, utils::event_id_set::EventIdSet};
use ruma::{EventId, OwnedEventId};
use serde::{Deserialize, Serialize};

use super::pdu::Pdu;
use crate::err;
use crate::error::Result;

/// `(event type, state key) → event ID`.
pub type StateMap = BTreeMap<(String, String), OwnedEventId>;

/// One change to a state map: the event now at `(kind, state_key)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry(pub String, pub String, pub OwnedEventId);

/// Applies deltas, oldest first, to a base map.
pub fn apply(base: &mut StateMap, delta: &[StateEntry]) {
    for StateEntry(t, k, e) in delta {
        base.insert((t.clone(), k.clone()), e.clone());
    }
}

/// The entries of `after` that differ from `before`.
pub fn diff(before: &StateMap, after: &StateMap) -> Vec<StateEntry> {
    after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|((t, s), e)| StateEntry(t.clone(), s.clone(), e.clone())).collect()
}

/// The state after `pdu`, given the state before it.
pub fn state_after(before: &StateMap, pdu: &Pdu) -> StateMap {
    let mut after = before.clone();
    if let Some(k) = &pdu.state_key {
        after.insert((pdu.kind.to_string(), k.clone()), pdu.event_id.clone());
    }
    after
}

/// The forward extremities among some events: those no other of them names in its
/// `prev_events`. Given every event after some point, these are the room's extremities.
pub fn extremities<'a>(events: impl IntoIterator<Item = (&'a EventId, &'a [OwnedEventId])> + Clone) -> Vec<OwnedEventId> {
    let referenced: HashSet<&EventId> = events.clone().into_iter().flat_map(|(_, prev)| prev.iter().map(|p| &**p)).collect();
    events.into_iter().filter(|(id, _)| !referenced.contains(id)).map(|(id, _)| id.to_owned()).collect()
}

/// The full auth chain of the given events: every event reachable through `auth_events`.
pub fn auth_chain(start: &[OwnedEventId], fetch: &impl Fn(&EventId) -> Option<Pdu>) -> HashSet<OwnedEventId> {
    let mut seen = HashSet::new();
    let mut todo: Vec<OwnedEventId> = start.to_vec();
    while let Some(id) = todo.pop() {
        if let Some(p) = fetch(&id) {
            for a in &p.auth_events {
                if seen.insert(a.clone()) {
                    todo.push(a.clone());
                }
            }
        }
    }
    seen
}

/// The conflicted state subgraph (spec: rooms/v12, "State resolution"): the conflicted events
/// and every event that is both an auth ancestor of one of them and has one of them among its
/// own auth ancestors.
pub fn conflicted_subgraph(conflicted: &[OwnedEventId], fetch: &impl Fn(&EventId) -> Option<Pdu>) -> HashSet<OwnedEventId> {
    let targets: HashSet<OwnedEventId> = conflicted.iter().cloned().collect();
    let ancestors = auth_chain(conflicted, fetch);
    // Whether a conflicted event is among an event's auth ancestors; post-order, no recursion.
    let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
    for start in &ancestors {
        let mut stack = vec![(start.clone(), false)];
        while let Some((id, expanded)) = stack.pop() {
            if reaches.contains_key(&id) {
                continue;
            }
            let auth = fetch(&id).map(|p| p.auth_events).unwrap_or_default();
            if expanded {
                let r = auth.iter().any(|a| targets.contains(a) || reaches.get(a) == Some(&true));
                reaches.insert(id, r);
            } else {
                stack.push((id, true));
                stack.extend(auth.into_iter().filter(|a| !reaches.contains_key(a)).map(|a| (a, false)));
            }
        }
    }
    let mut set: HashSet<OwnedEventId> = ancestors.into_iter().filter(|e| reaches.get(e) == Some(&true)).collect();
    set.extend(targets);
    set
}

/// Resolves several state maps into one with state resolution v2 (ruma). `fetch` must know
/// every event in the maps and their auth chains.
pub fn resolve(rules: &RoomVersionRules, maps: &[StateMap], fetch: impl Fn(&EventId) -> Option<Pdu>) -> Result<StateMap> {
    if let [only] = maps {
        return Ok(only.clone());
    }
    let to_ruma = |m: &StateMap| -> state_res::StateMap<OwnedEventId> {
        m.iter().map(|((t, k), e)| ((StateEventType::from(t.as_str()), k.clone()), e.clone())).collect()
    };
    let ruma_maps: Vec<_> = maps.iter().map(to_ruma).collect();
    let auth_chains: Vec<EventIdSet<OwnedEventId>> = maps
        .iter()
        .map(|m| {
            let ids: Vec<OwnedEventId> = m.values().cloned().collect();
            auth_chain(&ids, &fetch).into_iter().collect()
        })
        .collect();
    let state_res_rules = rules.state_res.v2_rules().ok_or_else(|| err!(UnsupportedRoomVersion, "state resolution v1 is not supported"))?;
    // Since v12 the conflicted state subgraph widens the set resolved: every event on an auth
    // path between two conflicted events. Not their whole auth chains: a common ancestor such
    // as an older membership would then be re-applied and could win over its descendants.
    let subgraph = |conflicted: &state_res::StateMap<Vec<OwnedEventId>>| -> Option<EventIdSet<OwnedEventId>> {
        let ids: Vec<OwnedEventId> = conflicted.values().flatten().cloned().collect();
        Some(conflicted_subgraph(&ids, &fetch).into_iter().collect())
    };
    let resolved = state_res::resolve(&rules.authorization, state_res_rules, &ruma_maps, auth_chains, &fetch, subgraph)
        .map_err(|e| err!(Unknown, "state resolution failed: {e}"))?;
    Ok(resolved.into_iter().map(|((t, k), e)| ((t.to_string(), k), e)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_and_apply_round_trip() {
        let e = |s: &str| EventId::parse(format!("${s}")).unwrap();
        let mut a = StateMap::new();
        a.insert(("m.room.create".into(), "".into()), e("c"));
        let mut b = a.clone();
        b.insert(("m.room.member".into(), "@a:x".into()), e("m"));
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        let mut c = a.clone();
        apply(&mut c, &d);
        assert_eq!(c, b);
    }

    #[test]
    fn extremities_of_a_chain_and_a_fork() {
        let e = |s: &str| EventId::parse(format!("${s}")).unwrap();
        let (a, b, c, d) = (e("a"), e("b"), e("c"), e("d"));
        // a <- b <- c: one tip.
        let chain = [(&*c, vec![b.clone()]), (&*b, vec![a.clone()]), (&*a, vec![])];
        assert_eq!(extremities(chain.iter().map(|(i, p)| (*i, p.as_slice()))), vec![c.clone()]);
        // a <- b, a <- d: two tips; then c names both and is the only one.
        let fork = [(&*b, vec![a.clone()]), (&*d, vec![a.clone()]), (&*a, vec![])];
        let mut tips = extremities(fork.iter().map(|(i, p)| (*i, p.as_slice())));
        tips.sort();
        assert_eq!(tips, vec![b.clone(), d.clone()]);
        let merged = [(&*c, vec![b.clone(), d.clone()]), (&*b, vec![a.clone()]), (&*d, vec![a.clone()])];
        assert_eq!(extremities(merged.iter().map(|(i, p)| (*i, p.as_slice()))), vec![c]);
    }
}
