//! Server notices (Synapse: docs/admin_api/server_notices.md).

use serde::Deserialize;
use serde_json::{json, Value};

use super::local_user_param;
use crate::api::auth::Authed;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::{audit, notices};

#[derive(Deserialize)]
struct Body {
    user_id: String,
    content: Value,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// # `POST /_synapse/admin/v1/send_server_notice`
/// Sends `content` (an `m.room.message`) to a local user in their server-notices room, which
/// is created on demand with the system user `@_server:<server>` as sender.
pub async fn send_notice_route(ctx: &Ctx, req: &Request, me: &Authed) -> Result<Response> {
    let body: Body = req.json()?;
    let user = local_user_param(ctx, &body.user_id)?;
    if body.kind.as_deref().is_some_and(|k| k != "m.room.message") {
        return Err(err!(InvalidParam, "Only m.room.message notices are supported"));
    }
    if !body.content.is_object() {
        return Err(err!(BadJson, "content must be an object"));
    }
    audit(me.user_id.as_str(), "send_server_notice", user.as_str());
    let u = crate::store::admin::get_user(&ctx.db, user.as_str()).await?;
    if u.is_none_or(|u| u.deactivated != 0) {
        return Err(err!(NotFound, "User not found"));
    }
    let event_id = notices::send(ctx, &user, body.content).await?;
    Ok(Response::ok(json!({ "event_id": event_id })))
}
