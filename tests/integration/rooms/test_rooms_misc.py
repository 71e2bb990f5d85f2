"""Room upgrades, timestamp_to_event, room summary (MSC3266), reports, user directory."""

import time

import pytest

from matrix_helpers import (
    CLIENT_V1,
    CLIENT_V3,
    assert_error,
    assert_forbidden,
    assert_ok,
    call,
    new_user,
    qid,
    set_displayname,
)
from rooms_helpers import (
    ROOM_ID_V12_RE,
    create_room,
    get_event_raw,
    get_state,
    get_state_raw,
    invite,
    join,
    room_pair,
    rpath,
    send_raw,
    send_text,
    state_map,
    txn,
)


# ---------------------------------------------------------------- upgrade


def upgrade_raw(base, tok, room_id, version, **extra):
    return call(base, "POST", rpath(room_id, "upgrade"), dict(new_version=version, **extra), token=tok)


def test_upgrade(base, user, user2, server_name):
    tok = user["access_token"]
    local = "up-" + txn()[:8]
    old = create_room(base, tok, room_version="11", preset="public_chat", name="Old Name",
                      topic="Old Topic", room_alias_name=local,
                      power_level_content_override={"users": {user["user_id"]: 100,
                                                              user2["user_id"]: 42}},
                      initial_state=[{"type": "m.room.history_visibility",
                                      "content": {"history_visibility": "invited"}}])
    join(base, user2["access_token"], old)
    new = assert_ok(upgrade_raw(base, tok, old, "12"))["replacement_room"]
    assert new != old and ROOM_ID_V12_RE.match(new), new
    # old room: tombstone pointing at the new room
    tomb = get_state(base, tok, old, "m.room.tombstone")
    assert tomb["replacement_room"] == new
    assert isinstance(tomb.get("body"), str)
    # old room locked down
    old_pl = get_state(base, tok, old, "m.room.power_levels")
    assert old_pl["events_default"] >= 50 and old_pl["invite"] >= 50, old_pl
    assert_forbidden(send_raw(base, user2["access_token"], old, {"msgtype": "m.text", "body": "late"}))
    # new room: predecessor, version, carried-over state
    sm = state_map(base, tok, new)
    create = sm[("m.room.create", "")]["content"]
    assert create["room_version"] == "12"
    assert create["predecessor"]["room_id"] == old
    assert sm[("m.room.name", "")]["content"]["name"] == "Old Name"
    assert sm[("m.room.topic", "")]["content"]["topic"] == "Old Topic"
    assert sm[("m.room.join_rules", "")]["content"]["join_rule"] == "public"
    assert sm[("m.room.history_visibility", "")]["content"]["history_visibility"] == "invited"
    pl = sm[("m.room.power_levels", "")]["content"]
    assert pl["users"].get(user2["user_id"]) == 42, pl
    assert user["user_id"] not in pl["users"], pl  # v12: creators are not listed
    assert pl["events_default"] == 0
    assert sm[("m.room.member", user["user_id"])]["content"]["membership"] == "join"
    assert ("m.room.member", user2["user_id"]) not in sm
    # aliases moved
    alias = f"#{local}:{server_name}"
    assert assert_ok(call(base, "GET", f"{CLIENT_V3}/directory/room/{qid(alias)}"))["room_id"] == new
    assert sm[("m.room.canonical_alias", "")]["content"]["alias"] == alias
    # the other member can follow
    join(base, user2["access_token"], new)
    send_text(base, user2["access_token"], new, "hello new room")


def test_upgrade_keeps_room_type_and_predecessor_event(base, user):
    tok = user["access_token"]
    old = create_room(base, tok, room_version="10", creation_content={"type": "m.space"})
    new = assert_ok(upgrade_raw(base, tok, old, "11"))["replacement_room"]
    c = get_state(base, tok, new, "m.room.create")
    assert c["type"] == "m.space" and c["room_version"] == "11"
    assert c["predecessor"]["room_id"] == old
    # below v12 the (deprecated) event_id SHOULD still be given: the last known event of
    # the old room (m.room.create schema; room_upgrades.md only lets v12+ omit it)
    pred_event = c["predecessor"].get("event_id")
    assert isinstance(pred_event, str), c
    assert get_event_raw(base, tok, old, pred_event).status_code == 200


