//! Failed-login limiting: a sliding window of failure timestamps per key (an account or a
//! client address). The timestamps live in D1; this is the arithmetic.

/// Decides whether a key is limited, given the timestamps (ms) of its failures inside the
/// window. Returns `Some(retry_after_ms)` when it is: the time until enough failures have
/// aged out of the window to allow one more attempt.
pub fn retry_after(mut failures: Vec<u64>, max: u32, window_ms: u64, now: u64) -> Option<u64> {
    if max == 0 {
        return None; // 0 turns the limit off
    }
    failures.retain(|&t| t + window_ms > now);
    if (failures.len() as u64) < max as u64 {
        return None;
    }
    failures.sort_unstable();
    // After the (len - max + 1) oldest failures expire, len - that < max.
    let idx = failures.len() - max as usize;
    let oldest_to_expire = failures.get(idx)?;
    Some((oldest_to_expire + window_ms).saturating_sub(now).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_limit() {
        assert_eq!(retry_after(vec![], 3, 1000, 5000), None);
        assert_eq!(retry_after(vec![4500, 4600], 3, 1000, 5000), None);
    }

    #[test]
    fn at_the_limit() {
        assert_eq!(retry_after(vec![4500, 4600, 4700], 3, 1000, 5000), Some(500));
        // Old failures outside the window do not count.
        assert_eq!(retry_after(vec![3000, 4600, 4700], 3, 1000, 5000), None);
        // Over the limit: wait for enough of them to expire.
        assert_eq!(retry_after(vec![4100, 4500, 4600, 4700], 3, 1000, 5000), Some(500));
    }

    #[test]
    fn retry_is_never_zero() {
        assert_eq!(retry_after(vec![4000, 4000, 4000], 3, 1000, 4999), Some(1));
    }
}
