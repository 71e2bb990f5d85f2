"""POST /createRoom: presets, visibility, initial state, invites, overrides, room versions."""

import re

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, describe, new_user, qid
from rooms_helpers import (
    EVENT_ID_RE,
    ROOM_ID_V12_RE,
    create_room,
    create_room_raw,
    full_state,
    get_state,
    get_state_raw,
    joined_rooms,
    state_map,
    txn,
)


def content(sm, etype, key=""):
    ev = sm.get((etype, key))
    assert ev is not None, f"no {etype}/{key!r} in state: {sorted(sm)}"
    return ev["content"]


def public_room_ids(base, token=None, **params):
    ids = []
    since = None
    for _ in range(200):
        p = dict(params, limit=100)
        if since:
            p["since"] = since
        body = assert_ok(call(base, "GET", f"{CLIENT_V3}/publicRooms", token=token, params=p))
        ids += [c["room_id"] for c in body["chunk"]]
        since = body.get("next_batch")
        if not since:
            return ids
    raise AssertionError("publicRooms did not end")


# ---------------------------------------------------------------- basics


def test_create_room_minimal(base, user):
    room_id = create_room(base, user["access_token"])
    assert room_id in joined_rooms(base, user["access_token"])
    sm = state_map(base, user["access_token"], room_id)
    create = sm[("m.room.create", "")]
    assert create["sender"] == user["user_id"]
    assert create["content"]["room_version"] == "12"
    assert content(sm, "m.room.member", user["user_id"])["membership"] == "join"
    assert ("m.room.power_levels", "") in sm
    for ev in sm.values():
        assert EVENT_ID_RE.match(ev["event_id"]), ev
        assert ev["room_id"] == room_id


def test_v12_room_id_is_create_event_hash(base, user):
    room_id = create_room(base, user["access_token"])
    assert ROOM_ID_V12_RE.match(room_id), room_id
    create = get_state_raw(base, user["access_token"], room_id, "m.room.create",
                           params={"format": "event"})
    ev = assert_ok(create)
    assert ev["event_id"] == "$" + room_id[1:], (room_id, ev)
    assert ":" not in room_id


def test_create_requires_auth(base):
    r = call(base, "POST", f"{CLIENT_V3}/createRoom", {})
    assert_error(r, 401, "M_MISSING_TOKEN")


def test_create_bad_json(base, user):
    r = call(base, "POST", f"{CLIENT_V3}/createRoom", data="{not json", token=user["access_token"])
    assert_error(r, 400, ("M_NOT_JSON", "M_BAD_JSON"))


def test_create_unknown_preset_is_400(base, user):
    r = create_room_raw(base, user["access_token"], {"preset": "no_such_preset"})
    assert r.status_code == 400, describe(r)


# ---------------------------------------------------------------- presets and visibility


def test_preset_private_chat(base, user):
    room_id = create_room(base, user["access_token"], preset="private_chat")
    sm = state_map(base, user["access_token"], room_id)
    assert content(sm, "m.room.join_rules")["join_rule"] == "invite"
    assert content(sm, "m.room.history_visibility")["history_visibility"] == "shared"
    assert content(sm, "m.room.guest_access")["guest_access"] == "can_join"


def test_preset_public_chat(base, user):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    sm = state_map(base, user["access_token"], room_id)
    assert content(sm, "m.room.join_rules")["join_rule"] == "public"
    assert content(sm, "m.room.history_visibility")["history_visibility"] == "shared"
    ga = sm.get(("m.room.guest_access", ""))
    assert ga is None or ga["content"]["guest_access"] == "forbidden", ga


def test_preset_trusted_private_chat_v12_invitees_are_creators(base, user, user2):
    """v12: the creator has infinite power; invitees SHOULD join ``additional_creators``
    (create_room.yaml). Giving them PL 100 is not "the same power level as the creator"."""
    room_id = create_room(base, user["access_token"], preset="trusted_private_chat",
                          invite=[user2["user_id"]])
    sm = state_map(base, user["access_token"], room_id)
    assert content(sm, "m.room.join_rules")["join_rule"] == "invite"
    assert content(sm, "m.room.guest_access")["guest_access"] == "can_join"
    assert content(sm, "m.room.member", user2["user_id"])["membership"] == "invite"
    create = content(sm, "m.room.create")
    assert user2["user_id"] in create.get("additional_creators", []), create
    pl = content(sm, "m.room.power_levels")
    assert user2["user_id"] not in pl.get("users", {}), pl


def test_preset_trusted_private_chat_v11_gives_invitees_creator_power(base, user, user2):
    room_id = create_room(base, user["access_token"], preset="trusted_private_chat",
                          invite=[user2["user_id"]], room_version="11")
    sm = state_map(base, user["access_token"], room_id)
    pl = content(sm, "m.room.power_levels")
    assert pl["users"].get(user["user_id"]) == 100, pl
    assert pl["users"].get(user2["user_id"]) == 100, pl


