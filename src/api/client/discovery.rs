//! Server discovery and capabilities.

use serde_json::json;

use crate::api::auth::Authed;
use crate::core::room::SUPPORTED_VERSIONS;
use crate::ctx::Ctx;
use crate::error::Result;
use crate::http::{Request, Response};

/// # `GET /_matrix/client/versions`
/// Spec: client-server-api, "GET /_matrix/client/versions". A version is listed when what
/// it requires of a server is implemented: v1.13 room reports, v1.14 user reports, v1.15
/// room summaries and the OAuth 2.0 API, v1.16 custom profile fields and `use_state_after`,
/// v1.17 the `m.oauth` UIA stage, v1.18 redactions through `/send` and invite blocking,
/// v1.19 `/mutual_rooms`. (What a version makes optional, such as the admin lock and
/// suspend endpoints behind `m.account_moderation`, is not offered.) Unstable:
/// `org.matrix.simplified_msc3575` is simplified sliding sync (MSC4186).
pub async fn versions_route(_ctx: &Ctx, _req: &Request) -> Result<Response> {
    Ok(Response::ok(json!({
        "versions": [
            "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6",
            "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15",
            "v1.16", "v1.17", "v1.18", "v1.19"
        ],
        "unstable_features": {
            "org.matrix.msc2432": true,
            "org.matrix.msc3882": true,
            "org.matrix.msc3814": true,
            "org.matrix.simplified_msc3575": true
        }
    })))
}

/// # `GET /.well-known/matrix/client`
/// Spec: client-server-api, "Well-known URIs".
pub async fn well_known_client_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    Ok(Response::ok(json!({ "m.homeserver": { "base_url": ctx.config.public_baseurl } })))
}

/// # `GET /.well-known/matrix/server`
/// Spec: server-server-api, "Server discovery". The Worker serves federation on the same
/// HTTPS origin as the client API, so a server name without a port delegates to port 443.
pub async fn well_known_server_route(ctx: &Ctx, _req: &Request) -> Result<Response> {
    let name = &ctx.config.server_name;
    let target = if name.port().is_some() { name.to_string() } else { format!("{name}:443") };
    Ok(Response::ok(json!({ "m.server": target })))
}

/// # `GET /_matrix/client/v3/capabilities`
/// Spec: client-server-api, "Capabilities negotiation".
pub async fn capabilities_route(ctx: &Ctx, _req: &Request, _me: &Authed) -> Result<Response> {
    let available: serde_json::Map<String, serde_json::Value> = SUPPORTED_VERSIONS.iter().map(|(v, s)| (v.to_string(), json!(s))).collect();
    Ok(Response::ok(json!({
        "capabilities": {
            "m.change_password": { "enabled": true },
            "m.room_versions": { "default": ctx.config.default_room_version, "available": available },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false },
            "m.get_login_token": { "enabled": true },
            // Spec v1.16 (MSC4133): every profile field may be changed by its user.
            "m.profile_fields": { "enabled": true }
        }
    })))
}
