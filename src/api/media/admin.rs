//! Media moderation for server admins (Synapse's admin API shape).

use serde_json::json;

use crate::api::auth::authenticate;
use crate::core::media::valid_media_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::store::{accounts, media};

/// # `POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}`
/// Marks local media as quarantined: it is no longer served (download and thumbnail answer
/// 404 `M_NOT_FOUND`). Admins only.
pub async fn quarantine_route(ctx: &Ctx, req: &Request, server: &str, media_id: &str) -> Result<Response> {
    let who = authenticate(ctx, req).await?;
    let is_admin = accounts::get_user(&ctx.db, who.user_id.as_str()).await?.is_some_and(|u| u.is_admin != 0);
    if !is_admin {
        return Err(err!(Forbidden, "You are not a server admin"));
    }
    if server != ctx.server_name() || !valid_media_id(media_id) || !media::set_quarantined(&ctx.db, media_id, true).await? {
        return Err(err!(NotFound, "Media not found"));
    }
    Ok(Response::ok(json!({})))
}
