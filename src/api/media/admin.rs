//! Media moderation for server admins (Synapse's admin API shape).

use serde_json::json;

use crate::api::auth::Authed;
use crate::core::media::valid_media_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::{media, remote_media};

/// # `POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}`
/// Marks media as quarantined: it is no longer served (download and thumbnail answer 404
/// `M_NOT_FOUND`, to clients and, for local media, to other servers). Remote media must be
/// cached here. Admins only (the route is `Admin`: the router checks).
pub async fn quarantine_route(ctx: &Ctx, _req: &Request, _admin: &Authed, server: &str, media_id: &str) -> Result<Response> {
    let found = if !valid_media_id(media_id) {
        false
    } else if server == ctx.server_name() {
        media::set_quarantined(&ctx.db, media_id, true).await?
    } else {
        remote_media::set_quarantined(&ctx.db, server, media_id, true).await?
    };
    if !found {
        return Err(err!(NotFound, "Media not found"));
    }
    Ok(Response::ok(json!({})))
}