def test_upgrade_publishes_new_room_if_old_was_public(base, user):
    tok = user["access_token"]
    old = create_room(base, tok, visibility="public", name="listed upgrade")
    new = assert_ok(upgrade_raw(base, tok, old, "12"))["replacement_room"]
    vis = assert_ok(call(base, "GET", f"{CLIENT_V3}/directory/list/room/{qid(new)}"))
    assert vis["visibility"] == "public"
    vis = assert_ok(call(base, "GET", f"{CLIENT_V3}/directory/list/room/{qid(old)}"))
    assert vis["visibility"] == "private"


def test_upgrade_forbidden_for_pl0(base, user, user2):
    tok = user["access_token"]
    old = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], old)
    assert_forbidden(upgrade_raw(base, user2["access_token"], old, "12"))
    assert_error(get_state_raw(base, tok, old, "m.room.tombstone"), 404, "M_NOT_FOUND")
    assert_forbidden(upgrade_raw(base, new_user(base)["access_token"], old, "12"))


def test_upgrade_bad_version(base, user):
    tok = user["access_token"]
    old = create_room(base, tok)
    assert_error(upgrade_raw(base, tok, old, "2"), 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert_error(upgrade_raw(base, tok, old, "nope"), 400, "M_UNSUPPORTED_ROOM_VERSION")
    r = call(base, "POST", rpath(old, "upgrade"), {}, token=tok)
    assert r.status_code == 400, r.text
    assert_error(get_state_raw(base, tok, old, "m.room.tombstone"), 404, "M_NOT_FOUND")


def test_upgrade_additional_creators(base, user, user2):
    tok = user["access_token"]
    old = create_room(base, tok)
    new = assert_ok(upgrade_raw(base, tok, old, "12", additional_creators=[user2["user_id"]]))
    c = get_state(base, tok, new["replacement_room"], "m.room.create")
    assert c.get("additional_creators") == [user2["user_id"]], c


# ---------------------------------------------------------------- timestamp_to_event


def ts_raw(base, tok, room_id, **params):
    return call(base, "GET", rpath(room_id, "timestamp_to_event", v=CLIENT_V1), token=tok, params=params)


def test_timestamp_to_event(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    ids = []
    for i in range(3):
        ids.append(send_text(base, tok, room_id, f"t{i}"))
        time.sleep(0.05)
    evs = [assert_ok(get_event_raw(base, tok, room_id, e)) for e in ids]
    ts = [e["origin_server_ts"] for e in evs]
    # exact timestamp: that event, in both directions
    for d in ("f", "b"):
        out = assert_ok(ts_raw(base, tok, room_id, ts=ts[1], dir=d))
        assert out == {"event_id": ids[1], "origin_server_ts": ts[1]}
    if ts[0] < ts[1] - 1:
        out = assert_ok(ts_raw(base, tok, room_id, ts=ts[1] - 1, dir="f"))
        assert out["event_id"] == ids[1]
        out = assert_ok(ts_raw(base, tok, room_id, ts=ts[1] - 1, dir="b"))
        assert out["event_id"] == ids[0]
    # after the last event backwards: the last event
    out = assert_ok(ts_raw(base, tok, room_id, ts=ts[2] + 60_000, dir="b"))
    assert out["event_id"] == ids[2]
    # past the end forwards, or before the room backwards: nothing
    assert_error(ts_raw(base, tok, room_id, ts=ts[2] + 60_000, dir="f"), 404, "M_NOT_FOUND")
    assert_error(ts_raw(base, tok, room_id, ts=1000, dir="b"), 404, "M_NOT_FOUND")
    # from the distant past forwards: the create event
    out = assert_ok(ts_raw(base, tok, room_id, ts=1000, dir="f"))
    create = assert_ok(get_state_raw(base, tok, room_id, "m.room.create", params={"format": "event"}))
    assert out["event_id"] == create["event_id"]


def test_timestamp_to_event_bad_params(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    assert_error(ts_raw(base, tok, room_id, ts=1000), 400, "M_MISSING_PARAM")
    assert_error(ts_raw(base, tok, room_id, dir="f"), 400, "M_MISSING_PARAM")
    assert_error(ts_raw(base, tok, room_id, ts=1000, dir="x"), 400, "M_INVALID_PARAM")
    assert_error(ts_raw(base, tok, room_id, ts="soon", dir="f"), 400, "M_INVALID_PARAM")
    r = ts_raw(base, user2["access_token"], room_id, ts=1000, dir="f")
    assert r.status_code in (403, 404), r.text


# ---------------------------------------------------------------- room summary


SUMMARY_PATHS = [
    lambda r: f"{CLIENT_V1}/room_summary/{qid(r)}",
    lambda r: f"/_matrix/client/unstable/im.nheko.summary/summary/{qid(r)}",
]


@pytest.mark.parametrize("path", SUMMARY_PATHS, ids=["v1", "unstable"])
def test_room_summary(base, user, user2, server_name, path):
    tok = user["access_token"]
    local = "sum-" + txn()[:8]
    room_id = create_room(base, tok, preset="public_chat", name="Summary", topic="Sum topic",
                          room_alias_name=local, creation_content={"type": "m.space"})
    join(base, user2["access_token"], room_id)
    for target in (room_id, f"#{local}:{server_name}"):
        s = assert_ok(call(base, "GET", path(target), token=tok))
        assert s["room_id"] == room_id
        assert s["name"] == "Summary" and s["topic"] == "Sum topic"
        assert s["canonical_alias"] == f"#{local}:{server_name}"
        assert s["num_joined_members"] == 2
        assert s["join_rule"] == "public"
        assert s["world_readable"] is False and s["guest_can_join"] is False
        assert s["room_type"] == "m.space"
        assert s["room_version"] == "12"
        assert s["membership"] == "join"
        assert "encryption" not in s
    # a non-member of a public room: membership leave
    u3 = new_user(base)
    s = assert_ok(call(base, "GET", path(room_id), token=u3["access_token"]))
    assert s["membership"] == "leave" and s["room_id"] == room_id
    # unauthenticated: allowed for a public room, without membership
    r = call(base, "GET", path(room_id))
    if r.status_code == 200:
        assert "membership" not in r.json()
    else:
        assert r.status_code == 401, r.text


def test_room_summary_private_room_hidden(base, user, user2, server_name):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="private_chat", name="hidden",
                          initial_state=[{"type": "m.room.encryption",
                                          "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    s = assert_ok(call(base, "GET", SUMMARY_PATHS[0](room_id), token=tok))
    assert s["encryption"] == "m.megolm.v1.aes-sha2"
    assert s["join_rule"] == "invite"
    for t in (user2["access_token"], None):
        assert_error(call(base, "GET", SUMMARY_PATHS[0](room_id), token=t), 404, "M_NOT_FOUND")
    # invited: visible, membership invite
    invite(base, tok, room_id, user2["user_id"])
    s = assert_ok(call(base, "GET", SUMMARY_PATHS[0](room_id), token=user2["access_token"]))
    assert s["membership"] == "invite"
    unknown = f"#nope-{txn()[:8]}:{server_name}"
    assert_error(call(base, "GET", SUMMARY_PATHS[0](unknown), token=tok), 404, "M_NOT_FOUND")


def test_room_summary_restricted(base, user, user2):
    tok = user["access_token"]
    space = create_room(base, tok, preset="public_chat")
    room_id = create_room(base, tok, initial_state=[{"type": "m.room.join_rules", "content": {
        "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    # user2 can't join yet: not visible
    assert_error(call(base, "GET", SUMMARY_PATHS[0](room_id), token=user2["access_token"]),
                 404, "M_NOT_FOUND")
    join(base, user2["access_token"], space)
    s = assert_ok(call(base, "GET", SUMMARY_PATHS[0](room_id), token=user2["access_token"]))
    assert s["join_rule"] == "restricted"
    assert s.get("allowed_room_ids") == [space], s


# ---------------------------------------------------------------- reports


def test_report_event(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    eid = send_text(base, tok, room_id, "offensive")
    r = call(base, "POST", rpath(room_id, "report", eid), {"reason": "rude", "score": -100},
             token=user2["access_token"])
    assert assert_ok(r) == {}
    r = call(base, "POST", rpath(room_id, "report", eid), {"reason": "rude"}, token=user2["access_token"])
    assert assert_ok(r) == {}
    r = call(base, "POST", rpath(room_id, "report", eid), {}, token=user2["access_token"])
    assert assert_ok(r) == {}


def test_report_event_not_found(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = send_text(base, tok, room_id, "x")
    r = call(base, "POST", rpath(room_id, "report", "$" + "D" * 43), {"reason": "r"}, token=tok)
    assert_error(r, 404, "M_NOT_FOUND")
    r = call(base, "POST", rpath(room_id, "report", eid), {"reason": "r"}, token=user2["access_token"])
    assert_error(r, 404, "M_NOT_FOUND")
    r = call(base, "POST", rpath(room_id, "report", eid), {"reason": "r"})
    assert_error(r, 401, "M_MISSING_TOKEN")


def test_report_room(base, user, user2, server_name):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    r = call(base, "POST", rpath(room_id, "report"), {"reason": "spam room"}, token=user2["access_token"])
    assert assert_ok(r) == {}
    r = call(base, "POST", rpath(f"!nope{txn()[:8]}:{server_name}", "report"), {"reason": "x"},
             token=tok)
    assert_error(r, 404, "M_NOT_FOUND")


# ---------------------------------------------------------------- user directory


def search(base, tok, term, limit=None):
    body = {"search_term": term}
    if limit is not None:
        body["limit"] = limit
    out = assert_ok(call(base, "POST", f"{CLIENT_V3}/user_directory/search", body, token=tok))
    assert isinstance(out["results"], list) and isinstance(out["limited"], bool), out
    return out


def test_user_directory_search(base):
    tag = "zq" + txn()[:8]
    me = new_user(base)
    roommate = new_user(base)
    public_member = new_user(base)
    stranger = new_user(base)
    for i, u in enumerate((roommate, public_member, stranger)):
        set_displayname(base, u, f"{tag} person {i}")
    private = create_room(base, me["access_token"], preset="private_chat")
    invite(base, me["access_token"], private, roommate["user_id"])
    join(base, roommate["access_token"], private)
    other = new_user(base)
    # public join rule (not listed in the directory) and world_readable rooms both count
    public = room_pair(base, other, public_member)
    readable_member = new_user(base)
    set_displayname(base, readable_member, f"{tag} person 3")
    readable = create_room(base, other["access_token"], preset="private_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    invite(base, other["access_token"], readable, readable_member["user_id"])
    join(base, readable_member["access_token"], readable)
    stranger_room = create_room(base, stranger["access_token"], preset="private_chat")
    assert stranger_room
    out = search(base, me["access_token"], tag)
    found = {r["user_id"]: r for r in out["results"]}
    assert set(found) == {roommate["user_id"], public_member["user_id"],
                          readable_member["user_id"]}, found
    assert found[roommate["user_id"]]["display_name"] == f"{tag} person 0"
    assert out["limited"] is False
    # case-insensitive, by display name prefix and by user ID
    assert {r["user_id"] for r in search(base, me["access_token"], tag.upper())["results"]} == set(found)
    by_id = search(base, me["access_token"], roommate["username"])["results"]
    assert [r["user_id"] for r in by_id] == [roommate["user_id"]]
    # limit
    out = search(base, me["access_token"], tag, limit=1)
    assert len(out["results"]) == 1 and out["limited"] is True
    # the stranger shares no room with roommate (a private room): not found
    out = search(base, stranger["access_token"], tag)
    assert roommate["user_id"] not in {r["user_id"] for r in out["results"]}


def test_user_directory_bad_request(base, user):
    r = call(base, "POST", f"{CLIENT_V3}/user_directory/search", {}, token=user["access_token"])
    assert r.status_code == 400, r.text
    r = call(base, "POST", f"{CLIENT_V3}/user_directory/search", {"search_term": "x"})
    assert_error(r, 401, "M_MISSING_TOKEN")


def test_room_summary_knock_room_visible_to_outsiders(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, name="knock here", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    s = assert_ok(call(base, "GET", SUMMARY_PATHS[0](room_id), token=user2["access_token"]))
    assert s["join_rule"] == "knock" and s["name"] == "knock here"
    assert s["membership"] == "leave"
    assert assert_ok(call(base, "POST", f"{CLIENT_V3}/knock/{qid(room_id)}", {},
                          token=user2["access_token"]))["room_id"] == room_id
    s = assert_ok(call(base, "GET", SUMMARY_PATHS[0](room_id), token=user2["access_token"]))
    assert s["membership"] == "knock"
