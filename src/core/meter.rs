//! The billable units of one request (issue #17): what Cloudflare charges for, counted as the
//! request runs, shown in development as the `X-Stratus-Cost` header and always in the
//! request's log line. The counting lives in `service::meter`; this is the arithmetic and the
//! formats, unit-tested natively.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Units of one request. D1 statements and rows come from each D1 result's `meta`; Durable
/// Object time is the wall time the caller waited on each object (the object is active, so
/// billed for duration, at least that long).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Units {
    /// D1 statements (each statement of a batch counts: D1 bills rows, the batch is one trip).
    pub d1: u32,
    pub rows_read: u64,
    pub rows_written: u64,
    /// Durable Object requests by class, in the order of their first call.
    #[serde(rename = "do")]
    pub do_calls: Vec<(String, u32)>,
    /// Wall milliseconds spent waiting on Durable Objects.
    pub do_ms: u64,
    pub kv_r: u32,
    /// KV writes, deletes and lists (billed at the write rate).
    pub kv_w: u32,
    /// R2 class A operations (put, list, multipart), class B (get, head).
    pub r2_a: u32,
    pub r2_b: u32,
    /// Outbound `fetch` subrequests (federation, push gateways, URL previews, TURN).
    pub sub: u32,
}

impl Units {
    pub fn add_do(&mut self, class: &str, ms: u64) {
        match self.do_calls.iter_mut().find(|(c, _)| c == class) {
            Some((_, n)) => *n += 1,
            None => self.do_calls.push((class.to_owned(), 1)),
        }
        self.do_ms += ms;
    }

    /// Durable Object requests of all classes.
    pub fn do_total(&self) -> u32 {
        self.do_calls.iter().map(|(_, n)| n).sum()
    }

    /// Adds `other` (the units a Durable Object spent while answering this request).
    pub fn add(&mut self, other: &Units) {
        self.d1 += other.d1;
        self.rows_read += other.rows_read;
        self.rows_written += other.rows_written;
        for (class, n) in &other.do_calls {
            match self.do_calls.iter_mut().find(|(c, _)| c == class) {
                Some((_, m)) => *m += n,
                None => self.do_calls.push((class.clone(), *n)),
            }
        }
        self.do_ms += other.do_ms;
        self.kv_r += other.kv_r;
        self.kv_w += other.kv_w;
        self.r2_a += other.r2_a;
        self.r2_b += other.r2_b;
        self.sub += other.sub;
    }

    /// `self - earlier`, for counters that only grow (an isolate-wide total read twice).
    pub fn since(&self, earlier: &Units) -> Units {
        let do_calls = self
            .do_calls
            .iter()
            .filter_map(|(c, n)| {
                let before = earlier.do_calls.iter().find(|(e, _)| e == c).map_or(0, |(_, m)| *m);
                (*n > before).then(|| (c.clone(), n - before))
            })
            .collect();
        Units {
            d1: self.d1.saturating_sub(earlier.d1),
            rows_read: self.rows_read.saturating_sub(earlier.rows_read),
            rows_written: self.rows_written.saturating_sub(earlier.rows_written),
            do_calls,
            do_ms: self.do_ms.saturating_sub(earlier.do_ms),
            kv_r: self.kv_r.saturating_sub(earlier.kv_r),
            kv_w: self.kv_w.saturating_sub(earlier.kv_w),
            r2_a: self.r2_a.saturating_sub(earlier.r2_a),
            r2_b: self.r2_b.saturating_sub(earlier.r2_b),
            sub: self.sub.saturating_sub(earlier.sub),
        }
    }

    /// The `X-Stratus-Cost` header value:
    /// `d1=3;rows_read=12;rows_written=0;do=Room:1,UserSync:2;do_ms=4;kv_r=0;kv_w=0;r2_a=0;r2_b=0;sub=0`.
    pub fn header(&self) -> String {
        let dos: Vec<String> = self.do_calls.iter().map(|(c, n)| format!("{c}:{n}")).collect();
        format!(
            "d1={};rows_read={};rows_written={};do={};do_ms={};kv_r={};kv_w={};r2_a={};r2_b={};sub={}",
            self.d1,
            self.rows_read,
            self.rows_written,
            dos.join(","),
            self.do_ms,
            self.kv_r,
            self.kv_w,
            self.r2_a,
            self.r2_b,
            self.sub
        )
    }
}

