//! Rate-limit arithmetic. Failed logins: a sliding window of failure timestamps per key (an
//! account or a client address), kept in D1. Requests (issue 18): token buckets ([`take`]),
//! kept by `RateLimiter` Durable Objects.

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

// ---------------------------------------------------------------------------------------
// Request rate limits (issue 18): Synapse's `rc_*` token buckets, one per (bucket, key),
// each kept by its own `RateLimiter` Durable Object (`durable_objects/rate_limiter.rs`).

/// What is limited, and per what (a user ID or a client address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Events sent to rooms, per sender (Synapse `rc_message`).
    Message,
    /// Accounts created, per client address (`rc_registration`).
    Registration,
    /// Room joins, per user (`rc_joins.local`).
    Join,
    /// Invites sent, per inviter (`rc_invites.per_issuer`).
    Invite,
    /// Media IDs created (`/create` and `POST /upload`), per user (`rc_media_create`).
    MediaCreate,
    /// `/register/available` probes, per client address.
    RegisterAvailable,
}

impl Bucket {
    pub const ALL: [Bucket; 6] =
        [Bucket::Message, Bucket::Registration, Bucket::Join, Bucket::Invite, Bucket::MediaCreate, Bucket::RegisterAvailable];

    /// The bucket's name: the prefix of its object names and of its variable
    /// (`RATE_LIMIT_<NAME>` upper-cased).
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Message => "message",
            Bucket::Registration => "registration",
            Bucket::Join => "join",
            Bucket::Invite => "invite",
            Bucket::MediaCreate => "media_create",
            Bucket::RegisterAvailable => "register_available",
        }
    }

    /// Keyed by a user ID (so server admins may be exempt), not by a client address.
    pub fn per_user(self) -> bool {
        !matches!(self, Bucket::Registration | Bucket::RegisterAvailable)
    }

    /// Synapse's defaults (synapse/config/ratelimiting.py). `/register/available` has no
    /// `rc_` setting there: Synapse delays a client address beyond one probe per 2 s and
    /// refuses beyond one queued; a bucket of 2 refilled at 0.5/s is the refusing equivalent.
    pub fn default_rate(self) -> Rate {
        let (per_second, burst) = match self {
            Bucket::Message => (0.2, 10.0),
            Bucket::Registration => (0.17, 3.0),
            Bucket::Join => (0.1, 10.0),
            Bucket::Invite => (0.3, 10.0),
            Bucket::MediaCreate => (10.0, 50.0),
            Bucket::RegisterAvailable => (0.5, 2.0),
        };
        Rate { per_second, burst }
    }
}

/// A token bucket: up to `burst` actions at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// The configured limits; `None` for a bucket turns it off.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimits {
    rates: [Option<Rate>; 6],
    /// Users never limited (Synapse's `exempt_user_ids`), besides server admins.
    pub exempt_users: Vec<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { rates: Bucket::ALL.map(|b| Some(b.default_rate())), exempt_users: Vec::new() }
    }
}

impl RateLimits {
    /// Reads `RATE_LIMITS` (`off` turns every limit off) and `RATE_LIMIT_<BUCKET>` =
    /// `"<per_second>/<burst>"` or `off` (e.g. `RATE_LIMIT_MESSAGE = "0.2/10"`), and
    /// `RATE_LIMIT_EXEMPT_USERS` (comma-separated user IDs).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<RateLimits, String> {
        let var = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let all_off = match var("RATE_LIMITS").as_deref() {
            None | Some("on") => false,
            Some("off") => true,
            Some(other) => return Err(format!("RATE_LIMITS must be on or off, got {other:?}")),
        };
        let mut rates = [None; 6];
        for (slot, b) in rates.iter_mut().zip(Bucket::ALL) {
            let key = format!("RATE_LIMIT_{}", b.name().to_ascii_uppercase());
            *slot = match var(&key) {
                Some(v) => parse_rate(&v).map_err(|e| format!("{key}: {e}"))?,
                None if all_off => None,
                None => Some(b.default_rate()),
            };
        }
        let exempt_users =
            var("RATE_LIMIT_EXEMPT_USERS").map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        Ok(RateLimits { rates, exempt_users })
    }

    /// The bucket's rate, `None` when it is off.
    pub fn get(&self, bucket: Bucket) -> Option<Rate> {
        Bucket::ALL.iter().position(|b| *b == bucket).and_then(|i| self.rates.get(i).copied().flatten())
    }
}

