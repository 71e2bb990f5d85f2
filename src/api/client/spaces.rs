//! Spaces (spec: client-server-api, "Spaces", `space_hierarchy.yaml`) and mutual rooms
//! (spec v1.19, "Mutual Rooms", `mutual_rooms.yaml`).

use crate::core::json::JsonExt;
use ruma::{RoomId, UserId};
use serde_json::{json, Value};

use crate::api::auth::Authed;
use crate::api::params::room_id as parse_room_id;
use crate::core::crypto::random_token;
use crate::core::spaces::{order_children, parse_hierarchy_params, ChildLink, HierarchySession, MutualRoomsToken, Walk};
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::summary::{self, RoomPreview};
use crate::store::{rooms, spaces};

/// # `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`
/// Walks the `m.space.child` links depth-first from the room (a sub-space's rooms come
/// before its later siblings), children in the spec's order, returning each room the user
/// may see (joined or invited; public, knockable or world-readable; restricted to a room the
/// user is in) with its summary and, for spaces, its child events as stripped state. Rooms
/// the user may not see are left out and not walked into; loops are broken (each room once).
/// `next_batch` names the paused walk, kept ten minutes; resuming it with another
/// `suggested_only` or `max_depth` is `M_INVALID_PARAM`. Only local rooms: rooms known only
/// to other servers are skipped until federation exists.
pub async fn hierarchy_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let root = parse_room_id(room_id)?;
    let (params, limit) = parse_hierarchy_params(req.query("suggested_only"), req.query("max_depth"), req.query("limit"))?;
    // 403 covers a room that does not exist too (spec: "The room does not exist").
    let root_preview = summary::preview(ctx, root.as_str(), Some(&me.user_id))
        .await?
        .filter(listed)
        .ok_or_else(|| err!(Forbidden, "You are not allowed to view this room"))?;
    let mut walk = match req.query("from") {
        Some(token) => {
            let session = spaces::get_session(&ctx.kv()?, token).await?.ok_or_else(|| err!(InvalidParam, "Unknown or expired pagination token"))?;
            session.check_resume(me.user_id.as_str(), root.as_str(), &params)?;
            session.walk
        }
        None => Walk::new(root.as_str()),
    };
    let mut root_preview = Some(root_preview);
    let mut out: Vec<Value> = Vec::new();
    // Rooms left out still cost queries: bound the visits of one page too.
    let mut visits = 0;
    while out.len() < limit && visits < limit * 2 {
        let Some((room, depth)) = walk.next_room() else {
            break;
        };
        visits += 1;
        let preview: Option<RoomPreview> = match root_preview.take() {
            Some(p) if room == root.as_str() => Some(p),
            _ => summary::preview(ctx, &room, Some(&me.user_id)).await?,
        };
        let Some(preview) = preview.filter(listed) else {
            continue;
        };
        let mut entry = preview.summary;
        // Only a space-room's children count ("If the room is not a space-room, this should
        // be empty").
        let links = if entry.get("room_type").and_then(Value::as_str) == Some("m.space") {
            child_links(ctx, &room, params.suggested_only).await?
        } else {
            Vec::new()
        };
        // Links whose state key is no room ID are listed but lead nowhere.
        let children: Vec<String> = links.iter().filter(|l| RoomId::parse(&l.state_key).is_ok()).map(|l| l.state_key.clone()).collect();
        walk.push_children(depth, params.depth_limit(), &children);
        entry.set("children_state", Value::Array(links.iter().map(ChildLink::stripped).collect()));
        out.push(entry);
    }
    let mut body = json!({ "rooms": out });
    if walk.has_more() {
        let token = random_token("hier");
        let session = HierarchySession { user_id: me.user_id.to_string(), root: root.to_string(), params, walk };
        spaces::put_session(&ctx.kv()?, &token, &session).await?;
        body.set("next_batch", json!(token));
    }
    Ok(Response::ok(body))
}

/// Whether the hierarchy shows the room to the user: visible (see [`RoomPreview`]) and not
/// banned — a ban takes away the "permission to join" the spec's list is about, and is one of
/// its reasons for a 403.
fn listed(p: &RoomPreview) -> bool {
    p.visible && p.membership.as_deref() != Some("ban")
}

/// The space's valid `m.space.child` events, in the spec's order.
async fn child_links(ctx: &Ctx, room_id: &str, suggested_only: bool) -> Result<Vec<ChildLink>> {
    let state = rooms::current_state_of_type(&ctx.db, room_id, "m.space.child").await?;
    let pdus = rooms::get_pdus(&ctx.db, &state.values().cloned().collect::<Vec<_>>()).await?;
    let links: Vec<ChildLink> = pdus
        .into_values()
        .filter_map(|p| {
            Some(ChildLink {
                content: p.content_value(),
                state_key: p.state_key?,
                sender: p.sender.to_string(),
                origin_server_ts: u64::from(p.origin_server_ts.0),
            })
        })
        .collect();
    Ok(order_children(links, suggested_only))
}

/// Rooms per `GET /mutual_rooms` page; a `limit` query parameter (a Stratus extension,
/// clients do not send it) may ask for fewer.
const MUTUAL_ROOMS_PAGE: usize = 100;

/// # `GET /_matrix/client/v1/mutual_rooms`
/// The rooms the caller and `user_id` are both joined to, in room-ID order, with the total
/// `count`. `user_id` missing is `M_MISSING_PARAM`; malformed, non-compliant (a historical
/// user ID) or the caller's own ID is `M_INVALID_PARAM`, as is a `from` token that is not a
/// `next_batch` for this `user_id`. An unknown user shares no rooms: an empty list.
pub async fn mutual_rooms_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let raw = req.query("user_id").ok_or_else(|| err!(MissingParam, "user_id is required"))?;
    if req.query.iter().filter(|(k, _)| k == "user_id").count() > 1 {
        return Err(err!(InvalidParam, "Duplicate user_id query parameter"));
    }
    let other = UserId::parse(raw).map_err(|_| err!(InvalidParam, "The user ID provided was invalid"))?;
    if other.validate_strict().is_err() {
        return Err(err!(InvalidParam, "The user ID provided is not a compliant user ID"));
    }
    if other == me.user_id {
        return Err(err!(InvalidParam, "You cannot request a list of mutual rooms with yourself"));
    }
    let after = match req.query("from") {
        Some(t) => Some(MutualRoomsToken::decode(t, other.as_str())?.after),
        None => None,
    };
    let page = match req.query("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n > 0 => n.min(MUTUAL_ROOMS_PAGE),
            _ => return Err(err!(InvalidParam, "limit must be a positive integer")),
        },
        None => MUTUAL_ROOMS_PAGE,
    };
    let all = rooms::mutual_joined_rooms(&ctx.db, me.user_id.as_str(), other.as_str()).await?;
    let count = all.len();
    let mut rest: Vec<String> = all.into_iter().filter(|r| after.as_ref().is_none_or(|a| r > a)).take(page + 1).collect();
    let more = rest.len() > page;
    rest.truncate(page);
    let mut body = json!({ "joined": rest, "count": count });
    if let (true, Some(last)) = (more, rest.last()) {
        body.set("next_batch", json!(MutualRoomsToken { user_id: other.to_string(), after: last.clone() }.encode()));
    }
    Ok(Response::ok(body))
}