/// What an R2 bucket method costs (R2 pricing: class A mutates or lists, class B reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum R2Op {
    A,
    B,
    Free,
}

pub fn r2_op(method: &str) -> R2Op {
    match method {
        "put" | "list" | "createMultipartUpload" | "uploadPart" | "completeMultipartUpload" | "copy" => R2Op::A,
        "get" | "head" => R2Op::B,
        _ => R2Op::Free,
    }
}

/// A KV namespace method: `Some(true)` for a read, `Some(false)` for a billed write, delete
/// or list.
pub fn kv_op(method: &str) -> Option<bool> {
    match method {
        "get" | "getWithMetadata" => Some(true),
        "put" | "delete" | "list" => Some(false),
        _ => None,
    }
}

/// A stable pseudonym for a user in logs: the first 16 hex digits of SHA-256 of the ID.
pub fn user_hash(user_id: &str) -> String {
    let digest = Sha256::digest(user_id.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// One request's structured log line (issue #18): no path (it carries IDs and tokens), no
/// body, no user ID — the route's pattern and a hash.
#[derive(Debug, Serialize)]
pub struct RequestLog<'a> {
    pub msg: &'static str,
    pub request_id: &'a str,
    pub method: &'a str,
    /// The route's pattern from `src/routes.rs`, e.g. `/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`.
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: u64,
    /// D1 round trips the Worker itself made (each counts against the subrequest limit).
    pub d1_round_trips: u32,
    pub user: Option<String>,
    pub cost: &'a Units,
}

impl RequestLog<'_> {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_every_unit() {
        let mut u = Units { d1: 3, rows_read: 12, ..Units::default() };
        u.add_do("Room", 5);
        u.add_do("UserSync", 1);
        u.add_do("UserSync", 2);
        assert_eq!(u.header(), "d1=3;rows_read=12;rows_written=0;do=Room:1,UserSync:2;do_ms=8;kv_r=0;kv_w=0;r2_a=0;r2_b=0;sub=0");
        assert_eq!(u.do_total(), 3);
        assert_eq!(Units::default().header(), "d1=0;rows_read=0;rows_written=0;do=;do_ms=0;kv_r=0;kv_w=0;r2_a=0;r2_b=0;sub=0");
    }

    #[test]
    fn since_and_add_are_inverse() {
        let mut before = Units { d1: 2, rows_read: 5, kv_r: 1, ..Units::default() };
        before.add_do("Room", 1);
        let mut after = before.clone();
        let mut extra = Units { d1: 4, rows_written: 7, r2_a: 1, sub: 2, ..Units::default() };
        extra.add_do("Room", 3);
        extra.add_do("UserSync", 0);
        after.add(&extra);
        assert_eq!(after.since(&before), extra);
        assert_eq!(before.since(&after), Units::default());
    }

    #[test]
    fn operation_classes() {
        assert_eq!(r2_op("put"), R2Op::A);
        assert_eq!(r2_op("get"), R2Op::B);
        assert_eq!(r2_op("head"), R2Op::B);
        assert_eq!(r2_op("delete"), R2Op::Free);
        assert_eq!(kv_op("get"), Some(true));
        assert_eq!(kv_op("list"), Some(false));
        assert_eq!(kv_op("nope"), None);
    }

    #[test]
    fn log_line_has_no_user_id() {
        let u = Units::default();
        let line = RequestLog {
            msg: "request",
            request_id: "r1",
            method: "GET",
            route: "/_matrix/client/v3/sync",
            status: 200,
            duration_ms: 3,
            d1_round_trips: 2,
            user: Some(user_hash("@alice:example.org")),
            cost: &u,
        }
        .to_line();
        assert!(!line.contains("alice"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["route"], "/_matrix/client/v3/sync");
        assert_eq!(v["user"].as_str().unwrap().len(), 16);
        assert_eq!(v["cost"]["rows_read"], 0);
        assert_eq!(user_hash("@a:x"), user_hash("@a:x"));
        assert_ne!(user_hash("@a:x"), user_hash("@b:x"));
    }
}
