"""Room state: GET/PUT /rooms/{id}/state/{type}/{stateKey}, /state, power levels."""

from matrix_helpers import CLIENT_V3, assert_error, assert_forbidden, assert_ok, call, new_user, qid
from rooms_helpers import (
    EVENT_ID_RE,
    create_room,
    full_state,
    get_state,
    get_state_raw,
    leave,
    put_state,
    put_state_raw,
    room_pair,
    rpath,
    state_map,
    txn,
)


def test_put_and_get_state_empty_key(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = put_state(base, tok, room_id, "m.room.name", {"name": "First"})
    assert get_state(base, tok, room_id, "m.room.name") == {"name": "First"}
    # the trailing-slash form with an explicit empty state key is the same thing
    r = call(base, "GET", rpath(room_id, "state", "m.room.name") + "/", token=tok)
    assert assert_ok(r) == {"name": "First"}
    ev = assert_ok(get_state_raw(base, tok, room_id, "m.room.name", params={"format": "event"}))
    assert ev["event_id"] == eid
    assert ev["type"] == "m.room.name" and ev["state_key"] == ""
    assert ev["sender"] == user["user_id"] and ev["content"] == {"name": "First"}
    put_state(base, tok, room_id, "m.room.name", {"name": "Second"})
    assert get_state(base, tok, room_id, "m.room.name") == {"name": "Second"}


def test_put_state_with_state_key(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    put_state(base, tok, room_id, "org.example.thing", {"v": 1}, state_key="alpha")
    put_state(base, tok, room_id, "org.example.thing", {"v": 2}, state_key="beta")
    put_state(base, tok, room_id, "org.example.thing", {"v": 3}, state_key="a/b c")
    assert get_state(base, tok, room_id, "org.example.thing", "alpha") == {"v": 1}
    assert get_state(base, tok, room_id, "org.example.thing", "beta") == {"v": 2}
    assert get_state(base, tok, room_id, "org.example.thing", "a/b c") == {"v": 3}
    sm = state_map(base, tok, room_id)
    assert sm[("org.example.thing", "alpha")]["content"] == {"v": 1}
    assert sm[("org.example.thing", "a/b c")]["content"] == {"v": 3}


def test_state_event_appears_in_timeline(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = put_state(base, tok, room_id, "m.room.topic", {"topic": "tl"})
    chunk = assert_ok(call(base, "GET", rpath(room_id, "messages"), token=tok,
                           params={"dir": "b", "limit": 1}))["chunk"]
    assert chunk[0]["event_id"] == eid and chunk[0]["state_key"] == ""


def test_same_content_state_is_allowed(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    e1 = put_state(base, tok, room_id, "m.room.topic", {"topic": "same"})
    r = put_state_raw(base, tok, room_id, "m.room.topic", {"topic": "same"})
    assert r.status_code == 200, r.text
    assert EVENT_ID_RE.match(r.json()["event_id"])
    assert get_state(base, tok, room_id, "m.room.topic")["topic"] == "same"
    assert e1


def test_missing_state_is_404(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    assert_error(get_state_raw(base, tok, room_id, "m.room.topic"), 404, "M_NOT_FOUND")
    assert_error(get_state_raw(base, tok, room_id, "org.example.none", "k"), 404, "M_NOT_FOUND")


def test_pl0_cannot_set_name(base, user, user2):
    room_id = room_pair(base, user, user2, name="Orig")
    assert_forbidden(put_state_raw(base, user2["access_token"], room_id, "m.room.name", {"name": "Hacked"}))
    assert get_state(base, user["access_token"], room_id, "m.room.name") == {"name": "Orig"}
    assert_forbidden(put_state_raw(base, user2["access_token"], room_id, "org.example.x", {"a": 1}, "k"))
    assert get_state_raw(base, user["access_token"], room_id, "org.example.x", "k").status_code == 404


def test_pl0_cannot_raise_own_power(base, user, user2):
    room_id = room_pair(base, user, user2)
    pl = get_state(base, user["access_token"], room_id, "m.room.power_levels")
    pl2 = dict(pl, users=dict(pl.get("users", {}), **{user2["user_id"]: 100}))
    assert_forbidden(put_state_raw(base, user2["access_token"], room_id, "m.room.power_levels", pl2))
    assert get_state(base, user["access_token"], room_id, "m.room.power_levels") == pl


def test_power_level_change_takes_effect(base, user, user2):
    room_id = room_pair(base, user, user2)
    pl = get_state(base, user["access_token"], room_id, "m.room.power_levels")
    pl["users"] = dict(pl.get("users", {}), **{user2["user_id"]: 50})
    put_state(base, user["access_token"], room_id, "m.room.power_levels", pl)
    put_state(base, user2["access_token"], room_id, "m.room.name", {"name": "by mod"})
    assert get_state(base, user["access_token"], room_id, "m.room.name") == {"name": "by mod"}
    # but a moderator may not set power_levels (100)
    pl3 = dict(pl, events_default=5)
    assert_forbidden(put_state_raw(base, user2["access_token"], room_id, "m.room.power_levels", pl3))


def test_v12_creator_may_not_be_listed_in_power_levels(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    pl = get_state(base, tok, room_id, "m.room.power_levels")
    bad = dict(pl, users=dict(pl.get("users", {}), **{user["user_id"]: 100}))
    r = put_state_raw(base, tok, room_id, "m.room.power_levels", bad)
    assert r.status_code in (400, 403), r.text
    assert get_state(base, tok, room_id, "m.room.power_levels") == pl


def test_user_id_state_keys(base, user, user2):
    room_id = room_pair(base, user, user2, power_level_content_override={
        "events": {"org.example.per_user": 0}})
    tok2 = user2["access_token"]
    # own user ID as state key: allowed
    put_state(base, tok2, room_id, "org.example.per_user", {"mine": True}, state_key=user2["user_id"])
    assert get_state(base, tok2, room_id, "org.example.per_user", user2["user_id"]) == {"mine": True}
    # someone else's user ID: refused, even for the creator
    assert_forbidden(put_state_raw(base, tok2, room_id, "org.example.per_user", {"x": 1}, user["user_id"]))
    assert_forbidden(put_state_raw(base, user["access_token"], room_id, "org.example.per_user", {"x": 1},
                            user2["user_id"]))
    assert get_state(base, tok2, room_id, "org.example.per_user", user2["user_id"]) == {"mine": True}
    assert get_state_raw(base, tok2, room_id, "org.example.per_user", user["user_id"]).status_code == 404


def test_member_state_via_state_api_is_checked(base, user, user2):
    """A PL-0 user may not put someone else's member event through the state API."""
    room_id = room_pair(base, user, user2)
    r = put_state_raw(base, user2["access_token"], room_id, "m.room.member",
                      {"membership": "ban"}, state_key=user["user_id"])
    assert_forbidden(r)
    assert get_state(base, user["access_token"], room_id, "m.room.member",
                     user["user_id"])["membership"] == "join"


def test_non_member_cannot_put_state(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat", name="N")
    assert_forbidden(put_state_raw(base, user2["access_token"], room_id, "m.room.name", {"name": "x"}))
    assert get_state(base, tok, room_id, "m.room.name") == {"name": "N"}


def test_non_member_cannot_read_state(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, name="secret")
    assert_forbidden(get_state_raw(base, user2["access_token"], room_id, "m.room.name"))
    assert_forbidden(call(base, "GET", rpath(room_id, "state"), token=user2["access_token"]))


def test_world_readable_state_readable_by_non_member(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, name="open", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    assert get_state(base, user2["access_token"], room_id, "m.room.name") == {"name": "open"}


def test_former_member_sees_state_at_leave(base, user, user2):
    room_id = room_pair(base, user, user2, name="Before")
    leave(base, user2["access_token"], room_id)
    put_state(base, user["access_token"], room_id, "m.room.name", {"name": "After"})
    assert get_state(base, user2["access_token"], room_id, "m.room.name") == {"name": "Before"}
    sm = {(e["type"], e["state_key"]): e for e in full_state(base, user2["access_token"], room_id)}
    assert sm[("m.room.name", "")]["content"] == {"name": "Before"}
    assert sm[("m.room.member", user2["user_id"])]["content"]["membership"] == "leave"


def test_state_unknown_room(base, user, server_name):
    r = get_state_raw(base, user["access_token"], f"!nope{txn()[:8]}:{server_name}", "m.room.name")
    assert r.status_code in (403, 404), r.text
    r = put_state_raw(base, user["access_token"], f"!nope{txn()[:8]}:{server_name}", "m.room.name",
                      {"name": "x"})
    assert r.status_code in (403, 404), r.text


def test_put_state_bad_json(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = call(base, "PUT", rpath(room_id, "state", "m.room.name"), data="nope", token=tok)
    assert_error(r, 400, ("M_NOT_JSON", "M_BAD_JSON"))


# ---------------------------------------------------------------- canonical alias


def test_canonical_alias_must_exist_and_point_here(base, user, server_name):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    other = create_room(base, tok)
    missing = f"#missing-{txn()[:8]}:{server_name}"
    r = put_state_raw(base, tok, room_id, "m.room.canonical_alias", {"alias": missing})
    assert_error(r, 400, "M_BAD_ALIAS")
    elsewhere = f"#else-{txn()[:8]}:{server_name}"
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/directory/room/{qid(elsewhere)}", {"room_id": other},
                   token=tok))
    r = put_state_raw(base, tok, room_id, "m.room.canonical_alias", {"alias": elsewhere})
    assert_error(r, 400, "M_BAD_ALIAS")
    r = put_state_raw(base, tok, room_id, "m.room.canonical_alias",
                      {"alias": None, "alt_aliases": [elsewhere]})
    assert_error(r, 400, "M_BAD_ALIAS")
    assert get_state_raw(base, tok, room_id, "m.room.canonical_alias").status_code == 404
    here = f"#here-{txn()[:8]}:{server_name}"
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/directory/room/{qid(here)}", {"room_id": room_id},
                   token=tok))
    put_state(base, tok, room_id, "m.room.canonical_alias", {"alias": here, "alt_aliases": [here]})
    assert get_state(base, tok, room_id, "m.room.canonical_alias")["alias"] == here
    # clearing it is always fine
    put_state(base, tok, room_id, "m.room.canonical_alias", {})
    assert get_state(base, tok, room_id, "m.room.canonical_alias") == {}


def test_own_member_event_per_room_nick(base, user, user2):
    room_id = room_pair(base, user, user2)
    put_state(base, user2["access_token"], room_id, "m.room.member",
              {"membership": "join", "displayname": "Room Nick"}, state_key=user2["user_id"])
    joined = assert_ok(call(base, "GET", rpath(room_id, "joined_members"),
                            token=user["access_token"]))["joined"]
    assert joined[user2["user_id"]]["display_name"] == "Room Nick"
    # but a PL-0 user may not write someone else's member event
    u3 = new_user(base)
    assert_forbidden(put_state_raw(base, user2["access_token"], room_id, "m.room.member",
                            {"membership": "join"}, state_key=u3["user_id"]))
