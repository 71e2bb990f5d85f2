"""Membership: join, invite, leave, forget, kick, ban, unban, knock; join rules.

Every refused action must be 403 M_FORBIDDEN and leave the member state unchanged.
"""

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_forbidden, assert_ok, call, new_user, qid
from rooms_helpers import (
    create_room,
    invite,
    join,
    join_raw,
    joined_rooms,
    leave,
    membership_of,
    membership_raw,
    room_pair,
    send_text,
    state_map,
    txn,
)


def member_content(base, token, room_id, user_id):
    ev = state_map(base, token, room_id).get(("m.room.member", user_id))
    return ev["content"] if ev else None


@pytest.fixture
def user3(base):
    return new_user(base)


# ---------------------------------------------------------------- join


def test_join_public_room_by_id_both_endpoints(base, user, user2, user3):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    assert join(base, user2["access_token"], room_id) == room_id
    r = membership_raw(base, user3["access_token"], room_id, "join")
    assert assert_ok(r)["room_id"] == room_id
    for u in (user2, user3):
        assert membership_of(base, user["access_token"], room_id, u["user_id"]) == "join"
        assert room_id in joined_rooms(base, u["access_token"])


def test_join_by_alias(base, user, user2, server_name):
    local = "j-" + txn()[:10]
    room_id = create_room(base, user["access_token"], preset="public_chat", room_alias_name=local)
    assert join(base, user2["access_token"], f"#{local}:{server_name}") == room_id
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_join_twice_is_idempotent(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    join(base, user2["access_token"], room_id)
    assert join(base, user2["access_token"], room_id) == room_id
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_join_with_reason(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    assert_ok(join_raw(base, user2["access_token"], room_id, {"reason": "hello there"}))
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c["membership"] == "join" and c.get("reason") == "hello there", c


def test_join_member_event_has_profile(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    join(base, user2["access_token"], room_id)
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c.get("displayname") == user2["username"], c


def test_join_invite_only_room_refused(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="private_chat")
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "join"))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) is None
    assert room_id not in joined_rooms(base, user2["access_token"])


def test_join_unknown_room_and_alias(base, user, server_name):
    r = join_raw(base, user["access_token"], f"!doesnotexist{txn()[:8]}:{server_name}")
    assert r.status_code == 404, r.text
    r = join_raw(base, user["access_token"], f"#nope-{txn()[:8]}:{server_name}")
    assert_error(r, 404, "M_NOT_FOUND")


