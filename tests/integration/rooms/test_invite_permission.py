"""Invite blocking (spec v1.18, "Invite permission", MSC4380): a user whose
`m.invite_permission_config` has `default_action: block` cannot be invited (403
`M_INVITE_BLOCKED` from /invite and from PUT m.room.member; createRoom leaves them out and
still creates the room), and invites already made are not served by /sync until the user
stops blocking."""

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user, qid
from rooms_helpers import create_room, membership_of, rpath
from sync_helpers import sync

CONFIG = "m.invite_permission_config"


def set_blocking(base, user, block: bool):
    content = {"default_action": "block"} if block else {}
    path = f"{CLIENT_V3}/user/{qid(user['user_id'])}/account_data/{CONFIG}"
    assert_ok(call(base, "PUT", path, content, token=user["access_token"]))


def test_invite_to_blocking_user_is_refused(base, user, user2):
    room = create_room(base, user["access_token"])
    set_blocking(base, user2, True)
    r = call(base, "POST", rpath(room, "invite"), {"user_id": user2["user_id"]}, token=user["access_token"])
    assert_error(r, 403, "M_INVITE_BLOCKED")
    r = call(base, "PUT", rpath(room, "state", "m.room.member", user2["user_id"]), {"membership": "invite"}, token=user["access_token"])
    assert_error(r, 403, "M_INVITE_BLOCKED")
    assert membership_of(base, user["access_token"], room, user2["user_id"]) is None
    # Unblocked (the same event without default_action): invites work again.
    set_blocking(base, user2, False)
    assert_ok(call(base, "POST", rpath(room, "invite"), {"user_id": user2["user_id"]}, token=user["access_token"]))
    assert membership_of(base, user["access_token"], room, user2["user_id"]) == "invite"


def test_create_room_leaves_out_blocking_invitees(base, user, user2):
    user3 = new_user(base)
    set_blocking(base, user2, True)
    r = call(base, "POST", f"{CLIENT_V3}/createRoom", {"invite": [user2["user_id"], user3["user_id"]]}, token=user["access_token"])
    room = assert_ok(r)["room_id"]
    assert membership_of(base, user["access_token"], room, user2["user_id"]) is None
    assert membership_of(base, user["access_token"], room, user3["user_id"]) == "invite"


def test_pending_invites_are_hidden_while_blocking(base, user, user2):
    room = create_room(base, user["access_token"])
    assert_ok(call(base, "POST", rpath(room, "invite"), {"user_id": user2["user_id"]}, token=user["access_token"]))
    assert room in sync(base, user2["access_token"]).get("rooms", {}).get("invite", {})
    set_blocking(base, user2, True)
    assert room not in sync(base, user2["access_token"]).get("rooms", {}).get("invite", {})
    # Other endpoints are not affected: the invite is still room state.
    assert membership_of(base, user["access_token"], room, user2["user_id"]) == "invite"
    set_blocking(base, user2, False)
    assert room in sync(base, user2["access_token"]).get("rooms", {}).get("invite", {})
