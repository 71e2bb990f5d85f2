//! The outbound federation queue's rules (spec: server-server-api, "Transactions" and
//! "PDUs"): who receives our events, how a transaction is cut from the queue, when a failed
//! one is retried, and when a long outage is closed by a catch-up instead of a replay. The
//! `Destination` Durable Object (`durable_objects/destination.rs`) keeps the queue and
//! applies these; here they are native and unit-tested.
//!
//! - A transaction (`PUT /_matrix/federation/v1/send/{txnId}`) carries at most
//!   [`MAX_PDUS_PER_TXN`] PDUs and [`MAX_EDUS_PER_TXN`] EDUs; one is in flight per
//!   destination, and a retry of the same batch keeps its transaction ID (the receiver
//!   de-duplicates on it).
//! - Failures back off exponentially ([`backoff_ms`]: 5 s doubling to 1 h, ±20 % jitter).
//! - A room whose queue grew past [`CATCH_UP_THRESHOLD`] PDUs while the destination was
//!   failing keeps only its forward extremities ([`catch_up_keep`]): the remote fetches the
//!   gap with `/get_missing_events` from their `prev_events`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{json, Value};

/// The spec's limits for one transaction.
pub const MAX_PDUS_PER_TXN: usize = 50;
pub const MAX_EDUS_PER_TXN: usize = 100;

/// First retry delay, and the cap the doubling stops at.
pub const BACKOFF_BASE_MS: u64 = 5_000;
pub const BACKOFF_MAX_MS: u64 = 3_600_000;

/// Queued PDUs of one room past which a failing destination gets a catch-up instead.
pub const CATCH_UP_THRESHOLD: usize = 1_000;

/// EDUs are ephemeral (typing, receipts, presence, device-list pokes): beyond this many
/// queued for a failing destination the oldest are dropped.
pub const MAX_QUEUED_EDUS: usize = 5_000;

/// Transactions sent in one go before the object yields (re-arms its alarm at once).
pub const MAX_TXNS_PER_RUN: usize = 50;

/// The retry schedule: `base_ms` doubling per failure up to `max_ms`
/// (`FEDERATION_RETRY_MIN_MS` / `FEDERATION_RETRY_MAX_MS`; 5 s and 1 h by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base_ms: BACKOFF_BASE_MS, max_ms: BACKOFF_MAX_MS }
    }
}

/// The delay before retry number `retries` (1 for the first retry). `jitter` in `[0, 1)`
/// spreads retries of many destinations over ±20 % so they do not fire together.
pub fn backoff_ms(retries: u32, jitter: f64) -> u64 {
    backoff_with(Backoff::default(), retries, jitter)
}

/// [`backoff_ms`] on a given schedule.
pub fn backoff_with(schedule: Backoff, retries: u32, jitter: f64) -> u64 {
    let doublings = retries.saturating_sub(1).min(20);
    let delay = schedule.base_ms.saturating_mul(1u64 << doublings).min(schedule.max_ms.max(schedule.base_ms));
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.5 };
    let spread = delay as f64 * 0.4 * jitter;
    (delay as f64 * 0.8 + spread).round() as u64
}

/// A new transaction ID: the time plus a counter the object persists, so IDs never repeat
/// for a destination even within one millisecond or across restarts. Only `[0-9.]`: no
/// escaping needed in the path.
pub fn txn_id(now_ms: u64, counter: u64) -> String {
    format!("{now_ms}.{counter}")
}

/// The body of `PUT /_matrix/federation/v1/send/{txnId}`.
pub fn txn_body(origin: &str, origin_server_ts: u64, pdus: Vec<Value>, edus: Vec<Value>) -> Value {
    json!({ "origin": origin, "origin_server_ts": origin_server_ts, "pdus": pdus, "edus": edus })
}

