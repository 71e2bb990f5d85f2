//! Sliding sync extensions (MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960
//! receipts, MSC3961 typing): their request and response shapes, as matrix-rust-sdk and
//! matrix-js-sdk send them and Synapse answers, and the scoping rule (`lists`/`rooms`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::core::sync::{AccountDataEvent, DeviceLists, EphemeralEvent, KeyCounts, ReceiptContent};

/// The request body's `extensions`. A section that is missing, malformed or not `enabled`
/// is disabled; unknown sections and fields are ignored (MSC3575: a newer client must work
/// with an older server).
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ExtensionsRequest {
    #[serde(deserialize_with = "lenient")]
    pub to_device: ToDeviceRequest,
    #[serde(deserialize_with = "lenient")]
    pub e2ee: Toggle,
    #[serde(deserialize_with = "lenient")]
    pub account_data: ScopedRequest,
    #[serde(deserialize_with = "lenient")]
    pub receipts: ScopedRequest,
    #[serde(deserialize_with = "lenient")]
    pub typing: ScopedRequest,
}

/// A section that does not parse counts as absent rather than failing the whole sync.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// `{"enabled": bool}` (MSC3884 e2ee).
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Toggle {
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
}

/// MSC3885 to-device: `{"enabled", "since", "limit"}`. `since` is the extension's own
/// position (the previous `next_batch`), not the sync `pos`.
#[derive(Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ToDeviceRequest {
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient")]
    pub since: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub limit: Option<u64>,
}

/// The scoped extensions (MSC3959 account data, MSC3960 receipts, MSC3961 typing):
/// `{"enabled", "lists", "rooms"}`. As Synapse: a missing `lists`/`rooms` means `["*"]`
/// (every list / every subscription); `null` or `[]` means none.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ScopedRequest {
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient")]
    pub lists: Option<Vec<String>>,
    #[serde(deserialize_with = "lenient")]
    pub rooms: Option<Vec<String>>,
}

fn all() -> Option<Vec<String>> {
    Some(vec!["*".to_owned()])
}

impl Default for ScopedRequest {
    fn default() -> Self {
        ScopedRequest { enabled: false, lists: all(), rooms: all() }
    }
}

impl ScopedRequest {
    /// The rooms this extension covers in this response: those of the named lists' windows
    /// (`*`: every list) and the named room subscriptions (`*`: every one); a room the
    /// response does not carry is never in scope.
    pub fn rooms_in_scope(&self, lists: &BTreeMap<String, Vec<String>>, subscriptions: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if !self.enabled {
            return out;
        }
        for name in self.lists.iter().flatten() {
            if name == "*" {
                out.extend(lists.values().flatten().cloned());
            } else if let Some(rooms) = lists.get(name) {
                out.extend(rooms.iter().cloned());
            }
        }
        for room in self.rooms.iter().flatten() {
            if room == "*" {
                out.extend(subscriptions.iter().cloned());
            } else if subscriptions.contains(room) {
                out.insert(room.clone());
            }
        }
        out
    }
}

/// The rooms in `scope` the client receives for the first time: all of them on a
/// connection's first request, else those the response sends as `initial` (`fresh`). They
/// get their current receipts, typing and room account data, not only what changed.
pub fn first_sent(scope: &BTreeSet<String>, first_request: bool, fresh: &[String]) -> BTreeSet<String> {
    if first_request {
        return scope.clone();
    }
    fresh.iter().filter(|r| scope.contains(*r)).cloned().collect()
}

/// MSC3961: one `m.typing` per room in scope, from `(room, typing users)` rows. A room the
/// client receives for the first time has nothing to clear, so an empty list is left out.
pub fn typing_section(rows: Vec<(String, Vec<String>)>, scope: &BTreeSet<String>, first: &BTreeSet<String>) -> Option<RoomsEphemeral> {
    let rooms: BTreeMap<String, EphemeralEvent> = rows
        .into_iter()
        .filter(|(room, users)| scope.contains(room) && !(users.is_empty() && first.contains(room)))
        .map(|(room, user_ids)| (room, EphemeralEvent::Typing { user_ids }))
        .collect();
    (!rooms.is_empty()).then_some(RoomsEphemeral { rooms })
}

