//! Power levels, built once: ruma's [`RoomPowerLevels`] from the room's `m.room.power_levels`
//! and `m.room.create` events with the room version's rules (spec: client-server-api,
//! `m.room.power_levels`; rooms/v12: creators, `additional_creators` included, have infinite
//! power when the version explicitly privileges them). Every "may X do Y" question about
//! levels is answered here.

use ruma::events::room::power_levels::{PowerLevelAction, RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource, UserPowerLevel};
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::state_res::events::RoomCreateEvent;
use ruma::{int, Int, OwnedUserId, UserId};

use super::pdu::Pdu;
use crate::err;
use crate::error::Result;

/// A room's effective power levels.
#[derive(Clone, Debug)]
pub struct PowerLevels {
    levels: RoomPowerLevels,
}

/// The creators of a room: the create event's sender (its `creator` field before v11) and,
/// where the version has them, its `additional_creators`.
pub fn creators(rules: &RoomVersionRules, create: &Pdu) -> Result<Vec<OwnedUserId>> {
    let set = RoomCreateEvent::new(create.clone()).creators(&rules.authorization).map_err(|e| err!(Unknown, "bad m.room.create: {e}"))?;
    Ok(set.into_iter().collect())
}

impl PowerLevels {
    /// From the room's create event and its power-levels event, if any. Without a
    /// power-levels event the spec's defaults apply (creators at 100 before v12), and
    /// `state_default` is 0 ("0 if there is no `m.room.power_levels` event at all").
    pub fn new(rules: &RoomVersionRules, create: Option<&Pdu>, power_levels: Option<&Pdu>) -> Result<PowerLevels> {
        let creators = match create {
            Some(c) => creators(rules, c)?,
            None => vec![],
        };
        let source = match power_levels {
            Some(p) => RoomPowerLevelsSource::Original(
                serde_json::from_str::<RoomPowerLevelsEventContent>(p.content.get())
                    .map_err(|e| err!(Unknown, "bad m.room.power_levels content: {e}"))?,
            ),
            None => RoomPowerLevelsSource::None,
        };
        let mut levels = RoomPowerLevels::new(source, &rules.authorization, creators);
        if power_levels.is_none() {
            levels.state_default = int!(0);
        }
        Ok(PowerLevels { levels })
    }

    /// The user's level: infinite for privileged creators (room v12 on).
    pub fn user(&self, user: &UserId) -> UserPowerLevel {
        self.levels.for_user(user)
    }

    /// The user's level as a number; a privileged creator counts as `i64::MAX`.
    pub fn user_level(&self, user: &UserId) -> i64 {
        match self.user(user) {
            UserPowerLevel::Int(i) => i.into(),
            _ => i64::MAX,
        }
    }

    /// The level `users_default` gives everyone not listed.
    pub fn users_default(&self) -> i64 {
        self.levels.users_default.into()
    }

    /// The level needed for message events not listed in `events`.
    pub fn events_default(&self) -> i64 {
        self.levels.events_default.into()
    }

    /// The level needed to send a state event of this type.
    pub fn state_level(&self, kind: &str) -> i64 {
        self.levels.for_state(StateEventType::from(kind)).into()
    }

    /// The level needed to send a message (non-state) event of this type.
    pub fn message_level(&self, kind: &str) -> i64 {
        self.levels.events.get(&TimelineEventType::from(kind)).copied().unwrap_or(self.levels.events_default).into()
    }

    /// The level needed for an action (`invite`, `kick`, `ban`, `redact`…).
    pub fn action_level(&self, action: PowerLevelAction) -> i64 {
        self.levels.for_action(action).into()
    }

    fn at_least(&self, user: &UserId, needed: Int) -> bool {
        self.user(user) >= needed
    }

    pub fn can_send_state(&self, user: &UserId, kind: &str) -> bool {
        self.at_least(user, self.levels.for_state(StateEventType::from(kind)))
    }

    pub fn can_send_message(&self, user: &UserId, kind: &str) -> bool {
        let needed = self.levels.events.get(&TimelineEventType::from(kind)).copied().unwrap_or(self.levels.events_default);
        self.at_least(user, needed)
    }

    pub fn can_invite(&self, user: &UserId) -> bool {
        self.levels.user_can_invite(user)
    }

    pub fn can_kick(&self, user: &UserId) -> bool {
        self.levels.user_can_kick(user)
    }

    pub fn can_ban(&self, user: &UserId) -> bool {
        self.levels.user_can_ban(user)
    }