/// The per-PDU errors in a transaction response (`{"pdus": {"$id": {"error": "…"}}}`).
/// They do not fail the transaction: the remote rejected those events and will not take
/// them on a retry either.
pub fn pdu_errors(response: &Value) -> Vec<(String, String)> {
    let Some(map) = response.get("pdus").and_then(Value::as_object) else { return vec![] };
    map.iter()
        .filter_map(|(id, r)| {
            let e = r.get("error")?;
            Some((id.clone(), e.as_str().map(str::to_owned).unwrap_or_else(|| e.to_string())))
        })
        .collect()
}

/// The server name of a user ID (`@local:server`), if it has one.
pub fn server_of(user_id: &str) -> Option<&str> {
    user_id.strip_prefix('@')?.split_once(':').map(|(_, s)| s).filter(|s| !s.is_empty())
}

/// One of our new events as the sender sees it.
pub struct Outgoing<'a> {
    pub sender: &'a str,
    /// `Some(target)` for an `m.room.member` event.
    pub member_target: Option<&'a str>,
}

/// Whether we send `event` at all: only our own events (a server never forwards another
/// server's events; the receiver checks the origin's signature).
pub fn is_ours(ours: &str, e: &Outgoing) -> bool {
    server_of(e.sender) == Some(ours)
}

/// The servers our events go to: those of the room's joined members (`joined_servers`), and
/// for a membership event its target's (an invite, kick or ban of a user whose server has
/// nobody joined, or the server of someone who just left), never ourselves. Sorted, distinct.
pub fn destinations<'a>(ours: &str, joined_servers: impl IntoIterator<Item = &'a str>, events: &[Outgoing]) -> Vec<String> {
    let mut out: BTreeSet<&str> = joined_servers.into_iter().filter(|s| !s.is_empty()).collect();
    out.extend(events.iter().filter_map(|e| e.member_target).filter_map(server_of));
    out.remove(ours);
    out.into_iter().map(str::to_owned).collect()
}

/// A queued PDU as the catch-up rule sees it.
#[derive(Clone, Debug)]
pub struct QueuedPdu {
    pub seq: i64,
    pub event_id: String,
    pub prev_events: Vec<String>,
}

/// The rooms whose queue is past the catch-up threshold (`counts`: queued PDUs per room).
/// Only while the destination is failing: a healthy one drains the queue as it is.
pub fn catch_up_rooms(counts: &BTreeMap<String, usize>, failing: bool) -> Vec<String> {
    if !failing {
        return vec![];
    }
    counts.iter().filter(|(_, n)| **n > CATCH_UP_THRESHOLD).map(|(r, _)| r.clone()).collect()
}

/// For a room being caught up, the queued PDUs to keep: its forward extremities among them
/// (those no later queued PDU names in `prev_events`), in queue order. Everything else is
/// reachable from them through `prev_events`, which the remote walks back with
/// `/get_missing_events`. Never empty for a non-empty queue.
pub fn catch_up_keep(queued: &[QueuedPdu]) -> Vec<i64> {
    let referenced: HashSet<&str> = queued.iter().flat_map(|p| p.prev_events.iter().map(String::as_str)).collect();
    let mut keep: Vec<i64> = queued.iter().filter(|p| !referenced.contains(p.event_id.as_str())).map(|p| p.seq).collect();
    if keep.is_empty() {
        // A cycle cannot happen with reference-hash IDs; keep the newest all the same.
        keep.extend(queued.iter().map(|p| p.seq).max());
    }
    keep.sort_unstable();
    keep
}

/// How many of the oldest queued EDUs to drop so at most [`MAX_QUEUED_EDUS`] stay.
pub fn edus_to_drop(queued: usize) -> usize {
    queued.saturating_sub(MAX_QUEUED_EDUS)
}

/// The send state of one destination, as the object persists it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendState {
    /// The transaction in flight (or failed and waiting for its retry): its batch is marked
    /// with this ID in the queue and is resent under it.
    pub txn_id: Option<String>,
    /// Failed attempts in a row.
    pub retries: u32,
    /// When the next attempt is due (ms since the epoch); 0 = now.
    pub next_attempt_ms: u64,
}

