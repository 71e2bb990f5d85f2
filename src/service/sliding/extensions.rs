//! Sliding sync extensions: each reuses the `/sync` v3 stream builder of the same data.

use std::collections::BTreeMap;

use crate::api::auth::Authed;
use crate::core::sliding::extensions::{ExtensionsRequest, ExtensionsResponse};
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;

/// The rooms of this response, which the scoped extensions (`lists`/`rooms`) choose from.
pub struct Scope<'a> {
    /// List name → room IDs in that list's window in this response.
    pub lists: &'a BTreeMap<String, Vec<String>>,
    /// Subscribed room IDs.
    pub subscriptions: &'a [String],
}

/// The extensions of one response. `since`: the positions the connection's previous
/// response covered (None on its first request); `now`: this response's positions.
pub async fn compute(
    _ctx: &Ctx,
    _me: &Authed,
    _req: &ExtensionsRequest,
    _since: Option<&SyncToken>,
    _now: &SyncToken,
    _scope: &Scope<'_>,
) -> Result<ExtensionsResponse> {
    Ok(ExtensionsResponse::default())
}
