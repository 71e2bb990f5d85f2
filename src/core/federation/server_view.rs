//! What another server may read of a room, and the graph walks of `/backfill` and
//! `/get_missing_events` (spec: server-server-api, "Backfilling and retrieving missing
//! events", "Retrieving events"). The visibility rule is the client-server one ("History
//! visibility", server behaviour) applied to a server as Synapse applies it: a server may see
//! an event when one of its users could have seen it at that event, and `shared` /
//! `world_readable` history is open to any server that is or was in the room (whether it
//! ever was is checked before, by the caller).

use std::collections::{BTreeMap, HashSet};

use ruma::OwnedEventId;

use crate::core::room::visibility::HistoryVisibility;

/// Whether a server whose users had these memberships (user → membership, at the event) may
/// see an event sent while `visibility` was in effect.
pub fn server_may_see(visibility: HistoryVisibility, memberships: &BTreeMap<String, String>) -> bool {
    match visibility {
        HistoryVisibility::WorldReadable | HistoryVisibility::Shared => true,
        HistoryVisibility::Invited => memberships.values().any(|m| m == "join" || m == "invite"),
        HistoryVisibility::Joined => memberships.values().any(|m| m == "join"),
    }
}

/// One event as a server sees it: the visibility and the server's memberships before it, and
/// what the event itself changes of them.
pub struct EventView {
    pub visibility: HistoryVisibility,
    /// The requesting server's users' memberships in the state before the event.
    pub memberships: BTreeMap<String, String>,
    /// For an `m.room.history_visibility` event: the setting it introduces.
    pub new_visibility: Option<HistoryVisibility>,
    /// For a member event of one of the server's users: (user, new membership).
    pub own_membership: Option<(String, String)>,
}

/// The spec's rule with its two boundary cases: a history-visibility change is visible if
/// the setting before *or* after allows it, and so is a membership change of the server's
/// own user if the membership before *or* after does.
pub fn event_visible(v: &EventView) -> bool {
    if server_may_see(v.visibility, &v.memberships) {
        return true;
    }
    if let Some(after) = v.new_visibility {
        if server_may_see(after, &v.memberships) {
            return true;
        }
    }
    if let Some((user, m)) = &v.own_membership {
        let mut after = v.memberships.clone();
        after.insert(user.clone(), m.clone());
        return server_may_see(v.visibility, &after);
    }
    false
}

/// Whether a user ID belongs to `server` (its server name is exactly that).
pub fn user_on_server(user_id: &str, server: &str) -> bool {
    ruma::UserId::parse(user_id).is_ok_and(|u| u.server_name().as_str() == server)
}

/// A breadth-first walk back through `prev_events`, one round trip per step: the caller
/// loads [`Walk::wanted`] and hands the events found to [`Walk::step`] until nothing is
/// wanted.
pub struct Walk {
    limit: usize,
    min_depth: u64,
    /// Visited, or not to be visited (`earliest_events`).
    seen: HashSet<OwnedEventId>,
    /// Walked from but not returned (`latest_events` of `/get_missing_events`).
    skip: HashSet<OwnedEventId>,
    frontier: Vec<OwnedEventId>,
    out: Vec<(OwnedEventId, u64)>,
}

impl Walk {
    /// `/backfill`: the events in `v` and those before them, up to `limit` in all.
    pub fn backfill(v: Vec<OwnedEventId>, limit: usize) -> Walk {
        let seen = v.iter().cloned().collect();
        Walk { limit, min_depth: 0, seen, skip: HashSet::new(), frontier: v, out: vec![] }
    }

    /// `/get_missing_events`: the events before `latest` (not `latest` themselves), never
    /// through `earliest`, none below `min_depth`, up to `limit`.
    pub fn missing(latest: Vec<OwnedEventId>, earliest: Vec<OwnedEventId>, limit: usize, min_depth: u64) -> Walk {
        let mut seen: HashSet<OwnedEventId> = earliest.into_iter().collect();
        let latest: Vec<OwnedEventId> = latest.into_iter().filter(|e| !seen.contains(e)).collect();
        seen.extend(latest.iter().cloned());
        Walk { limit, min_depth, seen, skip: latest.iter().cloned().collect(), frontier: latest, out: vec![] }
    }

    /// The events to load next; empty when the walk is over.
    pub fn wanted(&self) -> Vec<OwnedEventId> {
        if self.out.len() >= self.limit {
            return vec![];
        }
        self.frontier.clone()
    }

    /// The events of [`Walk::wanted`] that exist in the room, as (ID, depth, prev_events);
    /// events not found end their branch. Deeper (newer) events are taken first.
    pub fn step(&mut self, mut found: Vec<(OwnedEventId, u64, Vec<OwnedEventId>)>) {
        found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut next = Vec::new();
        for (id, depth, prev) in found {
            if self.out.len() >= self.limit {
                break;
            }
            if !self.skip.contains(&id) {
                if depth < self.min_depth {
                    continue;
                }
                self.out.push((id, depth));
            }
            for p in prev {
                if self.seen.insert(p.clone()) {
                    next.push(p);
                }
            }
        }
        self.frontier = next;
    }