/// MSC3960: one `m.receipt` per room in scope.
pub fn receipts_section(receipts: BTreeMap<String, ReceiptContent>, scope: &BTreeSet<String>) -> Option<RoomsEphemeral> {
    let rooms: BTreeMap<String, EphemeralEvent> = receipts
        .into_iter()
        .filter(|(room, content)| scope.contains(room) && !content.is_empty())
        .map(|(room, content)| (room, EphemeralEvent::Receipt(content)))
        .collect();
    (!rooms.is_empty()).then_some(RoomsEphemeral { rooms })
}

/// MSC3959: global account data, and that of the rooms in scope (later entries of a room's
/// type replace earlier ones, so a full read of a room can follow its changes).
pub fn account_data_section(
    global: Vec<AccountDataEvent>,
    rooms: impl IntoIterator<Item = (String, AccountDataEvent)>,
    scope: &BTreeSet<String>,
) -> Option<AccountDataResponse> {
    let mut by_room: BTreeMap<String, BTreeMap<String, AccountDataEvent>> = BTreeMap::new();
    for (room, ev) in rooms {
        if scope.contains(&room) {
            by_room.entry(room).or_default().insert(ev.kind.clone(), ev);
        }
    }
    let rooms: BTreeMap<String, Vec<AccountDataEvent>> = by_room.into_iter().map(|(r, evs)| (r, evs.into_values().collect())).collect();
    (!global.is_empty() || !rooms.is_empty()).then_some(AccountDataResponse { global, rooms })
}

/// The to-device position a client sent back (`since`); anything else reads from the start,
/// which acknowledges nothing and so loses nothing.
pub fn to_device_since(since: Option<&str>) -> u64 {
    since.and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// The response's `extensions`; a disabled extension, and a scoped one with nothing to
/// say, is omitted.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct ExtensionsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_device: Option<ToDeviceResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2ee: Option<E2eeResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_data: Option<AccountDataResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<RoomsEphemeral>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typing: Option<RoomsEphemeral>,
}

impl ExtensionsResponse {
    /// Nothing to deliver: the long-poll keeps waiting. The key counts and an empty
    /// to-device batch come with every response and do not count (as `/sync` v3).
    pub fn is_empty(&self) -> bool {
        self.to_device.as_ref().is_none_or(|t| t.events.is_empty())
            && self.e2ee.as_ref().is_none_or(|e| e.device_lists.is_empty())
            && self.account_data.as_ref().is_none_or(|a| a.global.is_empty() && a.rooms.is_empty())
            && self.receipts.as_ref().is_none_or(|r| r.rooms.is_empty())
            && self.typing.as_ref().is_none_or(|r| r.rooms.is_empty())
    }
}

/// MSC3885: the messages and the position to send back as `since`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ToDeviceResponse {
    pub next_batch: String,
    pub events: Vec<Value>,
}

/// MSC3884: device-list changes and the device's key counts.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct E2eeResponse {
    pub device_lists: DeviceLists,
    #[serde(flatten)]
    pub keys: KeyCounts,
}

/// MSC3959: global account data and per-room account data of the rooms in scope.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct AccountDataResponse {
    pub global: Vec<AccountDataEvent>,
    pub rooms: BTreeMap<String, Vec<AccountDataEvent>>,
}

