//! Room upgrades (spec: client-server-api, "Room Upgrades"). The work is
//! `service::rooms::upgrade_room`.

use serde::Deserialize;
use serde_json::json;

use crate::api::auth::Authed;
use crate::api::params;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::rooms::upgrade_room;

#[derive(Deserialize)]
struct UpgradeBody {
    new_version: String,
    #[serde(default)]
    additional_creators: Vec<String>,
}

/// # `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
pub async fn upgrade_route(ctx: &Ctx, req: &Request, me: &Authed, room_id: &str) -> Result<Response> {
    let old = params::room_id(room_id)?;
    let body: UpgradeBody = req.json()?;
    for c in &body.additional_creators {
        crate::core::ids::parse_client_user_id(c)?;
    }
    let new_room = upgrade_room(ctx, &me.user_id, &old, &body.new_version, &body.additional_creators).await?;
    Ok(Response::ok(json!({ "replacement_room": new_room })))
}
