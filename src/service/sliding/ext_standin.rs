//! Stand-in for `service::sliding::extensions` (written on another branch) until it is
//! merged: the agreed interface, answering nothing.

use crate::api::auth::Authed;
use crate::core::sliding::ext_standin::{ExtensionsRequest, ExtensionsResponse};
use crate::core::sync_token::SyncToken;
use crate::ctx::Ctx;
use crate::error::Result;

pub struct Scope<'a> {
    pub lists: &'a std::collections::BTreeMap<String, Vec<String>>,
    pub subscriptions: &'a [String],
}

pub async fn compute(
    _ctx: &Ctx,
    _me: &Authed,
    _req: &ExtensionsRequest,
    _since: Option<&SyncToken>,
    _now: &SyncToken,
    scope: &Scope<'_>,
) -> Result<ExtensionsResponse> {
    let _ = (scope.lists, scope.subscriptions);
    Ok(ExtensionsResponse::default())
}