/// MSC3960 / MSC3961: one `m.receipt` or `m.typing` event per room in scope.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct RoomsEphemeral {
    pub rooms: BTreeMap<String, EphemeralEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> ExtensionsRequest {
        serde_json::from_value(v).unwrap()
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_what_clients_send() {
        // matrix-rust-sdk's Element X configuration.
        let r = parse(json!({
            "to_device": { "enabled": true, "since": "12" },
            "e2ee": { "enabled": true },
            "account_data": { "enabled": true },
            "receipts": { "enabled": true, "rooms": ["*"] },
            "typing": { "enabled": true, "lists": ["all_rooms"], "rooms": [] },
            "thread_subscriptions": { "enabled": true, "limit": 10 },
        }));
        assert_eq!(r.to_device, ToDeviceRequest { enabled: true, since: Some("12".into()), limit: None });
        assert!(r.e2ee.enabled);
        assert!(r.account_data.enabled);
        // Omitted `lists`/`rooms` mean every list and every subscription (Synapse's defaults).
        assert_eq!(r.account_data.lists, Some(vec!["*".to_string()]));
        assert_eq!(r.account_data.rooms, Some(vec!["*".to_string()]));
        assert_eq!(r.receipts.lists, Some(vec!["*".to_string()]));
        assert_eq!(r.typing.lists, Some(vec!["all_rooms".to_string()]));
        assert_eq!(r.typing.rooms, Some(vec![]));
    }

    #[test]
    fn missing_null_and_malformed_sections_are_disabled() {
        let r = parse(json!({}));
        assert_eq!(r, ExtensionsRequest::default());
        assert!(!r.to_device.enabled && !r.e2ee.enabled && !r.account_data.enabled && !r.receipts.enabled && !r.typing.enabled);
        let r = parse(json!({ "to_device": null, "e2ee": "yes", "typing": { "enabled": "true" }, "receipts": [1] }));
        assert!(!r.to_device.enabled && !r.e2ee.enabled && !r.typing.enabled && !r.receipts.enabled);
        // A bad field costs only that field.
        let r = parse(json!({ "to_device": { "enabled": true, "since": 5, "limit": "x" }, "account_data": { "enabled": true, "lists": null } }));
        assert!(r.to_device.enabled);
        assert_eq!(r.to_device.since, None);
        assert_eq!(r.to_device.limit, None);
        assert_eq!(r.account_data.lists, None);
        assert_eq!(r.account_data.rooms, Some(vec!["*".to_string()]));
        // `extensions: null` in the request body.
        assert_eq!(serde_json::from_value::<ExtensionsRequest>(json!(null)).ok(), None);
    }

    #[test]
    fn scoping() {
        let lists: BTreeMap<String, Vec<String>> =
            [("all".to_string(), vec!["!a".to_string(), "!b".to_string()]), ("dms".to_string(), vec!["!d".to_string()])].into();
        let subs = vec!["!s".to_string(), "!b".to_string()];
        let scoped = |v: Value| {
            let mut r: ScopedRequest = serde_json::from_value(v).unwrap();
            r.enabled = true;
            r.rooms_in_scope(&lists, &subs)
        };
        assert_eq!(scoped(json!({})), set(&["!a", "!b", "!d", "!s"]));
        assert_eq!(scoped(json!({ "lists": ["dms"], "rooms": [] })), set(&["!d"]));
        assert_eq!(scoped(json!({ "lists": ["nope"], "rooms": ["!s", "!x"] })), set(&["!s"]));
        assert_eq!(scoped(json!({ "lists": [], "rooms": ["*"] })), set(&["!s", "!b"]));
        assert_eq!(scoped(json!({ "lists": null, "rooms": null })), set(&[]));
        // Disabled: nothing.
        assert!(ScopedRequest::default().rooms_in_scope(&lists, &subs).is_empty());
        assert_eq!(first_sent(&set(&["!a", "!b"]), true, &[]), set(&["!a", "!b"]));
        assert_eq!(first_sent(&set(&["!a", "!b"]), false, &["!b".into(), "!z".into()]), set(&["!b"]));
    }

    #[test]
    fn sections_keep_only_rooms_in_scope() {
        let scope = set(&["!a", "!b"]);
        let first = set(&["!b"]);
        let typing = typing_section(
            vec![("!a".into(), vec![]), ("!b".into(), vec![]), ("!c".into(), vec!["@u:x".into()]), ("!a".into(), vec!["@v:x".into()])],
            &scope,
            &first,
        )
        .unwrap();
        // `!a` stopped typing then started again: the last row wins; `!b` is new with nobody typing.
        assert_eq!(serde_json::to_value(&typing).unwrap(), json!({ "rooms": { "!a": { "type": "m.typing", "content": { "user_ids": ["@v:x"] } } } }));
        assert_eq!(typing_section(vec![("!b".into(), vec![])], &scope, &first), None);
        assert!(typing_section(vec![("!a".into(), vec![])], &scope, &first).is_some(), "an already-sent room is told typing stopped");

        let mut rc: BTreeMap<String, ReceiptContent> = BTreeMap::new();
        crate::core::sync::add_receipt(rc.entry("!a".into()).or_default(), "$e", "m.read", "@u:x", 3, "");
        crate::core::sync::add_receipt(rc.entry("!c".into()).or_default(), "$f", "m.read", "@u:x", 4, "");
        let r = receipts_section(rc, &scope).unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({ "rooms": { "!a": { "type": "m.receipt", "content": { "$e": { "m.read": { "@u:x": { "ts": 3 } } } } } } })
        );
        assert_eq!(receipts_section(BTreeMap::new(), &scope), None);

        let ev = |k: &str, n: u64| AccountDataEvent { kind: k.into(), content: json!({ "n": n }) };
        let ad = account_data_section(
            vec![ev("m.direct", 1)],
            vec![("!a".into(), ev("m.tag", 1)), ("!c".into(), ev("m.tag", 2)), ("!a".into(), ev("m.tag", 3)), ("!a".into(), ev("m.fully_read", 4))],
            &scope,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&ad).unwrap(),
            json!({
                "global": [{ "type": "m.direct", "content": { "n": 1 } }],
                "rooms": { "!a": [{ "type": "m.fully_read", "content": { "n": 4 } }, { "type": "m.tag", "content": { "n": 3 } }] },
            })
        );
        assert_eq!(account_data_section(vec![], vec![("!c".into(), ev("m.tag", 2))], &scope), None);
    }

    #[test]
    fn response_shape_and_emptiness() {
        let mut r = ExtensionsResponse::default();
        assert!(r.is_empty());
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({}));
        r.to_device = Some(ToDeviceResponse { next_batch: "7".into(), events: vec![] });
        r.e2ee =
            Some(E2eeResponse { device_lists: DeviceLists::default(), keys: KeyCounts::new(&BTreeMap::new(), vec!["signed_curve25519".into()]) });
        // Key counts and an empty to-device batch come every time: not worth waking for.
        assert!(r.is_empty());
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "to_device": { "next_batch": "7", "events": [] },
                "e2ee": {
                    "device_lists": { "changed": [], "left": [] },
                    "device_one_time_keys_count": { "signed_curve25519": 0 },
                    "device_unused_fallback_key_types": ["signed_curve25519"],
                    "org.matrix.msc2732.device_unused_fallback_key_types": ["signed_curve25519"],
                },
            })
        );
        if let Some(e) = r.e2ee.as_mut() {
            e.device_lists.changed.push("@u:x".into());
        }
        assert!(!r.is_empty());
        r.e2ee = None;
        r.to_device = Some(ToDeviceResponse { next_batch: "8".into(), events: vec![json!({ "type": "m.x" })] });
        assert!(!r.is_empty());
        r.to_device = None;
        r.typing = Some(RoomsEphemeral::default());
        assert!(r.is_empty());
        r.account_data =
            Some(AccountDataResponse { global: vec![AccountDataEvent { kind: "m.direct".into(), content: json!({}) }], rooms: BTreeMap::new() });
        assert!(!r.is_empty());
    }

    #[test]
    fn to_device_positions() {
        assert_eq!(to_device_since(None), 0);
        assert_eq!(to_device_since(Some("42")), 42);
        assert_eq!(to_device_since(Some("garbage")), 0);
        assert_eq!(to_device_since(Some("-1")), 0);
    }
}
