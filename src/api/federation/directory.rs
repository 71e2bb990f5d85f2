//! The published room directory for other servers (spec: server-server-api, "Published
//! Room Directory"): the same page as the client API's (`service::directory`).

use ruma::ServerName;
use serde::Deserialize;

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::directory::public_rooms_page;

/// # `GET /_matrix/federation/v1/publicRooms`
pub async fn public_rooms_get_route(ctx: &Ctx, req: &Request, _origin: &ServerName) -> Result<Response> {
    let limit = match req.query("limit") {
        Some(l) => Some(l.parse::<u32>().map_err(|_| err!(InvalidParam, "limit must be a number"))?),
        None => None,
    };
    Ok(Response::ok(public_rooms_page(ctx, limit, req.query("since"), None, None).await?))
}

#[derive(Deserialize, Default)]
struct Filter {
    generic_search_term: Option<String>,
    room_types: Option<Vec<Option<String>>>,
}

#[derive(Deserialize)]
struct Body {
    limit: Option<u32>,
    since: Option<String>,
    filter: Option<Filter>,
}

/// # `POST /_matrix/federation/v1/publicRooms`
pub async fn public_rooms_post_route(ctx: &Ctx, req: &Request, _origin: &ServerName) -> Result<Response> {
    let body: Body = req.json_or_empty()?;
    let f = body.filter.unwrap_or_default();
    Ok(Response::ok(public_rooms_page(ctx, body.limit, body.since.as_deref(), f.generic_search_term.as_deref(), f.room_types.as_deref()).await?))
}
