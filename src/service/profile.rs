//! A local user's public profile (spec: client-server-api "Profiles"; server-server-api
//! "Query profile"): display name, avatar and every custom field, as the client API and
//! other servers read it.

use serde_json::{json, Map, Value};

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::store::accounts;
use crate::store::profile as fields;

/// The profile of a local user; `404 M_NOT_FOUND` for an unknown or deactivated one.
pub async fn public_profile(ctx: &Ctx, user_id: &str) -> Result<Map<String, Value>> {
    let u = match accounts::get_user(&ctx.db, user_id).await? {
        Some(u) if u.deactivated == 0 => u,
        _ => return Err(err!(NotFound, "Profile not found")),
    };
    let mut body = Map::new();
    if let Some(d) = u.displayname {
        body.insert("displayname".into(), json!(d));
    }
    if let Some(a) = u.avatar_url {
        body.insert("avatar_url".into(), json!(a));
    }
    for f in fields::fields(&ctx.db, &u.user_id).await? {
        body.insert(f.key, serde_json::from_str(&f.value)?);
    }
    Ok(body)
}
