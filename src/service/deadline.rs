//! Waiting with a deadline: outbound requests (federation, URL previews) must end by a time
//! of their own, whatever the remote does.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::Delay;

use crate::core::time::now_ms;

/// Awaits `fut` until `deadline` (ms since the epoch); `None` when time ran out.
pub async fn before<F: std::future::Future>(deadline: u64, fut: F) -> Option<F::Output> {
    let left = deadline.saturating_sub(now_ms());
    if left == 0 {
        return None;
    }
    let fut = Box::pin(fut);
    let delay = Box::pin(Delay::from(Duration::from_millis(left)));
    match select(fut, delay).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}