impl SendState {
    /// After a failed attempt: the same transaction waits for its retry.
    pub fn failed(&self, now_ms: u64, jitter: f64, schedule: Backoff) -> SendState {
        let retries = self.retries.saturating_add(1);
        SendState { txn_id: self.txn_id.clone(), retries, next_attempt_ms: now_ms.saturating_add(backoff_with(schedule, retries, jitter)) }
    }

    /// After a delivered transaction (or when the remote is known to be back): the next
    /// batch goes at once under a new ID.
    pub fn delivered() -> SendState {
        SendState::default()
    }

    /// Whether the destination is backing off.
    pub fn failing(&self) -> bool {
        self.retries > 0
    }

    /// When a newly queued item should be sent: at once unless backing off.
    pub fn due(&self, now_ms: u64) -> u64 {
        if self.failing() {
            self.next_attempt_ms.max(now_ms)
        } else {
            now_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_5s_to_an_hour_within_the_jitter() {
        let mid: Vec<u64> = (1..=12).map(|r| backoff_ms(r, 0.5)).collect();
        assert_eq!(&mid[..4], &[5_000, 10_000, 20_000, 40_000]);
        assert_eq!(backoff_ms(10, 0.5), 2_560_000);
        assert_eq!(backoff_ms(11, 0.5), BACKOFF_MAX_MS);
        assert_eq!(backoff_ms(1_000, 0.5), BACKOFF_MAX_MS, "no overflow");
        assert_eq!(backoff_ms(0, 0.5), 5_000);
        assert_eq!(backoff_ms(1, 0.0), 4_000);
        assert_eq!(backoff_ms(1, 1.0), 6_000);
        assert_eq!(backoff_ms(30, 1.0), BACKOFF_MAX_MS * 6 / 5);
        assert_eq!(backoff_ms(2, f64::NAN), 10_000);
        assert_eq!(backoff_ms(2, 7.0), 12_000, "jitter is clamped");
        // A short schedule (tests, private deployments): 1 s doubling to 5 s.
        let short = Backoff { base_ms: 1_000, max_ms: 5_000 };
        assert_eq!(backoff_with(short, 1, 0.5), 1_000);
        assert_eq!(backoff_with(short, 3, 0.5), 4_000);
        assert_eq!(backoff_with(short, 9, 0.5), 5_000);
    }

    #[test]
    fn send_state_keeps_the_txn_on_failure_and_resets_on_delivery() {
        let s = SendState { txn_id: Some("1.1".into()), retries: 0, next_attempt_ms: 0 };
        assert!(!s.failing());
        assert_eq!(s.due(100), 100);
        let f = s.failed(1_000, 0.5, Backoff::default());
        assert_eq!(f, SendState { txn_id: Some("1.1".into()), retries: 1, next_attempt_ms: 6_000 });
        assert!(f.failing());
        assert_eq!(f.due(2_000), 6_000, "new items wait for the retry");
        assert_eq!(f.due(9_000), 9_000);
        let f2 = f.failed(6_000, 0.5, Backoff::default());
        assert_eq!((f2.retries, f2.next_attempt_ms, f2.txn_id.as_deref()), (2, 16_000, Some("1.1")));
        assert_eq!(SendState::delivered(), SendState::default());
    }

    #[test]
    fn txn_ids_differ_and_need_no_escaping() {
        let a = txn_id(1_700_000_000_000, 1);
        let b = txn_id(1_700_000_000_000, 2);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_digit() || c == '.'));
    }

    #[test]
    fn body_has_the_spec_fields() {
        let b = txn_body("a.example", 5, vec![json!({"type": "m.room.message"})], vec![]);
        assert_eq!(b, json!({"origin": "a.example", "origin_server_ts": 5, "pdus": [{"type": "m.room.message"}], "edus": []}));
    }

    #[test]
    fn per_pdu_errors_are_read_not_fatal() {
        let r = json!({"pdus": {"$a": {}, "$b": {"error": "Forbidden"}, "$c": {"error": {"x": 1}}}});
        let mut e = pdu_errors(&r);
        e.sort();
        assert_eq!(e, vec![("$b".to_owned(), "Forbidden".to_owned()), ("$c".to_owned(), "{\"x\":1}".to_owned())]);
        assert!(pdu_errors(&json!({})).is_empty());
        assert!(pdu_errors(&json!({"pdus": []})).is_empty());
    }

