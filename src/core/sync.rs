//! The `/sync` response as types (spec: client-server-api, "Syncing"; OpenAPI `sync.yaml`).
//! Each stream's builder in `service::sync` returns these, so `/sync` v3 and sliding sync
//! (MSC4186), whose extensions carry the same objects, can share them; `Serialize` gives the
//! wire shape. Events in client format stay `Value`: an event's JSON is its own.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// `{"events": [...]}`, the wrapper of every event list in a sync.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Events<T> {
    pub events: Vec<T>,
}

impl<T> Default for Events<T> {
    fn default() -> Self {
        Events { events: Vec::new() }
    }
}

impl<T> From<Vec<T>> for Events<T> {
    fn from(events: Vec<T>) -> Self {
        Events { events }
    }
}

/// A global or per-room account data event.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AccountDataEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Value,
}

/// `m.receipt` content: event ID → receipt type → user ID → receipt.
pub type ReceiptContent = BTreeMap<String, BTreeMap<String, BTreeMap<String, Receipt>>>;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Receipt {
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// Adds one stored receipt to a room's `m.receipt` content (the unthreaded receipt has the
/// empty thread ID in storage and no `thread_id` on the wire).
pub fn add_receipt(content: &mut ReceiptContent, event_id: &str, receipt_type: &str, user_id: &str, ts: u64, thread_id: &str) {
    let thread_id = (!thread_id.is_empty()).then(|| thread_id.to_owned());
    content.entry(event_id.to_owned()).or_default().entry(receipt_type.to_owned()).or_default().insert(user_id.to_owned(), Receipt { ts, thread_id });
}

/// A room's ephemeral event.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", content = "content")]
pub enum EphemeralEvent {
    #[serde(rename = "m.typing")]
    Typing { user_ids: Vec<String> },
    #[serde(rename = "m.receipt")]
    Receipt(ReceiptContent),
}

impl EphemeralEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            EphemeralEvent::Typing { .. } => "m.typing",
            EphemeralEvent::Receipt(_) => "m.receipt",
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PresenceContent {
    pub presence: String,
    pub last_active_ago: u64,
    pub currently_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_msg: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename = "m.presence")]
pub struct PresenceEvent {
    pub sender: String,
    pub content: PresenceContent,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Timeline {
    pub events: Vec<Value>,
    pub limited: bool,
    pub prev_batch: String,
}

/// A room's state section: `state` (the state at the start of the timeline), or with
/// `use_state_after` (MSC4222) `state_after` under its stable and unstable names.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct StateSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Events<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_after: Option<Events<Value>>,
    #[serde(rename = "org.matrix.msc4222.state_after", skip_serializing_if = "Option::is_none")]
    pub unstable_state_after: Option<Events<Value>>,
}

impl StateSection {
    pub fn new(events: Vec<Value>, state_after: bool) -> Self {
        if state_after {
            let e = Events::from(events);
            StateSection { state: None, state_after: Some(e.clone()), unstable_state_after: Some(e) }
        } else {
            StateSection { state: Some(events.into()), state_after: None, unstable_state_after: None }
        }
    }
}

/// What every room with a timeline carries; a left room carries only this.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RoomUpdate {
    pub timeline: Timeline,
    pub account_data: Events<AccountDataEvent>,
    #[serde(flatten)]
    pub state: StateSection,
}

pub type LeftRoom = RoomUpdate;

/// `{"notification_count", "highlight_count"}` (built by [`crate::core::push::unread_json`]).
pub type UnreadCounts = Value;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct JoinedRoom {
    #[serde(flatten)]
    pub room: RoomUpdate,
    pub ephemeral: Events<EphemeralEvent>,
    pub unread_notifications: UnreadCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_thread_notifications: Option<Value>,
    pub summary: RoomSummary,
}

/// `summary` of a joined room; empty (`{}`) when the sync did not compute it (no member
/// changed and the room is not new to the client).
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct RoomSummary {
    #[serde(rename = "m.heroes", skip_serializing_if = "Option::is_none")]
    pub heroes: Option<Vec<String>>,
    #[serde(rename = "m.joined_member_count", skip_serializing_if = "Option::is_none")]
    pub joined_member_count: Option<u64>,
    #[serde(rename = "m.invited_member_count", skip_serializing_if = "Option::is_none")]
    pub invited_member_count: Option<u64>,
}

