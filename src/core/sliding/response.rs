//! The response as the unstable endpoint answers it (no `ops`; the client orders rooms by
//! `bump_stamp`). Omitted fields of a room mean "unchanged" unless `initial` is set.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::extensions::ExtensionsResponse;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ListResult {
    pub count: u64,
}

/// A member shown when the room has no name (MSC4186 `Hero`).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Hero {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displayname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// MSC4186 `RoomResult`.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct RoomResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heroes: Option<Vec<Hero>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_dm: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expanded_timeline: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_state: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_live: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bump_stamp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlight_count: Option<u64>,
    /// Invites and knocks: under the name clients read today and the MSC's newer one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_state: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripped_state: Option<Vec<Value>>,
}

/// MSC4186 `StateStub`: the state at `(kind, key)` was deleted (no `content`, which is how a
/// client tells it from an event).
pub fn state_stub(kind: &str, state_key: &str) -> Value {
    serde_json::json!({ "type": kind, "state_key": state_key })
}

/// The response body.
#[derive(Serialize, Default)]
pub struct SlidingResponse {
    pub pos: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    pub lists: BTreeMap<String, ListResult>,
    pub rooms: BTreeMap<String, RoomResult>,
    pub extensions: ExtensionsResponse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn omitted_fields_stay_off_the_wire() {
        let mut r = SlidingResponse { pos: "5".into(), ..Default::default() };
        r.lists.insert("all".into(), ListResult { count: 2 });
        r.rooms.insert("!a".into(), RoomResult { initial: Some(true), bump_stamp: Some(3), ..Default::default() });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["pos"], "5");
        assert_eq!(v["lists"], json!({ "all": { "count": 2 } }));
        assert_eq!(v["rooms"], json!({ "!a": { "initial": true, "bump_stamp": 3 } }));
        assert!(v.get("txn_id").is_none());
    }

    #[test]
    fn a_state_stub_has_no_content() {
        assert_eq!(state_stub("m.room.topic", ""), json!({ "type": "m.room.topic", "state_key": "" }));
    }
}
