"""User IDs named by clients are validated (spec: appendices, "User Identifiers" and
"Historical User IDs"): an empty localpart, control characters, bidi overrides,
whitespace, non-ASCII, a missing sigil or server part are `400 M_INVALID_PARAM` on every
endpoint that takes a user ID, and nothing is written for them — in particular no
`m.room.member` state. Historical (non-strict but printable ASCII) IDs stay accepted.

Also: invites carry the invitee's display name and avatar (as Synapse's do), and a knock
the knocker's."""

import uuid

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, qid, set_displayname
from rooms_helpers import create_room, create_room_raw, full_state, invite, membership_raw, put_state_raw, state_map


def bad_ids(sn: str) -> list[str]:
    return [
        f"@:{sn}",
        f"@a\u0001b:{sn}",
        f"@a\u202eb:{sn}",
        f"@a b:{sn}",
        f"@\u00e9lan:{sn}",
        f"nosigil:{sn}",
        "@noserverpart",
        f"@{'a' * 250}:{sn}",
    ]


def member_keys(base, token, room_id) -> set[str]:
    return {e["state_key"] for e in full_state(base, token, room_id) if e["type"] == "m.room.member"}


def test_invite_and_member_state_refuse_invalid_user_ids(base, user, server_name):
    tok = user["access_token"]
    room = create_room(base, tok)
    before = member_keys(base, tok, room)
    for bad in bad_ids(server_name):
        assert_error(membership_raw(base, tok, room, "invite", {"user_id": bad}), 400, "M_INVALID_PARAM")
        r = put_state_raw(base, tok, room, "m.room.member", {"membership": "invite"}, state_key=bad)
        assert_error(r, 400, "M_INVALID_PARAM")
    assert member_keys(base, tok, room) == before


@pytest.mark.parametrize("action", ["kick", "ban", "unban"])
def test_kick_ban_unban_refuse_invalid_user_ids(base, user, server_name, action):
    tok = user["access_token"]
    room = create_room(base, tok)
    before = member_keys(base, tok, room)
    for bad in bad_ids(server_name):
        assert_error(membership_raw(base, tok, room, action, {"user_id": bad}), 400, "M_INVALID_PARAM")
    assert member_keys(base, tok, room) == before


def test_historical_user_id_is_still_accepted(base, user, server_name):
    """Printable ASCII outside the strict grammar (upper case) is a historical ID the spec
    says servers must accept."""
    tok = user["access_token"]
    room = create_room(base, tok)
    old = f"@Old.User!:{server_name}"
    invite(base, tok, room, old)
    assert state_map(base, tok, room)[("m.room.member", old)]["content"]["membership"] == "invite"


def test_create_room_refuses_invalid_invitees_and_power_levels(base, user, server_name):
    tok = user["access_token"]
    for bad in bad_ids(server_name):
        assert_error(create_room_raw(base, tok, {"invite": [bad]}), 400, "M_INVALID_PARAM")
    r = create_room_raw(base, tok, {"power_level_content_override": {"users": {user["user_id"]: 100, f"@:{server_name}": 50}}})
    assert_error(r, 400, "M_INVALID_PARAM")


def test_additional_creators_refuse_invalid_user_ids(base, user, server_name):
    tok = user["access_token"]
    bad = f"@a b:{server_name}"
    r = create_room_raw(base, tok, {"room_version": "12", "creation_content": {"additional_creators": [bad]}})
    assert_error(r, 400, "M_INVALID_PARAM")
    room = create_room(base, tok)
    r = call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room)}/upgrade", {"new_version": "12", "additional_creators": [bad]}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")
    assert ("m.room.tombstone", "") not in state_map(base, tok, room)


def test_power_levels_refuse_invalid_user_ids(base, user, server_name):
    tok = user["access_token"]
    room = create_room(base, tok)
    pl = state_map(base, tok, room)[("m.room.power_levels", "")]["content"]
    for bad in (f"@:{server_name}", f"@a\u202eb:{server_name}", "nosigil"):
        content = {**pl, "users": {**pl["users"], bad: 50}}
        assert_error(put_state_raw(base, tok, room, "m.room.power_levels", content), 400, "M_INVALID_PARAM")
    assert state_map(base, tok, room)[("m.room.power_levels", "")]["content"] == pl


