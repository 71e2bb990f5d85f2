//! Sliding sync extensions (MSC3885 to-device, MSC3884 e2ee, MSC3959 account data, MSC3960
//! receipts, MSC3961 typing): their request and response shapes, as matrix-rust-sdk and
//! matrix-js-sdk send them and Synapse answers, and the scoping rule (`lists`/`rooms`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::core::sync::{AccountDataEvent, DeviceLists, EphemeralEvent, KeyCounts};

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
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct ToDeviceRequest {
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    #[serde(deserialize_with = "lenient")]
    pub since: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub limit: Option<u64>,
}

impl Default for ToDeviceRequest {
    fn default() -> Self {
        ToDeviceRequest { enabled: false, since: None, limit: None }
    }
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
