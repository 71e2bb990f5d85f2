//! The one protocol of each Durable Object class: a request enum and a response enum, shared
//! by the caller ([`crate::service::objects::call`]) and the object (`serve` in this
//! module's parent). Native code, so the wire forms are unit-tested.
//!
//! On the wire a call is one `POST` whose body is the request (`{"op": "...", ...}`). The
//! object answers `200` with the response (`{"reply": "...", ...}`), or with the status and
//! body of the normal Matrix error ([`crate::Error::to_response`]), which the caller turns
//! back into the same error ([`crate::Error::from_response`]). Internal failures cross as
//! the generic `M_UNKNOWN` 500 and stay generic.

use std::collections::BTreeMap;

use ruma::{EventId, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::room::pdu::NewEvent;
use crate::core::txn::txn_key;
use crate::err;
use crate::error::Result;

/// One Durable Object class's protocol.
pub trait Protocol {
    /// The namespace binding in `wrangler.toml`.
    const BINDING: &'static str;
    /// The class name (health answers, log lines).
    const CLASS: &'static str;
    /// Every class answers a health check with its schema version.
    const HEALTH: Self::Request;
    type Request: Serialize + DeserializeOwned;
    type Response: Serialize + DeserializeOwned;
    /// The health answer, if `r` is one.
    fn health(r: Self::Response) -> Option<Health>;
}

/// A class's health answer (`GET /_stratus/health` shows it as is).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub class: String,
    pub schema_version: i64,
}

// ---------------------------------------------------------------------------------------
// Room: one per room (named by the room ID).

pub enum RoomProto {}

