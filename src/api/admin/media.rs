//! Media administration (Synapse: docs/admin_api/media_admin_api.md). Quarantining one media
//! item is `api::media::admin`.

use serde_json::{json, Value};

use super::{backwards, local_user_param, page};
use crate::api::auth::Authed;
use crate::core::admin::next_token;
use crate::core::media::valid_media_id;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::{Request, Response};
use crate::service::admin::{audit, media as service};
use crate::store::admin as store;

/// # `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`
/// Local media only: the row, and the content and its thumbnails once no media uses them.
pub async fn delete_media_route(ctx: &Ctx, _req: &Request, me: &Authed, server: &str, media_id: &str) -> Result<Response> {
    audit(me.user_id.as_str(), "delete_media", &format!("mxc://{server}/{media_id}"));
    if server != ctx.server_name() {
        return Err(err!(InvalidParam, "Can only delete local media"));
    }
    if !valid_media_id(media_id) || !service::delete_local(ctx, media_id).await? {
        return Err(err!(NotFound, "Unknown media"));
    }
    Ok(Response::ok(json!({ "deleted_media": [media_id], "total": 1 })))
}

/// The page of a user's media a request names (`from`, `limit`; newest first, `dir=b` oldest
/// first, as Synapse).
async fn user_page(ctx: &Ctx, req: &Request, user: &str) -> Result<(u64, Vec<store::MediaRow>, u64)> {
    let (from, limit) = page(req, 100)?;
    let (rows, total) = store::user_media(&ctx.db, user, backwards(req)?, from, limit).await?;
    Ok((from, rows, total))
}

/// # `GET /_synapse/admin/v1/users/{userId}/media`
pub async fn user_media_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    audit(me.user_id.as_str(), "list_user_media", user.as_str());
    let (from, rows, total) = user_page(ctx, req, user.as_str()).await?;
    let media: Vec<Value> = rows
        .iter()
        .map(|m| {
            json!({
                "media_id": m.media_id,
                "media_type": m.content_type,
                "media_length": m.size.map(|s| s as u64),
                "upload_name": m.filename,
                "created_ts": m.created_ts as u64,
                "last_access_ts": null,
                "quarantined_by": if m.quarantined != 0 { json!("admin") } else { Value::Null },
                "safe_from_quarantine": false,
            })
        })
        .collect();
    let mut body = json!({ "media": media, "total": total });
    if let (Some(t), Some(o)) = (next_token(from, rows.len(), total), body.as_object_mut()) {
        o.insert("next_token".into(), json!(t.parse::<u64>().unwrap_or(0)));
    }
    Ok(Response::ok(body))
}

/// # `DELETE /_synapse/admin/v1/users/{userId}/media`
/// Deletes the page of the user's media that `from`/`limit` name (default the first 100).
pub async fn delete_user_media_route(ctx: &Ctx, req: &Request, me: &Authed, user_id: &str) -> Result<Response> {
    let user = local_user_param(ctx, user_id)?;
    audit(me.user_id.as_str(), "delete_user_media", user.as_str());
    let (_, rows, _) = user_page(ctx, req, user.as_str()).await?;
    let mut deleted = Vec::new();
    for m in rows {
        if service::delete_local(ctx, &m.media_id).await? {
            deleted.push(m.media_id);
        }
    }
    Ok(Response::ok(json!({ "total": deleted.len(), "deleted_media": deleted })))
}
