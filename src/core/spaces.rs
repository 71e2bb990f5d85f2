//! Spaces (spec: client-server-api, "Spaces", `GET /hierarchy`): which `m.space.child`
//! links count, their order, the parameters, and the depth-first walk that pages through
//! the tree. Also the paging token of `GET /mutual_rooms` (spec v1.19).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ruma::room_version_rules::AuthorizationRules;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::err;
use crate::error::Result;

/// Rooms per page when the client gives no `limit`, and the most we return ("servers should
/// apply a default value, and impose a maximum value"). Each room costs a handful of D1
/// queries, so the page stays small.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 50;
/// The deepest the walk goes, whatever `max_depth` says.
pub const MAX_DEPTH: u32 = 50;

/// A child link is valid when its `via` is a non-empty list of strings (a redacted or
/// emptied `m.space.child` removes the child).
pub fn valid_via(content: &Value) -> bool {
    match content.get("via").and_then(Value::as_array) {
        Some(v) => !v.is_empty() && v.iter().all(Value::is_string),
        None => false,
    }
}

/// The `order` of a child, when valid: a string of at most 50 characters in `\x20`–`\x7E`.
pub fn valid_order(content: &Value) -> Option<&str> {
    let o = content.get("order")?.as_str()?;
    (o.len() <= 50 && o.chars().all(|c| (' '..='~').contains(&c))).then_some(o)
}

/// Whether the child is marked `suggested: true`.
pub fn is_suggested(content: &Value) -> bool {
    content.get("suggested").and_then(Value::as_bool) == Some(true)
}

/// An `m.space.child` event of a space.
#[derive(Clone, Debug)]
pub struct ChildLink {
    /// The state key: the child room's ID.
    pub state_key: String,
    pub content: Value,
    pub sender: String,
    pub origin_server_ts: u64,
}

impl ChildLink {
    /// The event as `children_state` lists it: stripped state plus `origin_server_ts`.
    pub fn stripped(&self) -> Value {
        serde_json::json!({
            "type": "m.space.child",
            "state_key": self.state_key,
            "content": self.content,
            "sender": self.sender,
            "origin_server_ts": self.origin_server_ts,
        })
    }
}

/// Keeps the valid links (only suggested ones if asked) and orders them as "Ordering of
/// children within a space" says: valid `order` first, by code point; then by the event's
/// timestamp; ties by room ID.
pub fn order_children(mut links: Vec<ChildLink>, suggested_only: bool) -> Vec<ChildLink> {
    links.retain(|l| valid_via(&l.content) && (!suggested_only || is_suggested(&l.content)));
    links.sort_by(|a, b| {
        let (oa, ob) = (valid_order(&a.content), valid_order(&b.content));
        oa.is_none()
            .cmp(&ob.is_none())
            .then_with(|| oa.cmp(&ob))
            .then_with(|| a.origin_server_ts.cmp(&b.origin_server_ts))
            .then_with(|| a.state_key.cmp(&b.state_key))
    });
    links
}

/// Whether anyone may preview a room whatever their membership (spec: `GET /hierarchy`,
/// which rooms are returned): join rule `public`, `knock` or `knock_restricted` where the room
/// version has them, or `world_readable` history. `rules` is `None` for an unknown version.
pub fn open_to_preview(join_rule: &str, world_readable: bool, rules: Option<&AuthorizationRules>) -> bool {
    world_readable
        || join_rule == "public"
        || rules.is_some_and(|r| (join_rule == "knock" && r.knocking) || (join_rule == "knock_restricted" && r.knock_restricted_join_rule))
}

/// Whether the join rule admits members of the rooms it lists (`restricted`, or
/// `knock_restricted`), in a room version that has it.
pub fn restricted_by_rooms(join_rule: &str, rules: Option<&AuthorizationRules>) -> bool {
    rules.is_some_and(|r| (join_rule == "restricted" && r.restricted_join_rule) || (join_rule == "knock_restricted" && r.knock_restricted_join_rule))
}