    #[test]
    fn server_names_of_user_ids() {
        assert_eq!(server_of("@a:example.org"), Some("example.org"));
        assert_eq!(server_of("@a:127.0.0.1:8448"), Some("127.0.0.1:8448"));
        assert_eq!(server_of("@a:[::1]:80"), Some("[::1]:80"));
        assert_eq!(server_of("a:b"), None);
        assert_eq!(server_of("@a:"), None);
        assert_eq!(server_of("@a"), None);
    }

    #[test]
    fn only_our_events_go_out() {
        assert!(is_ours("us", &Outgoing { sender: "@a:us", member_target: None }));
        assert!(!is_ours("us", &Outgoing { sender: "@a:them", member_target: Some("@b:us") }));
        assert!(!is_ours("us", &Outgoing { sender: "@a:us.evil", member_target: None }));
    }

    #[test]
    fn destinations_are_joined_servers_and_membership_targets_but_not_us() {
        let members = ["@a:us", "@b:one", "@c:one", "@d:two", "nonsense"];
        let joined: Vec<&str> = members.iter().filter_map(|m| server_of(m)).collect();
        let joined = joined.iter().copied();
        let msg = Outgoing { sender: "@a:us", member_target: None };
        assert_eq!(destinations("us", joined.clone(), &[msg]), vec!["one", "two"]);
        let invite = Outgoing { sender: "@a:us", member_target: Some("@e:three") };
        let self_target = Outgoing { sender: "@a:us", member_target: Some("@a:us") };
        assert_eq!(destinations("us", joined, &[invite, self_target]), vec!["one", "three", "two"]);
        assert!(destinations("us", ["us"], &[]).is_empty());
        assert!(destinations("us", [""], &[]).is_empty());
    }

    fn q(seq: i64, id: &str, prev: &[&str]) -> QueuedPdu {
        QueuedPdu { seq, event_id: id.into(), prev_events: prev.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn catch_up_only_for_big_rooms_of_a_failing_destination() {
        let counts = BTreeMap::from([("!big:s".to_owned(), CATCH_UP_THRESHOLD + 1), ("!small:s".to_owned(), CATCH_UP_THRESHOLD)]);
        assert_eq!(catch_up_rooms(&counts, true), vec!["!big:s"]);
        assert!(catch_up_rooms(&counts, false).is_empty());
    }

    #[test]
    fn catch_up_keeps_the_forward_extremities() {
        // A linear run: only the newest stays.
        let linear = [q(1, "$1", &["$0"]), q(2, "$2", &["$1"]), q(3, "$3", &["$2"])];
        assert_eq!(catch_up_keep(&linear), vec![3]);
        // A fork (two of our events on different remote heads), then one joining them: only
        // the join point. Without it, both tips.
        let fork = [q(5, "$a", &["$x"]), q(6, "$b", &["$y"])];
        assert_eq!(catch_up_keep(&fork), vec![5, 6]);
        let merged = [q(5, "$a", &["$x"]), q(6, "$b", &["$y"]), q(7, "$c", &["$a", "$b"])];
        assert_eq!(catch_up_keep(&merged), vec![7]);
        // Out-of-order seqs still come back sorted; a (impossible) cycle keeps the newest.
        assert_eq!(catch_up_keep(&[q(9, "$p", &[]), q(4, "$q", &[])]), vec![4, 9]);
        assert_eq!(catch_up_keep(&[q(1, "$a", &["$b"]), q(2, "$b", &["$a"])]), vec![2]);
        assert!(catch_up_keep(&[]).is_empty());
    }

    #[test]
    fn edu_cap() {
        assert_eq!(edus_to_drop(10), 0);
        assert_eq!(edus_to_drop(MAX_QUEUED_EDUS + 7), 7);
    }
}