def test_v12_creator_not_in_power_levels_and_tombstone_above_state_default(base, user):
    room_id = create_room(base, user["access_token"])
    pl = get_state(base, user["access_token"], room_id, "m.room.power_levels")
    assert user["user_id"] not in pl.get("users", {}), pl
    assert pl["events"]["m.room.tombstone"] > pl.get("state_default", 50), pl


def test_default_preset_from_visibility(base, user):
    tok = user["access_token"]
    pub = create_room(base, tok, visibility="public")
    priv = create_room(base, tok, visibility="private")
    default = create_room(base, tok)
    assert content(state_map(base, tok, pub), "m.room.join_rules")["join_rule"] == "public"
    assert content(state_map(base, tok, priv), "m.room.join_rules")["join_rule"] == "invite"
    assert content(state_map(base, tok, default), "m.room.join_rules")["join_rule"] == "invite"


def test_visibility_public_lists_in_directory(base, user):
    tok = user["access_token"]
    pub = create_room(base, tok, visibility="public", name="listed")
    priv = create_room(base, tok, preset="public_chat")  # public join rule but not listed
    ids = public_room_ids(base, tok)
    assert pub in ids
    assert priv not in ids
    vis = assert_ok(call(base, "GET", f"{CLIENT_V3}/directory/list/room/{qid(pub)}"))
    assert vis == {"visibility": "public"}
    vis = assert_ok(call(base, "GET", f"{CLIENT_V3}/directory/list/room/{qid(priv)}"))
    assert vis == {"visibility": "private"}


def test_visibility_bad_value(base, user):
    r = create_room_raw(base, user["access_token"], {"visibility": "sideways"})
    assert r.status_code == 400, describe(r)


# ---------------------------------------------------------------- content of the request


def test_name_and_topic(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok, name="The Name", topic="The Topic")
    assert get_state(base, tok, room_id, "m.room.name") == {"name": "The Name"}
    topic = get_state(base, tok, room_id, "m.room.topic")
    assert topic["topic"] == "The Topic", topic


def test_initial_state_overrides_preset(base, user):
    tok = user["access_token"]
    room_id = create_room(
        base,
        tok,
        preset="private_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
            {"type": "org.example.custom", "state_key": "k1", "content": {"x": 1}},
            {"type": "org.example.custom", "content": {"x": "empty key"}},
        ],
    )
    sm = state_map(base, tok, room_id)
    assert content(sm, "m.room.history_visibility")["history_visibility"] == "world_readable"
    assert content(sm, "org.example.custom", "k1") == {"x": 1}
    assert content(sm, "org.example.custom", "") == {"x": "empty key"}
    assert content(sm, "m.room.join_rules")["join_rule"] == "invite"


def test_name_and_topic_override_initial_state(base, user):
    tok = user["access_token"]
    room_id = create_room(
        base, tok, name="from name",
        initial_state=[{"type": "m.room.name", "content": {"name": "from initial_state"}}],
    )
    assert get_state(base, tok, room_id, "m.room.name") == {"name": "from name"}


def test_invite_list_and_is_direct(base, user, user2):
    tok = user["access_token"]
    u3 = new_user(base)
    room_id = create_room(base, tok, invite=[user2["user_id"], u3["user_id"]], is_direct=True)
    sm = state_map(base, tok, room_id)
    for u in (user2, u3):
        c = content(sm, "m.room.member", u["user_id"])
        assert c["membership"] == "invite", c
        assert c.get("is_direct") is True, c
        assert sm[("m.room.member", u["user_id"])]["sender"] == user["user_id"]
    # the invitees can now join the private room
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room_id)}/join", {},
                   token=user2["access_token"]))


def test_invite_without_is_direct_has_no_flag(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, invite=[user2["user_id"]])
    c = content(state_map(base, tok, room_id), "m.room.member", user2["user_id"])
    assert c["membership"] == "invite"
    assert not c.get("is_direct"), c


def test_invite_of_unreachable_remote_user_still_creates_the_room(base, user, user2):
    """Users of other servers are invited over federation once the room exists (the
    federation tests prove it with real peers); an invitee whose server cannot be reached is
    left out, the room is created and the local invitees are invited."""
    tok = user["access_token"]
    r = create_room_raw(base, tok, {"invite": ["@someone:remote.example.invalid", user2["user_id"]]})
    room_id = assert_ok(r)["room_id"]
    assert room_id in joined_rooms(base, tok)
    state = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room_id)}/state", token=tok))
    members = {e["state_key"]: e["content"].get("membership") for e in state if e["type"] == "m.room.member"}
    assert members.get(user2["user_id"]) == "invite", members
    assert "@someone:remote.example.invalid" not in members, members