/// The query parameters of `GET /hierarchy`, as given (the pagination token pins them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HierarchyParams {
    pub suggested_only: bool,
    pub max_depth: Option<u32>,
}

impl HierarchyParams {
    /// The depth below which children are still walked (the root is depth 0).
    pub fn depth_limit(&self) -> u32 {
        self.max_depth.unwrap_or(MAX_DEPTH).min(MAX_DEPTH)
    }
}

/// Parses `suggested_only`, `max_depth` and `limit`: `M_INVALID_PARAM` for anything that is
/// not a boolean, a non-negative integer, or a positive integer respectively.
pub fn parse_hierarchy_params(suggested_only: Option<&str>, max_depth: Option<&str>, limit: Option<&str>) -> Result<(HierarchyParams, usize)> {
    let suggested_only = match suggested_only {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(err!(InvalidParam, "suggested_only must be true or false")),
    };
    let max_depth = match max_depth {
        None => None,
        Some(d) => Some(d.parse::<u32>().map_err(|_| err!(InvalidParam, "max_depth must be a non-negative integer"))?),
    };
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            _ => return Err(err!(InvalidParam, "limit must be a positive integer")),
        },
    };
    Ok((HierarchyParams { suggested_only, max_depth }, limit))
}

/// The state of a depth-first walk: the rooms still to visit (a stack, next on top) and the
/// rooms already visited, which breaks loops and keeps a room from appearing twice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Walk {
    pub stack: Vec<(String, u32)>,
    pub seen: Vec<String>,
}

impl Walk {
    pub fn new(root: &str) -> Walk {
        Walk { stack: vec![(root.to_owned(), 0)], seen: Vec::new() }
    }

    /// The next room not yet visited, with its depth; it counts as visited from now on.
    pub fn next_room(&mut self) -> Option<(String, u32)> {
        while let Some((room, depth)) = self.stack.pop() {
            if !self.seen.contains(&room) {
                self.seen.push(room.clone());
                return Some((room, depth));
            }
        }
        None
    }

    /// Queues the children of a room at `depth` (already ordered), so that the first child is
    /// visited next and its subtree before its siblings: a space's sub-spaces are walked
    /// before the rooms that follow them. Nothing below the depth limit is queued.
    pub fn push_children(&mut self, depth: u32, limit: u32, children: &[String]) {
        if depth >= limit {
            return;
        }
        for c in children.iter().rev() {
            if !self.seen.contains(c) {
                self.stack.push((c.clone(), depth + 1));
            }
        }
    }

    /// Whether rooms may remain (some on the stack may turn out visited already).
    pub fn has_more(&self) -> bool {
        self.stack.iter().any(|(r, _)| !self.seen.contains(r))
    }
}

/// A paused walk, stored server-side under the `next_batch` token: whose it is, of which
/// tree, with which parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HierarchySession {
    pub user_id: String,
    pub root: String,
    pub params: HierarchyParams,
    pub walk: Walk,
}

impl HierarchySession {
    /// The request resuming it must come from the same user, for the same root, with the
    /// same `suggested_only` and `max_depth` (`M_INVALID_PARAM` otherwise).
    pub fn check_resume(&self, user_id: &str, root: &str, params: &HierarchyParams) -> Result<()> {
        if self.user_id != user_id || self.root != root {
            return Err(err!(InvalidParam, "Unknown pagination token"));
        }
        if &self.params != params {
            return Err(err!(InvalidParam, "suggested_only and max_depth cannot change on paginated requests"));
        }
        Ok(())
    }
}

/// The `next_batch` of `GET /mutual_rooms`: the other user and the last room ID returned
/// (rooms are listed in room-ID order), base64url JSON. Opaque to clients.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutualRoomsToken {
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "r")]
    pub after: String,
}