    /// The events walked, newest (deepest) first.
    pub fn newest_first(mut self) -> Vec<OwnedEventId> {
        self.out.sort_by_key(|a| std::cmp::Reverse(a.1));
        self.out.into_iter().map(|(e, _)| e).collect()
    }

    /// The events walked, oldest first.
    pub fn oldest_first(mut self) -> Vec<OwnedEventId> {
        self.out.sort_by_key(|a| a.1);
        self.out.into_iter().map(|(e, _)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::room::visibility::HistoryVisibility::*;
    use ruma::EventId;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(u, m)| (u.to_string(), m.to_string())).collect()
    }

    fn view(vis: HistoryVisibility, members: &[(&str, &str)]) -> EventView {
        EventView { visibility: vis, memberships: m(members), new_visibility: None, own_membership: None }
    }

    #[test]
    fn servers_see_by_their_users() {
        // (visibility, the server's users' memberships at the event, expected)
        type Case = (HistoryVisibility, &'static [(&'static str, &'static str)], bool);
        let cases: [Case; 10] = [
            (WorldReadable, &[], true),
            (Shared, &[], true),
            (Shared, &[("@a:o", "leave")], true),
            (Invited, &[("@a:o", "invite")], true),
            (Invited, &[("@a:o", "leave"), ("@b:o", "join")], true),
            (Invited, &[("@a:o", "leave")], false),
            (Invited, &[], false),
            (Joined, &[("@a:o", "invite")], false),
            (Joined, &[("@a:o", "join")], true),
            (Joined, &[("@a:o", "ban")], false),
        ];
        for (vis, members, want) in cases {
            assert_eq!(event_visible(&view(vis, members)), want, "{vis:?} {members:?}");
        }
    }

    #[test]
    fn both_sides_of_a_change_see_it() {
        // joined → world_readable: a server with nobody in the room sees the change itself.
        let mut v = view(Joined, &[]);
        v.new_visibility = Some(WorldReadable);
        assert!(event_visible(&v));
        // The server's own user joining under `joined` sees their join; a stranger does not.
        let mut v = view(Joined, &[("@a:o", "invite")]);
        v.own_membership = Some(("@a:o".into(), "join".into()));
        assert!(event_visible(&v));
        let v = view(Joined, &[("@a:o", "invite")]);
        assert!(!event_visible(&v));
        // Leaving under `joined`: the membership before allowed it.
        let mut v = view(Joined, &[("@a:o", "join")]);
        v.own_membership = Some(("@a:o".into(), "leave".into()));
        assert!(event_visible(&v));
    }

    #[test]
    fn user_server_match_is_exact() {
        assert!(user_on_server("@a:o.example", "o.example"));
        assert!(!user_on_server("@a:xo.example", "o.example"));
        assert!(!user_on_server("@a:o.example:8448", "o.example"));
        assert!(user_on_server("@a:o.example:8448", "o.example:8448"));
        assert!(!user_on_server("not a user", "o.example"));
    }

    fn e(s: &str) -> OwnedEventId {
        EventId::parse(format!("${s}")).unwrap()
    }

    /// A linear room a(1) <- b(2) <- c(3) <- d(4), and a fork x(3) on b.
    fn graph(id: &OwnedEventId) -> Option<(OwnedEventId, u64, Vec<OwnedEventId>)> {
        let (d, p): (u64, Vec<&str>) = match id.as_str() {
            "$a" => (1, vec![]),
            "$b" => (2, vec!["a"]),
            "$c" => (3, vec!["b"]),
            "$x" => (3, vec!["b"]),
            "$d" => (4, vec!["c", "x"]),
            _ => return None,
        };
        Some((id.clone(), d, p.into_iter().map(e).collect()))
    }

    fn run(mut w: Walk) -> Walk {
        for _ in 0..20 {
            let want = w.wanted();
            if want.is_empty() {
                break;
            }
            w.step(want.iter().filter_map(graph).collect());
        }
        w
    }

    #[test]
    fn backfill_includes_start_and_stops_at_limit() {
        let got = run(Walk::backfill(vec![e("d")], 3)).newest_first();
        assert_eq!(got.len(), 3);
        assert_eq!(got.first(), Some(&e("d")));
        assert!(got.contains(&e("c")) && got.contains(&e("x")));
        let all = run(Walk::backfill(vec![e("d")], 100)).newest_first();
        assert_eq!(all, vec![e("d"), e("c"), e("x"), e("b"), e("a")]);
        // Unknown start: nothing.
        assert!(run(Walk::backfill(vec![e("zz")], 10)).newest_first().is_empty());
    }

    #[test]
    fn missing_events_skip_latest_earliest_and_shallow() {
        let got = run(Walk::missing(vec![e("d")], vec![e("b")], 10, 0)).oldest_first();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, vec![e("c"), e("x")]);
        let got = run(Walk::missing(vec![e("d")], vec![], 10, 2)).oldest_first();
        assert_eq!(got.first(), Some(&e("b")));
        assert!(!got.contains(&e("a")) && !got.contains(&e("d")));
        let got = run(Walk::missing(vec![e("d")], vec![], 1, 0)).oldest_first();
        assert_eq!(got.len(), 1);
    }
}