def test_other_user_id_endpoints_refuse_invalid_ids(base, user, server_name):
    tok = user["access_token"]
    for bad in (f"@a b:{server_name}", f"@a\u202eb:{server_name}", f"@:{server_name}"):
        q = qid(bad)
        assert_error(call(base, "GET", f"{CLIENT_V3}/profile/{q}"), 400, "M_INVALID_PARAM")
        assert_error(call(base, "GET", f"{CLIENT_V3}/presence/{q}/status", token=tok), 400, "M_INVALID_PARAM")
        assert_error(call(base, "POST", f"{CLIENT_V3}/users/{q}/report", {"reason": "x"}, token=tok), 400, "M_INVALID_PARAM")
        r = call(base, "PUT", f"{CLIENT_V3}/sendToDevice/m.test/{uuid.uuid4().hex}", {"messages": {bad: {"*": {"a": 1}}}}, token=tok)
        assert_error(r, 400, "M_INVALID_PARAM")
        # A key query skips what cannot be a user.
        body = assert_ok(call(base, "POST", f"{CLIENT_V3}/keys/query", {"device_keys": {bad: [], user["user_id"]: []}}, token=tok))
        assert bad not in body["device_keys"]


# ------------------------------------------------------------------ profile in invites


def set_avatar(base, u, url):
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/profile/{qid(u['user_id'])}/avatar_url", {"avatar_url": url}, token=u["access_token"]))


def test_invite_carries_the_invitees_profile(base, user, user2, server_name):
    set_displayname(base, user2, "Bob Example")
    set_avatar(base, user2, f"mxc://{server_name}/bobface")
    room = create_room(base, user["access_token"])
    invite(base, user["access_token"], room, user2["user_id"])
    c = state_map(base, user["access_token"], room)[("m.room.member", user2["user_id"])]["content"]
    assert c == {"membership": "invite", "displayname": "Bob Example", "avatar_url": f"mxc://{server_name}/bobface"}, c
    # The inviter's /sync has it too.
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", token=user["access_token"], params={"timeout": "0"}))
    evs = body["rooms"]["join"][room]["timeline"]["events"] + body["rooms"]["join"][room]["state"]["events"]
    ev = [e for e in evs if e["type"] == "m.room.member" and e["state_key"] == user2["user_id"]]
    assert ev and ev[-1]["content"]["displayname"] == "Bob Example", evs
    # A createRoom invite as well.
    room2 = assert_ok(create_room_raw(base, user["access_token"], {"invite": [user2["user_id"]], "is_direct": True}))["room_id"]
    c = state_map(base, user["access_token"], room2)[("m.room.member", user2["user_id"])]["content"]
    assert c["displayname"] == "Bob Example" and c["is_direct"] is True and c["avatar_url"].endswith("/bobface"), c


def test_invite_of_user_without_profile_or_unknown_user(base, user, server_name):
    room = create_room(base, user["access_token"])
    ghost = f"@ghost{uuid.uuid4().hex[:8]}:{server_name}"
    invite(base, user["access_token"], room, ghost)
    assert state_map(base, user["access_token"], room)[("m.room.member", ghost)]["content"] == {"membership": "invite"}


def test_member_state_put_keeps_client_content(base, user, user2):
    """PUT /state/m.room.member is the client's own content: the server adds nothing."""
    set_displayname(base, user2, "Bob Example")
    room = create_room(base, user["access_token"])
    r = put_state_raw(base, user["access_token"], room, "m.room.member", {"membership": "invite"}, state_key=user2["user_id"])
    assert_ok(r)
    assert state_map(base, user["access_token"], room)[("m.room.member", user2["user_id"])]["content"] == {"membership": "invite"}


def test_knock_carries_the_knockers_profile(base, user, user2):
    set_displayname(base, user2, "Knocker")
    room = create_room(base, user["access_token"])
    assert_ok(put_state_raw(base, user["access_token"], room, "m.room.join_rules", {"join_rule": "knock"}))
    assert_ok(call(base, "POST", f"{CLIENT_V3}/knock/{qid(room)}", {}, token=user2["access_token"]))
    c = state_map(base, user["access_token"], room)[("m.room.member", user2["user_id"])]["content"]
    assert c["membership"] == "knock" and c["displayname"] == "Knocker", c