/// Room summaries from member rows `(room_id, user_id, membership, count of that membership)`
/// (the first members of each membership, in membership order): counts, and up to 5 heroes
/// other than `me`.
pub fn room_summaries<'a>(me: &str, rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str, u64)>) -> HashMap<String, RoomSummary> {
    let mut out: HashMap<String, RoomSummary> = HashMap::new();
    for (room_id, user_id, membership, n) in rows {
        let s = out.entry(room_id.to_owned()).or_insert_with(|| RoomSummary {
            heroes: Some(Vec::new()),
            joined_member_count: Some(0),
            invited_member_count: Some(0),
        });
        match membership {
            "join" => s.joined_member_count = Some(n),
            _ => s.invited_member_count = Some(n),
        }
        if user_id != me {
            if let Some(h) = s.heroes.as_mut().filter(|h| h.len() < 5) {
                h.push(user_id.to_owned());
            }
        }
    }
    out
}

/// A stripped state event of an invite or knock; the user's own membership event comes in
/// full (event ID, time and room ID: clients read them).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct StrippedStateEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub content: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_server_ts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct InvitedRoom {
    pub invite_state: Events<StrippedStateEvent>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct KnockedRoom {
    pub knock_state: Events<StrippedStateEvent>,
}

#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct Rooms {
    pub join: BTreeMap<String, JoinedRoom>,
    pub invite: BTreeMap<String, InvitedRoom>,
    pub leave: BTreeMap<String, LeftRoom>,
    pub knock: BTreeMap<String, KnockedRoom>,
}

impl Rooms {
    pub fn is_empty(&self) -> bool {
        self.join.is_empty() && self.invite.is_empty() && self.leave.is_empty() && self.knock.is_empty()
    }
}

/// Users whose device lists to re-query, and users no longer sharing a room.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct DeviceLists {
    pub changed: Vec<String>,
    pub left: Vec<String>,
}

impl DeviceLists {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

/// The device's one-time key counts and unused fallback key types (also under MSC2732's
/// unstable name, which older clients read).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct KeyCounts {
    /// Built by [`crate::core::e2ee::key_counts`] (`signed_curve25519` always present).
    pub device_one_time_keys_count: Value,
    pub device_unused_fallback_key_types: Vec<String>,
    #[serde(rename = "org.matrix.msc2732.device_unused_fallback_key_types")]
    pub unstable_device_unused_fallback_key_types: Vec<String>,
}

impl KeyCounts {
    pub fn new(one_time: &BTreeMap<String, u64>, unused_fallback: Vec<String>) -> Self {
        KeyCounts {
            device_one_time_keys_count: crate::core::e2ee::key_counts(one_time),
            unstable_device_unused_fallback_key_types: unused_fallback.clone(),
            device_unused_fallback_key_types: unused_fallback,
        }
    }
}

/// The whole `/sync` response.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct SyncResponse {
    pub next_batch: String,
    pub rooms: Rooms,
    pub presence: Events<PresenceEvent>,
    pub account_data: Events<AccountDataEvent>,
    pub to_device: Events<Value>,
    pub device_lists: DeviceLists,
    #[serde(flatten)]
    pub keys: KeyCounts,
}

