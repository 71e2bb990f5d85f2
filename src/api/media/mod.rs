//! The content repository (spec v1.19: client-server-api, "Content repository"; MSC3916
//! authenticated media, in the spec since v1.11). Storage is in [`crate::store::media`]; the
//! pure rules (types, dispositions, file names, thumbnail sizes, preview URL checks) are in
//! [`crate::core::media`], [`crate::core::thumbnail`] and [`crate::core::preview`].

pub mod admin;
pub mod download;
pub mod preview;
pub mod thumbnail;
pub mod upload;

use std::time::Duration;

use crate::core::config::LegacyMedia;
use crate::core::media::valid_media_id;
use crate::core::time::now_ms;
use crate::ctx::Ctx;
use crate::err;
use crate::error::Result;
use crate::http::Request;
use crate::store::media::{self, Media};

/// Longest we wait for created-but-not-uploaded media (`timeout_ms`, default 20 s).
const MAX_WAIT_MS: u64 = 20_000;

/// Uploaded, unquarantined local media with its content hash.
pub struct Served {
    pub media: Media,
    pub sha256: String,
}

/// Which endpoint asks: the authenticated ones, or the deprecated unauthenticated ones
/// (which only serve what [`legacy_allowed`] allows).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Authenticated,
    Legacy,
}

/// Finds media to serve. Remote media (another server name) is not available until
/// federation exists: 404. Quarantined media is never served (404). Media that was created
/// but not uploaded is waited for up to `timeout_ms`, then 504 `M_NOT_YET_UPLOADED`.
/// For [`Access::Legacy`] the freeze is checked first, on the row alone: media the legacy
/// endpoints may not serve is 404 at once, like unknown media, whether or not it has been
/// uploaded (no wait, nothing that tells it exists).
pub async fn load(ctx: &Ctx, req: &Request, server: &str, media_id: &str, access: Access) -> Result<Served> {
    if server != ctx.server_name() || !valid_media_id(media_id) {
        return Err(err!(NotFound, "Media not found"));
    }
    let timeout = req.query("timeout_ms").and_then(|t| t.parse::<u64>().ok()).unwrap_or(MAX_WAIT_MS).min(MAX_WAIT_MS);
    let start = now_ms();
    loop {
        let Some(m) = media::get(&ctx.db, media_id).await? else {
            return Err(err!(NotFound, "Media not found"));
        };
        if m.quarantined != 0 {
            return Err(err!(NotFound, "Media not found"));
        }
        if access == Access::Legacy {
            legacy_allowed(ctx, &m)?;
        }
        if let Some(sha256) = m.sha256.clone() {
            return Ok(Served { media: m, sha256 });
        }
        if m.unused_expires_ts.is_some_and(|t| (t as u64) <= now_ms()) {
            return Err(err!(NotFound, "Media not found"));
        }
        if now_ms().saturating_sub(start) >= timeout {
            return Err(err!(NotYetUploaded, "Content has not yet been uploaded"));
        }
        worker::Delay::from(Duration::from_millis(500)).await;
    }
}

/// The deprecated unauthenticated endpoints: with `LEGACY_MEDIA=freeze` (the default) only
/// media created before `LEGACY_MEDIA_FREEZE_TS` is served there, everything else is
/// 404 `M_NOT_FOUND` (spec: "Client behaviour", the v1.11 freeze).
pub fn legacy_allowed(ctx: &Ctx, m: &Media) -> Result<()> {
    match ctx.config.media.legacy {
        LegacyMedia::Serve => Ok(()),
        LegacyMedia::Freeze { freeze_ts } if (m.created_ts as u64) < freeze_ts => Ok(()),
        // The same answer as for unknown media: nothing tells the media exists.
        LegacyMedia::Freeze { .. } => Err(err!(NotFound, "Media not found")),
    }
}