    /// Whether the user may redact other users' events (their own they always may).
    pub fn can_redact_others(&self, user: &UserId) -> bool {
        self.at_least(user, self.levels.redact)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::room::tests::{new_event, user, Branch, TestRoom};

    /// A room of `version` created by alice (with `extra` in the create content), alice and
    /// bob joined, and the given power levels (if any).
    fn make(version: &str, extra: serde_json::Value, pl: Option<serde_json::Value>) -> (TestRoom, Branch) {
        let mut room = TestRoom::new(version);
        let mut create = json!({ "room_version": version });
        if !room.rules.authorization.use_room_create_sender {
            create["creator"] = json!("@alice");
        }
        if let (Some(o), Some(e)) = (create.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let (_, b) = room.send(&Branch::default(), &new_event("alice", "m.room.create", Some(""), create), None).unwrap();
        let (_, b) = room.send(&b, &new_event("alice", "m.room.member", Some("@alice"), json!({"membership": "join"})), None).unwrap();
        let b = match pl {
            Some(pl) => room.send(&b, &new_event("alice", "m.room.power_levels", Some(""), pl), None).unwrap().1,
            None => b,
        };
        (room, b)
    }

    fn levels(room: &TestRoom, b: &Branch) -> PowerLevels {
        let create = b.get("m.room.create", "").map(|e| room.event(e));
        let pl = b.get("m.room.power_levels", "").map(|e| room.event(e));
        PowerLevels::new(&room.rules, create, pl).unwrap()
    }

    #[test]
    fn v1_to_v10_defaults_without_power_levels() {
        for v in ["3", "6", "10"] {
            let (room, b) = make(v, json!({}), None);
            let pl = levels(&room, &b);
            assert_eq!(pl.user_level(&user("alice")), 100, "v{v}: the creator has 100 without an event");
            assert_eq!(pl.user_level(&user("bob")), 0);
            assert_eq!(pl.state_level("m.room.name"), 0, "v{v}: state_default is 0 without an event");
            assert!(pl.can_send_state(&user("bob"), "m.room.name"));
            assert!(!pl.can_kick(&user("bob")));
            assert!(pl.can_invite(&user("bob")));
            assert!(pl.can_redact_others(&user("alice")));
        }
    }

    #[test]
    fn v6_levels_from_the_event_strings_allowed() {
        let content = json!({"users": {"@alice": 100, "@bob": "50"}, "events": {"m.room.name": 75}, "invite": 60, "redact": 40});
        let (room, b) = make("6", json!({}), Some(content));
        let pl = levels(&room, &b);
        assert_eq!(pl.user_level(&user("bob")), 50);
        assert_eq!(pl.state_level("m.room.name"), 75);
        assert_eq!(pl.state_level("m.room.topic"), 50);
        assert!(!pl.can_send_state(&user("bob"), "m.room.name"));
        assert!(pl.can_send_state(&user("bob"), "m.room.topic"));
        assert!(!pl.can_invite(&user("bob")));
        assert!(pl.can_redact_others(&user("bob")));
        assert!(pl.can_send_message(&user("carol"), "m.room.message"));
    }

    #[test]
    fn v11_creator_is_the_sender_and_not_infinite() {
        let (room, b) = make("11", json!({}), Some(json!({"users": {"@alice": 100}, "users_default": 10})));
        let pl = levels(&room, &b);
        assert_eq!(pl.user(&user("alice")), UserPowerLevel::Int(int!(100)));
        assert_eq!(pl.user_level(&user("carol")), 10);
        assert_eq!(pl.users_default(), 10);
        // Without power levels, the sender of the create event has 100.
        let (room, b) = make("11", json!({}), None);
        assert_eq!(levels(&room, &b).user_level(&user("alice")), 100);
    }

    #[test]
    fn v12_creators_and_additional_creators_are_infinite() {
        let (room, b) =
            make("12", json!({"additional_creators": ["@bob"]}), Some(json!({"users": {"@carol": 100}, "state_default": 100, "kick": 100})));
        let pl = levels(&room, &b);
        for u in ["alice", "bob"] {
            assert_eq!(pl.user(&user(u)), UserPowerLevel::Infinite, "{u} is a creator");
            assert!(pl.can_send_state(&user(u), "m.room.tombstone"));
            assert!(pl.can_kick(&user(u)));
        }
        assert_eq!(pl.user_level(&user("carol")), 100);
        assert!(pl.user(&user("alice")) > pl.user(&user("carol")));
        assert!(!pl.can_send_state(&user("dave"), "m.room.name"));
        assert_eq!(creators(&room.rules, room.event(b.get("m.room.create", "").unwrap())).unwrap().len(), 2);
    }

    #[test]
    fn additional_creators_do_not_count_before_v12() {
        let (room, b) = make("11", json!({"additional_creators": ["@bob"]}), None);
        let pl = levels(&room, &b);
        assert_eq!(pl.user_level(&user("bob")), 0);
    }
}
