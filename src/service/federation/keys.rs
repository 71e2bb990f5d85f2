//! Other servers' signing keys (spec: server-server-api, "Retrieving server keys").
//! Placeholder until the transport work lands: nothing from another server verifies yet.

use ruma::canonical_json::CanonicalJsonObject;
use ruma::room_version_rules::RoomVersionRules;
use ruma::signatures::Verified;

use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;

/// Verifies the signatures a PDU needs for its room version (and its content hash).
pub async fn verify_event(_ctx: &Ctx, _rules: &RoomVersionRules, _pdu: &CanonicalJsonObject) -> Result<Verified> {
    Err(err!(Unauthorized, "Remote signing keys are not available yet"))
}