impl Protocol for RoomProto {
    const BINDING: &'static str = "ROOM";
    const CLASS: &'static str = "Room";
    const HEALTH: RoomRequest = RoomRequest::Health;
    type Request = RoomRequest;
    type Response = RoomResponse;
    fn health(r: RoomResponse) -> Option<Health> {
        match r {
            RoomResponse::Health(h) => Some(h),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RoomRequest {
    Health,
    /// Appends events to the room as its single writer.
    Append {
        room_id: String,
        events: Vec<NewEventWire>,
        txn: Option<Txn>,
        /// The hash of a cached access token to confirm in the append's batch
        /// (`service::timeline::send_via_room`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirm_token: Option<String>,
    },
    /// Receives PDUs of this room from another server (federation `/send`, `send_join`…):
    /// the checks on receipt, then storage (`service::federation::ingest`).
    Ingest {
        room_id: String,
        origin: String,
        pdus: Vec<Value>,
    },
    /// Stores the room a local user joined on another server: the join event and the state
    /// and auth chain the resident server sent (`send_join`).
    JoinRemote {
        room_id: String,
        room_version: String,
        origin: String,
        join_event: Value,
        state: Vec<Value>,
        auth_chain: Vec<Value>,
    },
    /// Fetches history before `from` (events whose `prev_events` we lack) from a server in
    /// the room and stores it below every stream position (`/messages` past the oldest
    /// event). Answered with `Appended` (the new event IDs).
    Backfill {
        room_id: String,
        from: Vec<String>,
        limit: u32,
    },
    /// One bounded purge step of an admin room deletion (`store::admin::purge_step`), under
    /// the writer lock so no append interleaves, dropping the cached head and state (the
    /// rows it read are going). Answered with `Purged`.
    Purge {
        room_id: String,
    },
    /// Sets or clears a member's typing flag (`timeout` in ms, capped by the object).
    Typing {
        room_id: String,
        user_id: String,
        typing: bool,
        timeout: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum RoomResponse {
    Health(Health),
    /// The new event IDs (for a repeated transaction, the original one).
    Appended {
        event_ids: Vec<String>,
    },
    /// The answer to `Append`: the new event IDs (for a repeated transaction, the original
    /// one) and the D1 round trips the object made for the group the request was committed
    /// in (`X-Stratus-D1-Round-Trips`).
    Sent {
        event_ids: Vec<String>,
        d1_round_trips: u32,
    },
    /// What became of each ingested PDU (`error` absent: accepted or soft-failed), and the
    /// D1 round trips the object made for them.
    Ingested {
        results: Vec<PduResult>,
        #[serde(default)]
        d1_round_trips: u32,
    },
    Done,
    /// Rows a purge step deleted (0: nothing of the room was left).
    Purged {
        rows: u64,
    },
}

/// One PDU's outcome, as federation `/send` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PduResult {
    pub event_id: String,
    pub error: Option<String>,
    /// Whether it reached the timeline (not soft-failed, not rejected).
    pub accepted: bool,
}

/// The wire form of a [`NewEvent`] between the Worker and the Room Durable Object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEventWire {
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: Option<String>,
    pub content: Value,
    pub sender: String,
    pub redacts: Option<String>,
}

impl NewEventWire {
    pub fn from_new(n: &NewEvent) -> Self {
        NewEventWire {
            kind: n.kind.clone(),
            state_key: n.state_key.clone(),
            content: n.content.clone(),
            sender: n.sender.to_string(),
            redacts: n.redacts.as_ref().map(|r| r.to_string()),
        }
    }

    pub fn into_new(self) -> Result<NewEvent> {
        Ok(NewEvent {
            kind: self.kind,
            state_key: self.state_key,
            content: self.content,
            sender: UserId::parse(&self.sender).map_err(|_| err!(BadJson, "bad sender"))?,
            redacts: match self.redacts {
                Some(r) => Some(EventId::parse(&r).map_err(|_| err!(BadJson, "bad redacts"))?),
                None => None,
            },
        })
    }
}

/// A client transaction: `key` is what idempotency is keyed on (scoped by endpoint and path
/// parameters, [`txn_key`]); `txn_id` is what the sender's clients see again in
/// `unsigned.transaction_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub user_id: String,
    pub device_id: String,
    pub txn_id: String,
    pub key: String,
}

impl Txn {
    /// `scope`: the endpoint's name and its path parameters, e.g. `["send", room, type]`.
    pub fn new(user_id: &str, device_id: &str, scope: &[&str], txn_id: &str) -> Txn {
        Txn { user_id: user_id.to_owned(), device_id: device_id.to_owned(), txn_id: txn_id.to_owned(), key: txn_key(scope, txn_id) }
    }
}

// ---------------------------------------------------------------------------------------
// UserKeys: one per user (named by the user ID).

pub enum UserKeysProto {}

impl Protocol for UserKeysProto {
    const BINDING: &'static str = "USER_KEYS";
    const CLASS: &'static str = "UserKeys";
    const HEALTH: UserKeysRequest = UserKeysRequest::Health;
    type Request = UserKeysRequest;
    type Response = UserKeysResponse;
    fn health(r: UserKeysResponse) -> Option<Health> {
        match r {
            UserKeysResponse::Health(h) => Some(h),
            _ => None,
        }
    }
}

/// One uploaded one-time or fallback key; `key_id` is the full `algorithm:id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyWire {
    pub algorithm: String,
    pub key_id: String,
    pub key: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimWire {
    pub device_id: String,
    pub algorithm: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimedKey {
    pub device_id: String,
    pub key_id: String,
    pub key: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserKeysRequest {
    Health,
    /// Stores a device's keys; nothing is stored if a one-time key ID is reused with
    /// another key.
    Upload {
        device_id: String,
        one_time_keys: Vec<KeyWire>,
        fallback_keys: Vec<KeyWire>,
    },
    Counts {
        device_id: String,
    },
    /// One key per claim: a one-time key if one is left, else the fallback key (marked used).
    Claim {
        claims: Vec<ClaimWire>,
    },
    /// Forgets the devices' keys.
    Delete {
        device_ids: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum UserKeysResponse {
    Health(Health),
    /// The device's one-time key counts after an upload (`keys`: the same with the
    /// fallback types and the generation, for the `UserSync` copy; absent from old objects).
    Uploaded {
        counts: BTreeMap<String, u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keys: Option<DeviceKeyCounts>,
    },
    /// A one-time key ID that already holds another key (nothing was stored).
    Conflict {
        key_id: String,
    },
    Counts {
        counts: BTreeMap<String, u64>,
        unused_fallback: Vec<String>,
        /// The object's key generation when counted (0 from old objects).
        #[serde(default)]
        gen: u64,
    },
    /// The keys handed out, and the counts of each device they came from (for the
    /// `UserSync` copy).
    Claimed {
        keys: Vec<ClaimedKey>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        counts: Vec<DeviceKeyCounts>,
    },
    Done,
}

/// A device's one-time key counts and unused fallback key types as of generation `gen` of
/// its user's `UserKeys` object (a counter that moves on every change there). `/sync` reads
/// a copy kept in the user's `UserSync` object, which keeps the highest generation it was
/// given, so copies that arrive out of order never go back in time (#17: an idle sync then
/// asks only `UserSync`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceKeyCounts {
    pub device_id: String,
    pub gen: u64,
    pub one_time: BTreeMap<String, u64>,
    pub unused_fallback: Vec<String>,
}

/// What a device's sync needs from `UserSync` besides the wake-ups: whether to-device messages
/// wait after the sync's position, and the key counts copy if it has a fresh one. Sent in the
/// [`USER_SYNC_DEVICE_HEADER`] header of a `WatchDevice` upgrade's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSyncState {
    pub to_device_pending: bool,
    #[serde(default)]
    pub keys: Option<DeviceKeyCounts>,
}

/// The header of a `WatchDevice` upgrade's 101 answer carrying its [`DeviceSyncState`].
pub const USER_SYNC_DEVICE_HEADER: &str = "x-stratus-device-sync";

/// The text a watch socket of a device receives when messages were queued for that device
/// (other changes send the counter).
pub const USER_SYNC_TO_DEVICE_WAKE: &str = "to_device";

// ---------------------------------------------------------------------------------------
// UserSync: one per user (named by the user ID).

pub enum UserSyncProto {}

impl Protocol for UserSyncProto {
    const BINDING: &'static str = "USER_SYNC";
    const CLASS: &'static str = "UserSync";
    const HEALTH: UserSyncRequest = UserSyncRequest::Health;
    type Request = UserSyncRequest;
    type Response = UserSyncResponse;
    fn health(r: UserSyncResponse) -> Option<Health> {
        match r {
            UserSyncResponse::Health(h) => Some(h),
            _ => None,
        }
    }
}

/// One queued to-device message for one of the user's devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToDeviceMessage {
    pub device_id: String,
    pub message: Value,
}

/// The header that carries a `UserSyncRequest::Wait` or `Watch` on its WebSocket upgrade (an
/// upgrade is a `GET`, which has no body).
pub const USER_SYNC_WAIT_HEADER: &str = "x-stratus-wait";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum UserSyncRequest {
    Health,
    /// The change counter, read before a sync looks at the stores.
    Version,
    /// Moves the counter and wakes the waiting syncs.
    Notify,
    /// Waits until the counter differs from `seen` (at once if it already does) or
    /// `timeout_ms` passes. Sent as a WebSocket upgrade with this request in the
    /// [`USER_SYNC_WAIT_HEADER`] header: the object answers `Waited` at once if the counter
    /// moved, else accepts the socket with the hibernation API and sends the counter down it
    /// on the next change, so it can hibernate (and is not billed) while nobody writes. Sent
    /// as a plain request, it only answers whether the counter moved (a zero timeout).
    Wait {
        seen: String,
        timeout_ms: u64,
    },
    /// Watches for changes: sent as a WebSocket upgrade (in [`USER_SYNC_WAIT_HEADER`]) that
    /// the object accepts with the hibernation API and sends the counter down on every later
    /// change. Opened before a sync looks at the stores, it replaces `Version` + `Wait`
    /// with one request, and one socket serves all of that sync's waits.
    Watch,
    /// `Watch` for one device's `/sync` at to-device position `since`: also answers (in the
    /// 101's [`USER_SYNC_DEVICE_HEADER`]) whether messages wait after `since` and the key
    /// counts copy, and
    /// later sends [`USER_SYNC_TO_DEVICE_WAKE`] instead of the counter when messages are
    /// queued for this device. An idle poll is then this one request (#17).
    WatchDevice {
        device_id: String,
        since: u64,
    },
    /// Keeps key counts copies (each only if newer than the one kept).
    SetKeyCounts {
        counts: Vec<DeviceKeyCounts>,
    },
    /// Queues messages and wakes the syncs.
    QueueToDevice {
        messages: Vec<ToDeviceMessage>,
    },
    /// The device's messages after `since`; those up to `since` are deleted unless `keep`.
    TakeToDevice {
        device_id: String,
        since: u64,
        keep: bool,
        /// Also answer the device's key counts copy, if fresh (absent: no).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        with_keys: bool,
    },
    /// Drops the queued messages of deleted devices.
    ForgetDevices {
        device_ids: Vec<String>,
    },
    /// The scheduled clean-up: drops what is kept for devices other than `keep` (the user's
    /// devices in D1): queued to-device messages, send transactions, sliding connections.
    PruneDevices {
        keep: Vec<String>,
    },
    /// Records a `/sendToDevice` transaction.
    SendTxn {
        device_id: String,
        txn_id: String,
    },
    /// A sliding sync connection's state at `pos` (none for a new connection) and the
    /// change counter (read before the sync looks at the stores).
    SlidingLoad {
        device_id: String,
        conn_id: String,
        pos: Option<u64>,
    },
    /// Stores a sliding sync connection's state under a new `pos`; `fresh` drops what the
    /// connection had.
    SlidingSave {
        device_id: String,
        conn_id: String,
        fresh: bool,
        state: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum UserSyncResponse {
    Health(Health),
    /// The counter (`Version`, `Notify`).
    Version {
        v: String,
    },
    /// `Wait`: whether the counter moved, and its value as of the answer (the value to wait
    /// on next: nothing committed after this point is missed).
    Waited {
        woken: bool,
        v: String,
    },
    /// Events and the position of the last one.
    ToDevice {
        events: Vec<Value>,
        position: u64,
        /// With `with_keys`: the key counts copy, if fresh.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keys: Option<DeviceKeyCounts>,
    },
    /// `SendTxn`: false if the device used the transaction before.
    Txn {
        new: bool,
    },
    Done,
    /// `SlidingLoad`: the state (`None`: unknown or expired `pos`) and the counter.
    SlidingLoaded {
        state: Option<String>,
        v: String,
    },
    /// `SlidingSave`: the new `pos`.
    SlidingSaved {
        pos: u64,
    },
    /// `PruneDevices`: the to-device messages dropped.
    Pruned {
        removed: u64,
    },
}

// ---------------------------------------------------------------------------------------
// Destination: one per remote server (named by its server name); its outbound queue.

pub enum DestinationProto {}

impl Protocol for DestinationProto {
    const BINDING: &'static str = "DESTINATION";
    const CLASS: &'static str = "Destination";
    const HEALTH: DestinationRequest = DestinationRequest::Health;
    type Request = DestinationRequest;
    type Response = DestinationResponse;
    fn health(r: DestinationResponse) -> Option<Health> {
        match r {
            DestinationResponse::Health(h) => Some(h),
            _ => None,
        }
    }
}

/// One of our PDUs queued for a destination: `pdu` is the signed PDU as it goes in a
/// transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueuedPduWire {
    pub room_id: String,
    pub event_id: String,
    pub pdu: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DestinationRequest {
    Health,
    /// Queues PDUs (in order; an event ID already queued is skipped) and EDUs for
    /// `destination`, and schedules a send unless the destination is backing off.
    Enqueue {
        destination: String,
        pdus: Vec<QueuedPduWire>,
        edus: Vec<Value>,
    },
    /// The destination is reachable again (e.g. it just sent us something): end the backoff
    /// and send what is queued now.
    Wake {
        destination: String,
    },
    /// The queue's state (operators, tests).
    Status,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum DestinationResponse {
    Health(Health),
    /// Queue lengths after the call (`Enqueue`, `Wake`, `Status`), the transaction in flight
    /// or waiting for its retry, failed attempts in a row and when the next is due (ms).
    Status {
        queued_pdus: u64,
        queued_edus: u64,
        txn_id: Option<String>,
        retries: u32,
        next_attempt_ms: u64,
    },
}

// ---------------------------------------------------------------------------------------
// RateLimiter: one per rate-limit bucket and key (named `<bucket>:<user ID or address>`;
// `crate::service::ratelimit`).

pub enum RateLimiterProto {}

impl Protocol for RateLimiterProto {
    const BINDING: &'static str = "RATE_LIMITER";
    const CLASS: &'static str = "RateLimiter";
    const HEALTH: RateLimiterRequest = RateLimiterRequest::Health;
    type Request = RateLimiterRequest;
    type Response = RateLimiterResponse;
    fn health(r: RateLimiterResponse) -> Option<Health> {
        match r {
            RateLimiterResponse::Health(h) => Some(h),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RateLimiterRequest {
    Health,
    /// Takes one action from the bucket, refilled at `per_second` up to `burst` (the caller's
    /// configuration: changing it applies at the next call).
    /// With `once` (a request's idempotency key, e.g. a send's transaction): a key already
    /// charged in this bucket is allowed without taking again, so a retried request is not
    /// counted twice.
    Take {
        per_second: f64,
        burst: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        once: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum RateLimiterResponse {
    Health(Health),
    Allowed,
    Limited { retry_after_ms: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let text = serde_json::to_string(&v).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
    }

    #[test]
    fn room_messages_round_trip() {
        let ev = NewEventWire {
            kind: "m.room.message".into(),
            state_key: None,
            content: json!({"body": "hi", "n": 1}),
            sender: "@a:s".into(),
            redacts: Some("$e".into()),
        };
        let txn = Txn::new("@a:s", "D", &["send", "!r:s", "m.room.message"], "t1");
        round_trip(RoomRequest::Health);
        round_trip(RoomRequest::Append { room_id: "!r:s".into(), events: vec![ev.clone(), ev], txn: Some(txn), confirm_token: None });
        round_trip(RoomRequest::Append { room_id: "!r:s".into(), events: vec![], txn: None, confirm_token: Some("h".into()) });
        round_trip(RoomRequest::Typing { room_id: "!r:s".into(), user_id: "@a:s".into(), typing: true, timeout: Some(30_000) });
        round_trip(RoomRequest::Typing { room_id: "!r:s".into(), user_id: "@a:s".into(), typing: false, timeout: None });
        round_trip(RoomRequest::Backfill { room_id: "!r:s".into(), from: vec!["$e".into()], limit: 25 });
        round_trip(RoomResponse::Health(Health { class: "Room".into(), schema_version: 2 }));
        round_trip(RoomResponse::Appended { event_ids: vec!["$a".into(), "$b".into()] });
        round_trip(RoomResponse::Done);
        round_trip(RoomRequest::Purge { room_id: "!r:s".into() });
        round_trip(RoomResponse::Purged { rows: 3 });
        round_trip(RoomResponse::Sent { event_ids: vec!["$a".into()], d1_round_trips: 1 });
    }

    #[test]
    fn new_event_wire_keeps_the_event() {
        let n = NewEvent {
            kind: "m.room.redaction".into(),
            state_key: None,
            content: json!({"reason": "x"}),
            sender: UserId::parse("@a:s").unwrap(),
            redacts: Some(EventId::parse("$e:s").unwrap()),
        };
        let back = NewEventWire::from_new(&n).into_new().unwrap();
        assert_eq!((back.kind, back.sender, back.redacts), (n.kind, n.sender, n.redacts));
        let bad = NewEventWire { kind: "t".into(), state_key: None, content: json!({}), sender: "nope".into(), redacts: None };
        assert_eq!(bad.into_new().unwrap_err().kind(), crate::ErrorKind::BadJson);
    }

    #[test]
    fn user_keys_messages_round_trip() {
        let k = KeyWire { algorithm: "signed_curve25519".into(), key_id: "signed_curve25519:AAA".into(), key: json!({"key": "x"}) };
        round_trip(UserKeysRequest::Health);
        round_trip(UserKeysRequest::Upload { device_id: "D".into(), one_time_keys: vec![k.clone()], fallback_keys: vec![k] });
        round_trip(UserKeysRequest::Counts { device_id: "D".into() });
        round_trip(UserKeysRequest::Claim { claims: vec![ClaimWire { device_id: "D".into(), algorithm: "signed_curve25519".into() }] });
        round_trip(UserKeysRequest::Delete { device_ids: vec!["D".into(), "E".into()] });
        round_trip(UserKeysResponse::Health(Health { class: "UserKeys".into(), schema_version: 2 }));
        round_trip(UserKeysResponse::Uploaded { counts: BTreeMap::from([("signed_curve25519".into(), 50)]), keys: None });
        let dk =
            DeviceKeyCounts { device_id: "D".into(), gen: 3, one_time: BTreeMap::from([("signed_curve25519".into(), 5)]), unused_fallback: vec![] };
        round_trip(UserKeysResponse::Uploaded { counts: BTreeMap::new(), keys: Some(dk.clone()) });
        round_trip(UserKeysResponse::Claimed { keys: vec![], counts: vec![dk.clone()] });
        round_trip(UserSyncRequest::SetKeyCounts { counts: vec![dk.clone()] });
        round_trip(UserSyncRequest::WatchDevice { device_id: "D".into(), since: 4 });
        round_trip(UserSyncRequest::TakeToDevice { device_id: "D".into(), since: 7, keep: false, with_keys: true });
        round_trip(UserSyncResponse::ToDevice { events: vec![], position: 1, keys: Some(dk) });
        // Answers of objects built before the key generation still read.
        let old: UserKeysResponse = serde_json::from_value(json!({"reply": "counts", "counts": {}, "unused_fallback": []})).unwrap();
        assert_eq!(old, UserKeysResponse::Counts { counts: BTreeMap::new(), unused_fallback: vec![], gen: 0 });
        round_trip(UserKeysResponse::Conflict { key_id: "signed_curve25519:AAA".into() });
        round_trip(UserKeysResponse::Counts { counts: BTreeMap::new(), unused_fallback: vec!["signed_curve25519".into()], gen: 2 });
        round_trip(UserKeysResponse::Claimed {
            keys: vec![ClaimedKey { device_id: "D".into(), key_id: "k:1".into(), key: json!("abc") }],
            counts: vec![],
        });
        round_trip(UserKeysResponse::Done);
    }

    #[test]
    fn user_sync_messages_round_trip() {
        round_trip(UserSyncRequest::Health);
        round_trip(UserSyncRequest::Version);
        round_trip(UserSyncRequest::Notify);
        round_trip(UserSyncRequest::Wait { seen: "ab12:3".into(), timeout_ms: 30_000 });
        round_trip(UserSyncRequest::Watch);
        round_trip(UserSyncRequest::QueueToDevice {
            messages: vec![ToDeviceMessage { device_id: "D".into(), message: json!({"type": "m.x", "content": {}}) }],
        });
        round_trip(UserSyncRequest::TakeToDevice { device_id: "D/with&odd=chars".into(), since: 7, keep: true, with_keys: false });
        round_trip(UserSyncRequest::ForgetDevices { device_ids: vec!["D".into()] });
        round_trip(UserSyncRequest::PruneDevices { keep: vec!["D".into()] });
        round_trip(UserSyncRequest::SendTxn { device_id: "D".into(), txn_id: "t".into() });
        round_trip(UserSyncRequest::SlidingLoad { device_id: "D".into(), conn_id: "room-list".into(), pos: Some(4) });
        round_trip(UserSyncRequest::SlidingSave { device_id: "D".into(), conn_id: "".into(), fresh: true, state: "{}".into() });
        round_trip(UserSyncResponse::SlidingLoaded { state: None, v: "ab12:1".into() });
        round_trip(UserSyncResponse::SlidingSaved { pos: 9 });
        round_trip(UserSyncResponse::Health(Health { class: "UserSync".into(), schema_version: 3 }));
        round_trip(UserSyncResponse::Version { v: "ab12:0".into() });
        round_trip(UserSyncResponse::Waited { woken: true, v: "ab12:1".into() });
        round_trip(UserSyncResponse::ToDevice { events: vec![json!({"type": "m.x"})], position: 12, keys: None });
        round_trip(UserSyncResponse::Txn { new: false });
        round_trip(UserSyncResponse::Done);
        round_trip(UserSyncResponse::Pruned { removed: 3 });
        round_trip(RateLimiterRequest::Take { per_second: 0.2, burst: 10.0, once: None });
        round_trip(RateLimiterRequest::Take { per_second: 0.2, burst: 10.0, once: Some("send\u{1f}t1".into()) });
        round_trip(RateLimiterResponse::Limited { retry_after_ms: 4999 });
        round_trip(RateLimiterResponse::Allowed);
        assert_eq!(serde_json::to_value(RateLimiterResponse::Allowed).unwrap(), json!({"reply": "allowed"}));
    }

    #[test]
    fn destination_messages_round_trip() {
        let p = QueuedPduWire { room_id: "!r:s".into(), event_id: "$e".into(), pdu: json!({"type": "m.room.message"}) };
        round_trip(DestinationRequest::Health);
        round_trip(DestinationRequest::Enqueue {
            destination: "remote.example:8448".into(),
            pdus: vec![p],
            edus: vec![json!({"edu_type": "m.typing"})],
        });
        round_trip(DestinationRequest::Wake { destination: "remote.example".into() });
        round_trip(DestinationRequest::Status);
        round_trip(DestinationResponse::Health(Health { class: "Destination".into(), schema_version: 1 }));
        round_trip(DestinationResponse::Status { queued_pdus: 3, queued_edus: 0, txn_id: Some("1.2".into()), retries: 2, next_attempt_ms: 9 });
        assert!(DestinationProto::health(DestinationResponse::Health(Health { class: "Destination".into(), schema_version: 1 })).is_some());
    }

    #[test]
    fn health_is_the_documented_shape() {
        let h = serde_json::to_value(Health { class: "Room".into(), schema_version: 2 }).unwrap();
        assert_eq!(h, json!({"class": "Room", "schema_version": 2}));
        assert_eq!(RoomProto::health(RoomResponse::Done), None);
        assert!(UserSyncProto::health(UserSyncResponse::Health(Health { class: "UserSync".into(), schema_version: 1 })).is_some());
    }
}