def test_join_requires_auth(base, user):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    r = call(base, "POST", f"{CLIENT_V3}/join/{qid(room_id)}", {})
    assert_error(r, 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------- invite


def test_invite_then_join(base, user, user2):
    room_id = create_room(base, user["access_token"])
    invite(base, user["access_token"], room_id, user2["user_id"])
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c["membership"] == "invite"
    join(base, user2["access_token"], room_id)
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_invite_with_reason(base, user, user2):
    room_id = create_room(base, user["access_token"])
    assert_ok(membership_raw(base, user["access_token"], room_id, "invite",
                             {"user_id": user2["user_id"], "reason": "come"}))
    assert member_content(base, user["access_token"], room_id, user2["user_id"])["reason"] == "come"


def test_invite_by_non_member_refused(base, user, user2, user3):
    room_id = create_room(base, user["access_token"])
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "invite",
                             {"user_id": user3["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user3["user_id"]) is None


def test_invite_needs_invite_power(base, user, user2, user3):
    room_id = create_room(base, user["access_token"], preset="public_chat",
                          power_level_content_override={"invite": 50})
    join(base, user2["access_token"], room_id)
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "invite",
                             {"user_id": user3["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user3["user_id"]) is None


def test_invite_already_joined_refused(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    join(base, user2["access_token"], room_id)
    assert_forbidden(membership_raw(base, user["access_token"], room_id, "invite",
                             {"user_id": user2["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_invite_missing_user_id(base, user):
    room_id = create_room(base, user["access_token"])
    r = membership_raw(base, user["access_token"], room_id, "invite", {})
    assert_error(r, 400, ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"))


def test_invite_unknown_room(base, user, user2, server_name):
    r = membership_raw(base, user["access_token"], f"!nope{txn()[:8]}:{server_name}", "invite",
                       {"user_id": user2["user_id"]})
    assert r.status_code in (403, 404), r.text


def test_reject_invite_by_leaving(base, user, user2):
    room_id = create_room(base, user["access_token"])
    invite(base, user["access_token"], room_id, user2["user_id"])
    leave(base, user2["access_token"], room_id)
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "leave"
    assert_forbidden(join_raw(base, user2["access_token"], room_id))


# ---------------------------------------------------------------- leave / forget


def test_leave(base, user, user2):
    room_id = room_pair(base, user, user2)
    assert_ok(membership_raw(base, user2["access_token"], room_id, "leave", {"reason": "bye"}))
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c["membership"] == "leave" and c.get("reason") == "bye", c
    assert room_id not in joined_rooms(base, user2["access_token"])
    # a user who left can no longer send
    r = call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/send/m.room.message/{txn()}",
             {"msgtype": "m.text", "body": "x"}, token=user2["access_token"])
    assert_forbidden(r)


def test_leave_unknown_room(base, user, server_name):
    r = membership_raw(base, user["access_token"], f"!nope{txn()[:8]}:{server_name}", "leave")
    assert r.status_code in (403, 404), r.text


def test_forget(base, user, user2):
    room_id = room_pair(base, user, user2)
    assert_error(membership_raw(base, user2["access_token"], room_id, "forget"), 400, "M_UNKNOWN")
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"
    leave(base, user2["access_token"], room_id)
    assert assert_ok(membership_raw(base, user2["access_token"], room_id, "forget")) == {}
    # forgetting does not change the room state
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "leave"
    # and the user can rejoin a public room afterwards
    join(base, user2["access_token"], room_id)


def test_forget_never_joined_is_404(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    r = membership_raw(base, user2["access_token"], room_id, "forget")
    assert_error(r, 404, "M_NOT_FOUND")


# ---------------------------------------------------------------- kick


def test_kick(base, user, user2):
    room_id = room_pair(base, user, user2)
    assert_ok(membership_raw(base, user["access_token"], room_id, "kick",
                             {"user_id": user2["user_id"], "reason": "spam"}))
    ev = state_map(base, user["access_token"], room_id)[("m.room.member", user2["user_id"])]
    assert ev["content"]["membership"] == "leave"
    assert ev["content"].get("reason") == "spam"
    assert ev["sender"] == user["user_id"]
    assert room_id not in joined_rooms(base, user2["access_token"])
    # kicked (not banned): may rejoin a public room
    join(base, user2["access_token"], room_id)


def test_kick_without_power_refused(base, user, user2, user3):
    room_id = room_pair(base, user, user2)
    join(base, user3["access_token"], room_id)
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "kick",
                             {"user_id": user3["user_id"]}))
    # nor may a PL-0 user kick the creator
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "kick",
                             {"user_id": user["user_id"]}))
    sm = state_map(base, user["access_token"], room_id)
    assert sm[("m.room.member", user3["user_id"])]["content"]["membership"] == "join"
    assert sm[("m.room.member", user["user_id"])]["content"]["membership"] == "join"


def test_kick_rescinds_invite(base, user, user2):
    room_id = create_room(base, user["access_token"])
    invite(base, user["access_token"], room_id, user2["user_id"])
    assert_ok(membership_raw(base, user["access_token"], room_id, "kick", {"user_id": user2["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "leave"
    assert_forbidden(join_raw(base, user2["access_token"], room_id))


# ---------------------------------------------------------------- ban / unban


def test_ban_and_unban(base, user, user2):
    room_id = room_pair(base, user, user2)
    assert_ok(membership_raw(base, user["access_token"], room_id, "ban",
                             {"user_id": user2["user_id"], "reason": "bad"}))
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c["membership"] == "ban" and c.get("reason") == "bad", c
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "ban"
    # banning again is harmless; invite of a banned user is refused
    assert_forbidden(membership_raw(base, user["access_token"], room_id, "invite",
                             {"user_id": user2["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "ban"
    assert_ok(membership_raw(base, user["access_token"], room_id, "unban",
                             {"user_id": user2["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "leave"
    join(base, user2["access_token"], room_id)


def test_ban_user_never_in_room(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    assert_ok(membership_raw(base, user["access_token"], room_id, "ban", {"user_id": user2["user_id"]}))
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "ban"


def test_ban_without_power_refused(base, user, user2, user3):
    room_id = room_pair(base, user, user2)
    join(base, user3["access_token"], room_id)
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "ban", {"user_id": user3["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user3["user_id"]) == "join"


def test_unban_not_banned_refused(base, user, user2):
    room_id = room_pair(base, user, user2)
    assert_forbidden(membership_raw(base, user["access_token"], room_id, "unban", {"user_id": user2["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_unban_without_power_refused(base, user, user2, user3):
    room_id = room_pair(base, user, user2)
    assert_ok(membership_raw(base, user["access_token"], room_id, "ban", {"user_id": user3["user_id"]}))
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "unban", {"user_id": user3["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user3["user_id"]) == "ban"


def test_moderator_can_kick_and_ban(base, user, user2, user3):
    room_id = create_room(base, user["access_token"], preset="public_chat",
                          power_level_content_override={"users": {user2["user_id"]: 50}})
    join(base, user2["access_token"], room_id)
    join(base, user3["access_token"], room_id)
    assert_ok(membership_raw(base, user2["access_token"], room_id, "kick", {"user_id": user3["user_id"]}))
    assert_ok(membership_raw(base, user2["access_token"], room_id, "ban", {"user_id": user3["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user3["user_id"]) == "ban"
    # but cannot ban the creator (higher power)
    assert_forbidden(membership_raw(base, user2["access_token"], room_id, "ban", {"user_id": user["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user["user_id"]) == "join"


# ---------------------------------------------------------------- knock


def test_knock_flow(base, user, user2):
    room_id = create_room(base, user["access_token"], room_version="12",
                          initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    r = call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {"reason": "let me in"},
             token=user2["access_token"])
    assert assert_ok(r)["room_id"] == room_id
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c["membership"] == "knock" and c.get("reason") == "let me in", c
    invite(base, user["access_token"], room_id, user2["user_id"])
    join(base, user2["access_token"], room_id)
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_knock_by_alias(base, user, user2, server_name):
    local = "k-" + txn()[:10]
    room_id = create_room(base, user["access_token"], room_alias_name=local,
                          initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    r = call(base, "POST", f"{CLIENT_V3}/knock/{qid('#' + local + ':' + server_name)}", {},
             token=user2["access_token"])
    assert assert_ok(r)["room_id"] == room_id
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "knock"


def test_knock_refused_where_not_allowed(base, user, user2):
    invite_only = create_room(base, user["access_token"], preset="private_chat")
    public = create_room(base, user["access_token"], preset="public_chat")
    for room_id in (invite_only, public):
        r = call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {}, token=user2["access_token"])
        assert_forbidden(r)
        assert membership_of(base, user["access_token"], room_id, user2["user_id"]) is None


def test_knock_when_joined_refused(base, user):
    room_id = create_room(base, user["access_token"],
                          initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    r = call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {}, token=user["access_token"])
    assert_forbidden(r)
    assert membership_of(base, user["access_token"], room_id, user["user_id"]) == "join"


def test_knock_unknown_room(base, user, server_name):
    r = call(base, "POST", f"{CLIENT_V3}/knock/{qid('#nope-' + txn()[:8] + ':' + server_name)}", {},
             token=user["access_token"])
    assert_error(r, 404, "M_NOT_FOUND")


# ---------------------------------------------------------------- restricted


def test_restricted_join(base, user, user2, user3):
    space = create_room(base, user["access_token"], preset="public_chat")
    room_id = create_room(
        base, user["access_token"],
        initial_state=[{"type": "m.room.join_rules", "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": space}]}}],
    )
    # not in the allowed room: refused
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) is None
    # joined to the allowed room: may join
    join(base, user2["access_token"], space)
    assert join(base, user2["access_token"], room_id) == room_id
    c = member_content(base, user["access_token"], room_id, user2["user_id"])
    assert c["membership"] == "join"
    assert c.get("join_authorised_via_users_server") == user["user_id"], c
    # user3 still refused
    assert_forbidden(membership_raw(base, user3["access_token"], room_id, "join"))
    assert membership_of(base, user["access_token"], room_id, user3["user_id"]) is None


def test_restricted_join_by_invite(base, user, user2):
    space = create_room(base, user["access_token"], preset="public_chat")
    room_id = create_room(
        base, user["access_token"],
        initial_state=[{"type": "m.room.join_rules", "content": {
            "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}],
    )
    invite(base, user["access_token"], room_id, user2["user_id"])
    join(base, user2["access_token"], room_id)
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "join"


def test_knock_restricted(base, user, user2):
    space = create_room(base, user["access_token"], preset="private_chat")
    room_id = create_room(
        base, user["access_token"],
        initial_state=[{"type": "m.room.join_rules", "content": {
            "join_rule": "knock_restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}],
    )
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    r = call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {}, token=user2["access_token"])
    assert_ok(r)
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "knock"


# ---------------------------------------------------------------- joined_rooms


def test_joined_rooms_tracks_membership(base, user, user2):
    a = create_room(base, user["access_token"], preset="public_chat")
    b = create_room(base, user["access_token"], preset="public_chat")
    assert set(joined_rooms(base, user2["access_token"])) == set()
    join(base, user2["access_token"], a)
    join(base, user2["access_token"], b)
    assert set(joined_rooms(base, user2["access_token"])) == {a, b}
    leave(base, user2["access_token"], a)
    assert set(joined_rooms(base, user2["access_token"])) == {b}
    send_text(base, user2["access_token"], b, "still here")


def test_joined_rooms_requires_auth(base):
    assert_error(call(base, "GET", f"{CLIENT_V3}/joined_rooms"), 401, "M_MISSING_TOKEN")


def test_kick_non_member_refused(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    assert_forbidden(membership_raw(base, user["access_token"], room_id, "kick", {"user_id": user2["user_id"]}))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) is None


def test_ban_removes_from_joined_lists(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    assert_ok(membership_raw(base, tok, room_id, "ban", {"user_id": user2["user_id"]}))
    joined = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room_id)}/joined_members",
                            token=tok))["joined"]
    assert set(joined) == {user["user_id"]}
    assert room_id not in joined_rooms(base, user2["access_token"])
    r = call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/send/m.room.message/{txn()}",
             {"msgtype": "m.text", "body": "banned"}, token=user2["access_token"])
    assert_forbidden(r)


def test_invitee_cannot_send_or_read_state(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, name="invited only")
    invite(base, tok, room_id, user2["user_id"])
    r = call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/send/m.room.message/{txn()}",
             {"msgtype": "m.text", "body": "not yet"}, token=user2["access_token"])
    assert_forbidden(r)
    assert_forbidden(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room_id)}/state", token=user2["access_token"]))


def test_leave_then_rejoin_invite_only_refused(base, user, user2):
    room_id = create_room(base, user["access_token"])
    invite(base, user["access_token"], room_id, user2["user_id"])
    join(base, user2["access_token"], room_id)
    leave(base, user2["access_token"], room_id)
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "leave"


def test_membership_body_errors(base, user):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    for action in ("kick", "ban", "unban"):
        r = membership_raw(base, user["access_token"], room_id, action, {})
        assert_error(r, 400, ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"))
        r = membership_raw(base, user["access_token"], room_id, action, {"user_id": "not-a-user-id"})
        assert r.status_code == 400, (action, r.text)


def test_reinvite_is_allowed(base, user, user2):
    room_id = create_room(base, user["access_token"])
    invite(base, user["access_token"], room_id, user2["user_id"])
    invite(base, user["access_token"], room_id, user2["user_id"])
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "invite"


def test_knock_then_join_without_invite_refused(base, user, user2):
    room_id = create_room(base, user["access_token"],
                          initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    assert_ok(call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {}, token=user2["access_token"]))
    assert_forbidden(join_raw(base, user2["access_token"], room_id))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "knock"


def test_banned_user_cannot_knock(base, user, user2):
    room_id = create_room(base, user["access_token"],
                          initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    assert_ok(membership_raw(base, user["access_token"], room_id, "ban", {"user_id": user2["user_id"]}))
    assert_forbidden(call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {}, token=user2["access_token"]))
    assert membership_of(base, user["access_token"], room_id, user2["user_id"]) == "ban"