impl MutualRoomsToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The token if it is one of ours for `user_id`; `M_INVALID_PARAM` otherwise.
    pub fn decode(token: &str, user_id: &str) -> Result<MutualRoomsToken> {
        let bad = || err!(InvalidParam, "Invalid or expired 'from' token");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let t: MutualRoomsToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if t.user_id != user_id {
            return Err(bad());
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(id: &str, ts: u64, content: Value) -> ChildLink {
        ChildLink { state_key: id.into(), content, sender: "@s:x".into(), origin_server_ts: ts }
    }

    #[test]
    fn spec_ordering_example() {
        // The example of "Ordering of children within a space".
        let v = json!(["example.org"]);
        let links = vec![
            link("!b:example.org", 1640341000000, json!({"order": " ", "via": v})),
            link("!a:example.org", 1640141000000, json!({"order": "aaaa", "via": v})),
            link("!c:example.org", 1640841000000, json!({"order": "first", "via": v})),
            link("!e:example.org", 1640641000000, json!({"via": v})),
            link("!d:example.org", 1640741000000, json!({"via": v})),
        ];
        let ids: Vec<String> = order_children(links, false).into_iter().map(|l| l.state_key).collect();
        assert_eq!(ids, ["!b:example.org", "!a:example.org", "!c:example.org", "!e:example.org", "!d:example.org"]);
    }

    #[test]
    fn ordering_ties_and_invalid_links() {
        let v = json!(["x"]);
        let links = vec![
            link("!z:x", 5, json!({"order": "same", "via": v})),
            link("!y:x", 5, json!({"order": "same", "via": v})),
            link("!w:x", 1, json!({"order": "same", "via": v})),
            // An order with a character outside \x20-\x7E, or too long, counts as none.
            link("!bad:x", 0, json!({"order": "\u{7f}", "via": v})),
            link("!long:x", 0, json!({"order": "a".repeat(51), "via": v})),
            link("!novia:x", 0, json!({})),
            link("!emptyvia:x", 0, json!({"via": []})),
            link("!numvia:x", 0, json!({"via": [1]})),
        ];
        let ids: Vec<String> = order_children(links, false).into_iter().map(|l| l.state_key).collect();
        assert_eq!(ids, ["!w:x", "!y:x", "!z:x", "!bad:x", "!long:x"]);
    }

    #[test]
    fn suggested_only() {
        let v = json!(["x"]);
        let links = vec![
            link("!a:x", 1, json!({"via": v, "suggested": true})),
            link("!b:x", 2, json!({"via": v, "suggested": "true"})),
            link("!c:x", 3, json!({"via": v})),
        ];
        let ids: Vec<String> = order_children(links, true).into_iter().map(|l| l.state_key).collect();
        assert_eq!(ids, ["!a:x"]);
    }

    #[test]
    fn preview_rules_follow_the_room_version() {
        let v6 = crate::core::room::version_rules("6").unwrap().1.authorization;
        let v7 = crate::core::room::version_rules("7").unwrap().1.authorization;
        let v10 = crate::core::room::version_rules("10").unwrap().1.authorization;
        assert!(open_to_preview("public", false, None));
        assert!(open_to_preview("invite", true, None));
        assert!(!open_to_preview("invite", false, Some(&v10)));
        assert!(!open_to_preview("knock", false, Some(&v6)));
        assert!(open_to_preview("knock", false, Some(&v7)));
        assert!(!open_to_preview("knock_restricted", false, Some(&v7)));
        assert!(open_to_preview("knock_restricted", false, Some(&v10)));
        assert!(!restricted_by_rooms("restricted", Some(&v7)));
        assert!(restricted_by_rooms("restricted", Some(&crate::core::room::version_rules("8").unwrap().1.authorization)));
        assert!(restricted_by_rooms("knock_restricted", Some(&v10)));
        assert!(!restricted_by_rooms("public", Some(&v10)));
    }

    #[test]
    fn params() {
        let (p, l) = parse_hierarchy_params(None, None, None).unwrap();
        assert_eq!((p.suggested_only, p.max_depth, l, p.depth_limit()), (false, None, DEFAULT_LIMIT, MAX_DEPTH));
        let (p, l) = parse_hierarchy_params(Some("true"), Some("0"), Some("500")).unwrap();
        assert_eq!((p.suggested_only, p.max_depth, l, p.depth_limit()), (true, Some(0), MAX_LIMIT, 0));
        for (s, d, l) in [
            (Some("yes"), None, None),
            (None, Some("-1"), None),
            (None, Some("x"), None),
            (None, None, Some("0")),
            (None, None, Some("-3")),
            (None, None, Some("ten")),
        ] {
            assert_eq!(parse_hierarchy_params(s, d, l).unwrap_err().kind().errcode(), "M_INVALID_PARAM");
        }
    }

    #[test]
    fn walk_is_depth_first_and_breaks_loops() {
        // root -> [s1, r2]; s1 -> [r1, root]; r1 and r2 leaves.
        let mut w = Walk::new("root");
        let mut order = Vec::new();
        while let Some((room, depth)) = w.next_room() {
            order.push((room.clone(), depth));
            let children: Vec<String> = match room.as_str() {
                "root" => vec!["s1".into(), "r2".into()],
                "s1" => vec!["r1".into(), "root".into()],
                _ => vec![],
            };
            w.push_children(depth, MAX_DEPTH, &children);
        }
        let names: Vec<(&str, u32)> = order.iter().map(|(r, d)| (r.as_str(), *d)).collect();
        assert_eq!(names, [("root", 0), ("s1", 1), ("r1", 2), ("r2", 1)]);
        assert!(!w.has_more());
    }

    #[test]
    fn walk_respects_depth_limit() {
        let mut w = Walk::new("root");
        let (r, d) = w.next_room().unwrap();
        assert_eq!((r.as_str(), d), ("root", 0));
        w.push_children(d, 0, &["a".into()]);
        assert!(w.next_room().is_none());
        let mut w = Walk::new("root");
        let (_, d) = w.next_room().unwrap();
        w.push_children(d, 1, &["a".into()]);
        let (a, d) = w.next_room().unwrap();
        assert_eq!((a.as_str(), d), ("a", 1));
        w.push_children(d, 1, &["b".into()]);
        assert!(w.next_room().is_none());
    }

    #[test]
    fn session_pins_parameters() {
        let params = HierarchyParams { suggested_only: false, max_depth: Some(2) };
        let s = HierarchySession { user_id: "@a:x".into(), root: "!r:x".into(), params: params.clone(), walk: Walk::new("!r:x") };
        assert!(s.check_resume("@a:x", "!r:x", &params).is_ok());
        assert!(s.check_resume("@b:x", "!r:x", &params).is_err());
        assert!(s.check_resume("@a:x", "!q:x", &params).is_err());
        let other = HierarchyParams { suggested_only: true, max_depth: Some(2) };
        assert_eq!(s.check_resume("@a:x", "!r:x", &other).unwrap_err().kind().errcode(), "M_INVALID_PARAM");
        let other = HierarchyParams { suggested_only: false, max_depth: None };
        assert!(s.check_resume("@a:x", "!r:x", &other).is_err());
    }

    #[test]
    fn mutual_rooms_token() {
        let t = MutualRoomsToken { user_id: "@b:x".into(), after: "!r:x".into() };
        let s = t.encode();
        assert_eq!(MutualRoomsToken::decode(&s, "@b:x").unwrap(), t);
        assert!(MutualRoomsToken::decode(&s, "@c:x").is_err());
        assert!(MutualRoomsToken::decode("not a token!", "@b:x").is_err());
        assert!(MutualRoomsToken::decode("", "@b:x").is_err());
    }
}
