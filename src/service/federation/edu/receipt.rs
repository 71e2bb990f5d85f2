//! `m.receipt` from other servers (spec: server-server-api). Not acted on yet: this round of
//! Federation II implements it.

use ruma::ServerName;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::Result;

/// Applies one `m.receipt` EDU from `origin`.
pub async fn receive(_ctx: &Ctx, _origin: &ServerName, _content: &Value) -> Result<()> {
    Ok(())
}