def test_power_level_content_override(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(
        base,
        tok,
        power_level_content_override={"events_default": 20, "users": {user2["user_id"]: 75},
                                      "events": {"m.room.topic": 80}},
    )
    pl = get_state(base, tok, room_id, "m.room.power_levels")
    assert pl["events_default"] == 20
    assert pl["users"][user2["user_id"]] == 75
    # the override is applied key by key on top of the defaults: `events` is replaced
    assert pl["events"] == {"m.room.topic": 80}, pl
    assert pl.get("kick", 50) == 50 and pl.get("ban", 50) == 50
    # and it is enforced: user2 (75) may not set the topic (80) but may set the name (50)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room_id)}/invite",
                   {"user_id": user2["user_id"]}, token=tok))
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room_id)}/join", {},
                   token=user2["access_token"]))
    r = call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/state/m.room.topic",
             {"topic": "no"}, token=user2["access_token"])
    assert_error(r, 403, "M_FORBIDDEN")
    r = call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/state/m.room.name",
             {"name": "yes"}, token=user2["access_token"])
    assert_ok(r)


def test_creation_content_space(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok, creation_content={"type": "m.space", "m.federate": False})
    c = get_state(base, tok, room_id, "m.room.create")
    assert c["type"] == "m.space"
    assert c["m.federate"] is False
    assert c["room_version"] == "12"


def test_room_alias_name(base, user, server_name):
    tok = user["access_token"]
    local = "alias-" + txn()[:10]
    room_id = create_room(base, tok, room_alias_name=local)
    alias = f"#{local}:{server_name}"
    assert get_state(base, tok, room_id, "m.room.canonical_alias")["alias"] == alias
    res = assert_ok(call(base, "GET", f"{CLIENT_V3}/directory/room/{qid(alias)}"))
    assert res["room_id"] == room_id
    assert server_name in res["servers"]


def test_room_alias_name_taken(base, user, user2):
    local = "taken-" + txn()[:10]
    create_room(base, user["access_token"], room_alias_name=local)
    before = set(joined_rooms(base, user2["access_token"]))
    r = create_room_raw(base, user2["access_token"], {"room_alias_name": local})
    assert_error(r, 400, "M_ROOM_IN_USE")
    assert set(joined_rooms(base, user2["access_token"])) == before


# ---------------------------------------------------------------- room versions


@pytest.mark.parametrize("version", [str(v) for v in range(3, 13)])
def test_supported_room_versions(base, user, version):
    tok = user["access_token"]
    room_id = create_room(base, tok, room_version=version)
    c = get_state(base, tok, room_id, "m.room.create")
    assert c["room_version"] == version
    if version == "12":
        assert ROOM_ID_V12_RE.match(room_id), room_id
    else:
        assert re.match(r"^![^:]+:.+$", room_id), room_id
    events = full_state(base, tok, room_id)
    pattern = r"^\$[A-Za-z0-9+/]{43}$" if version == "3" else EVENT_ID_RE.pattern
    for ev in events:
        assert re.match(pattern, ev["event_id"]), (version, ev["event_id"])
    # the room works: send a message
    r = call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/send/m.room.message/{txn()}",
             {"msgtype": "m.text", "body": "hi"}, token=tok)
    assert re.match(pattern, assert_ok(r)["event_id"])


@pytest.mark.parametrize("version", ["1", "2", "13", "foo", ""])
def test_unsupported_room_versions(base, user, version):
    tok = user["access_token"]
    before = set(joined_rooms(base, tok))
    r = create_room_raw(base, tok, {"room_version": version})
    assert_error(r, 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert set(joined_rooms(base, tok)) == before


def test_capabilities_list_room_versions(base, user):
    caps = assert_ok(call(base, "GET", f"{CLIENT_V3}/capabilities", token=user["access_token"]))
    rv = caps["capabilities"]["m.room_versions"]
    assert rv["default"] == "12"
    for v in map(str, range(3, 13)):
        assert v in rv["available"], rv
    assert rv["available"]["12"] == "stable"


@pytest.mark.parametrize("local", ["has space", "has:colon", "#hash"])
def test_room_alias_name_invalid(base, user, local):
    tok = user["access_token"]
    before = set(joined_rooms(base, tok))
    r = create_room_raw(base, tok, {"room_alias_name": local})
    assert_error(r, 400, ("M_INVALID_PARAM", "M_BAD_JSON"))
    assert set(joined_rooms(base, tok)) == before


def test_create_bad_field_types(base, user):
    tok = user["access_token"]
    for body in ({"invite": "not-a-list"}, {"initial_state": {"type": "x"}},
                 {"power_level_content_override": "x"}, {"creation_content": []},
                 {"name": 5}):
        r = create_room_raw(base, tok, body)
        assert r.status_code == 400, (body, r.text)
