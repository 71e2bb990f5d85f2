//! Bookkeeping for EDUs from other servers: the `m.direct_to_device` message IDs already
//! received (table `federation_to_device_ids`, `migrations/0015_federation_edus.sql`).

use crate::core::time::now_ms;
use crate::error::Result;
use crate::params;
use crate::store::db::Db;

/// How long a received message ID is remembered: far longer than any sender retries a
/// transaction (Synapse's backoff tops out at a day).
const TO_DEVICE_ID_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// Records that `origin`'s to-device message `message_id` arrived; false if it had
/// already (then its messages were queued before and must not be again). The same batch
/// drops the IDs older than the retention period, so the table stays bounded.
pub async fn claim_to_device_message(db: &Db, origin: &str, message_id: &str) -> Result<bool> {
    let now = now_ms();
    let changes = db
        .batch(vec![
            db.stmt("DELETE FROM federation_to_device_ids WHERE received_ts < ?", params![now.saturating_sub(TO_DEVICE_ID_TTL_MS)])?,
            db.stmt(
                "INSERT OR IGNORE INTO federation_to_device_ids (origin, message_id, received_ts) VALUES (?, ?, ?)",
                params![origin, message_id, now],
            )?,
        ])
        .await?;
    Ok(changes.get(1).copied().unwrap_or(0) == 1)
}

/// Forgets a claimed message ID (its messages could not be queued, so a redelivery should
/// be allowed to try again).
pub async fn unclaim_to_device_message(db: &Db, origin: &str, message_id: &str) -> Result<()> {
    db.run("DELETE FROM federation_to_device_ids WHERE origin = ? AND message_id = ?", params![origin, message_id]).await?;
    Ok(())
}