/// `"<per_second>/<burst>"`, or `off` / `0` for no limit.
fn parse_rate(v: &str) -> Result<Option<Rate>, String> {
    if v == "off" || v == "0" {
        return Ok(None);
    }
    let (r, b) = v.split_once('/').ok_or_else(|| format!("expected \"<per_second>/<burst>\" or off, got {v:?}"))?;
    let per_second: f64 = r.trim().parse().map_err(|_| format!("bad rate {r:?}"))?;
    let burst: f64 = b.trim().parse().map_err(|_| format!("bad burst {b:?}"))?;
    if !(per_second.is_finite() && per_second > 0.0 && burst.is_finite() && burst >= 1.0) {
        return Err(format!("rate must be > 0 and burst >= 1, got {v:?}"));
    }
    Ok(Some(Rate { per_second, burst }))
}

/// A bucket's state: how full it is (in actions) as of `updated_ms`. Synapse's leaky bucket:
/// the level drains at `per_second`; an action is allowed while the level after it stays
/// within `burst`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Level {
    pub level: f64,
    pub updated_ms: u64,
}

/// Takes one action from the bucket at `now`: `Ok(new state)` if allowed, else
/// `Err(retry_after_ms)` (the state is unchanged: a refused action costs nothing).
pub fn take(state: Level, rate: Rate, now: u64) -> Result<Level, u64> {
    let elapsed_s = now.saturating_sub(state.updated_ms) as f64 / 1000.0;
    let level = (state.level - elapsed_s * rate.per_second).max(0.0);
    if level + 1.0 <= rate.burst + 1e-9 {
        return Ok(Level { level: level + 1.0, updated_ms: now });
    }
    let wait_ms = ((level + 1.0 - rate.burst) / rate.per_second * 1000.0).ceil();
    Err((wait_ms as u64).max(1))
}

/// When a bucket at `state` will have drained completely (ms): its record can go then.
pub fn drained_at(state: Level, rate: Rate) -> u64 {
    state.updated_ms + (state.level / rate.per_second * 1000.0).ceil() as u64
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    const R: Rate = Rate { per_second: 0.5, burst: 3.0 };

    #[test]
    fn burst_then_refill() {
        let mut s = Level::default();
        for _ in 0..3 {
            s = take(s, R, 1000).unwrap();
        }
        // The 4th waits for one action to drain: 1 / 0.5 per second = 2 s.
        assert_eq!(take(s, R, 1000), Err(2000));
        assert_eq!(take(s, R, 2000), Err(1000));
        let s2 = take(s, R, 3000).unwrap();
        assert!((s2.level - 3.0).abs() < 1e-9);
        assert_eq!(drained_at(s2, R), 9000);
    }

    #[test]
    fn refusal_costs_nothing() {
        let s = Level { level: 3.0, updated_ms: 0 };
        assert!(take(s, R, 0).is_err());
        // Long idle: back to a full burst.
        let s = take(s, R, 60_000).unwrap();
        assert!((s.level - 1.0).abs() < 1e-9);
    }

    #[test]
    fn config() {
        let get = |m: &'static [(&'static str, &'static str)]| move |k: &str| m.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let d = RateLimits::from_lookup(get(&[])).unwrap();
        assert_eq!(d.get(Bucket::Message), Some(Rate { per_second: 0.2, burst: 10.0 }));
        assert_eq!(d.get(Bucket::Registration), Some(Rate { per_second: 0.17, burst: 3.0 }));
        let off = RateLimits::from_lookup(get(&[("RATE_LIMITS", "off"), ("RATE_LIMIT_MESSAGE", "1/10")])).unwrap();
        assert_eq!(off.get(Bucket::Message), Some(Rate { per_second: 1.0, burst: 10.0 }));
        assert_eq!(off.get(Bucket::Join), None);
        let one = RateLimits::from_lookup(get(&[("RATE_LIMIT_JOIN", "off"), ("RATE_LIMIT_EXEMPT_USERS", "@a:x, @b:x")])).unwrap();
        assert_eq!(one.get(Bucket::Join), None);
        assert_eq!(one.exempt_users, vec!["@a:x", "@b:x"]);
        assert!(RateLimits::from_lookup(get(&[("RATE_LIMIT_INVITE", "fast")])).is_err());
        assert!(RateLimits::from_lookup(get(&[("RATE_LIMIT_INVITE", "1/0")])).is_err());
        assert!(RateLimits::from_lookup(get(&[("RATE_LIMITS", "maybe")])).is_err());
    }
}