impl SyncResponse {
    /// Whether anything is new for the client (key counts alone are not: they come every time).
    pub fn has_updates(&self) -> bool {
        !self.rooms.is_empty()
            || !self.account_data.events.is_empty()
            || !self.presence.events.is_empty()
            || !self.to_device.events.is_empty()
            || !self.device_lists.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn ephemeral_events_shape() {
        assert_eq!(v(&EphemeralEvent::Typing { user_ids: vec!["@a:x".into()] }), json!({ "type": "m.typing", "content": { "user_ids": ["@a:x"] } }));
        let mut c = ReceiptContent::new();
        add_receipt(&mut c, "$e", "m.read", "@a:x", 5, "");
        add_receipt(&mut c, "$e", "m.read", "@b:x", 6, "$root");
        add_receipt(&mut c, "$f", "m.read.private", "@a:x", 7, "");
        let e = EphemeralEvent::Receipt(c);
        assert_eq!(e.kind(), "m.receipt");
        assert_eq!(
            v(&e),
            json!({ "type": "m.receipt", "content": {
                "$e": { "m.read": { "@a:x": { "ts": 5 }, "@b:x": { "ts": 6, "thread_id": "$root" } } },
                "$f": { "m.read.private": { "@a:x": { "ts": 7 } } },
            } })
        );
    }

    #[test]
    fn presence_event_shape() {
        let mut p = PresenceEvent {
            sender: "@a:x".into(),
            content: PresenceContent { presence: "online".into(), last_active_ago: 3, currently_active: true, status_msg: None },
        };
        assert_eq!(
            v(&p),
            json!({ "type": "m.presence", "sender": "@a:x", "content": { "presence": "online", "last_active_ago": 3, "currently_active": true } })
        );
        p.content.status_msg = Some("hi".into());
        assert_eq!(v(&p)["content"]["status_msg"], "hi");
    }

    fn room(state_after: bool) -> RoomUpdate {
        RoomUpdate {
            timeline: Timeline { events: vec![json!({ "event_id": "$1" })], limited: true, prev_batch: "s4".into() },
            account_data: Events::default(),
            state: StateSection::new(vec![json!({ "event_id": "$0" })], state_after),
        }
    }

    #[test]
    fn room_shapes() {
        assert_eq!(
            v(&room(false)),
            json!({
                "timeline": { "events": [{ "event_id": "$1" }], "limited": true, "prev_batch": "s4" },
                "account_data": { "events": [] },
                "state": { "events": [{ "event_id": "$0" }] },
            })
        );
        let after = v(&room(true));
        assert_eq!(after["state_after"], json!({ "events": [{ "event_id": "$0" }] }));
        assert_eq!(after["org.matrix.msc4222.state_after"], after["state_after"]);
        assert!(after.get("state").is_none());

        let joined = JoinedRoom {
            room: room(false),
            ephemeral: Events::default(),
            unread_notifications: json!({ "notification_count": 0, "highlight_count": 0 }),
            unread_thread_notifications: None,
            summary: RoomSummary::default(),
        };
        let j = v(&joined);
        assert_eq!(j["summary"], json!({}));
        assert_eq!(j["ephemeral"], json!({ "events": [] }));
        assert!(j.get("unread_thread_notifications").is_none());
        assert_eq!(j["state"], json!({ "events": [{ "event_id": "$0" }] }));
    }

    #[test]
    fn summaries_count_and_pick_heroes() {
        let rows = vec![
            ("!r", "@me:x", "join", 7),
            ("!r", "@a:x", "join", 7),
            ("!r", "@b:x", "join", 7),
            ("!r", "@c:x", "join", 7),
            ("!r", "@d:x", "join", 7),
            ("!r", "@e:x", "join", 7),
            ("!r", "@i:x", "invite", 1),
            ("!s", "@me:x", "join", 1),
        ];
        let s = room_summaries("@me:x", rows);
        assert_eq!(
            v(&s["!r"]),
            json!({ "m.heroes": ["@a:x", "@b:x", "@c:x", "@d:x", "@e:x"], "m.joined_member_count": 7, "m.invited_member_count": 1 })
        );
        assert_eq!(v(&s["!s"]), json!({ "m.heroes": [], "m.joined_member_count": 1, "m.invited_member_count": 0 }));
    }

    #[test]
    fn response_shape_and_updates() {
        let mut r = SyncResponse {
            next_batch: "t".into(),
            rooms: Rooms::default(),
            presence: Events::default(),
            account_data: Events::default(),
            to_device: Events::default(),
            device_lists: DeviceLists::default(),
            keys: KeyCounts::new(&BTreeMap::new(), vec!["signed_curve25519".into()]),
        };
        assert!(!r.has_updates());
        assert_eq!(
            v(&r),
            json!({
                "next_batch": "t",
                "rooms": { "join": {}, "invite": {}, "leave": {}, "knock": {} },
                "presence": { "events": [] },
                "account_data": { "events": [] },
                "to_device": { "events": [] },
                "device_lists": { "changed": [], "left": [] },
                "device_one_time_keys_count": { "signed_curve25519": 0 },
                "device_unused_fallback_key_types": ["signed_curve25519"],
                "org.matrix.msc2732.device_unused_fallback_key_types": ["signed_curve25519"],
            })
        );
        r.device_lists.left.push("@a:x".into());
        assert!(r.has_updates());
        let stripped = StrippedStateEvent {
            kind: "m.room.name".into(),
            state_key: Some(String::new()),
            sender: "@a:x".into(),
            content: json!({ "name": "n" }),
            event_id: None,
            origin_server_ts: None,
            room_id: None,
        };
        r.rooms.invite.insert("!r".into(), InvitedRoom { invite_state: vec![stripped].into() });
        assert_eq!(
            v(&r)["rooms"]["invite"],
            json!({ "!r": { "invite_state": { "events": [{ "type": "m.room.name", "state_key": "", "sender": "@a:x", "content": { "name": "n" } }] } } })
        );
    }
}
