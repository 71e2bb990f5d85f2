"""GET /_matrix/client/v1/rooms/{roomId}/hierarchy (spec: "Spaces", space_hierarchy.yaml)."""

import pytest

from matrix_helpers import CLIENT_V1, assert_error, assert_ok, call, describe, new_user
from rooms_helpers import create_room, invite, join, membership_raw, put_state, rpath, txn


def hierarchy_raw(base, token, room_id, **params):
    params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
    return call(base, "GET", rpath(room_id, "hierarchy", v=CLIENT_V1), token=token, params=params)


def hierarchy(base, token, room_id, **params) -> dict:
    r = hierarchy_raw(base, token, room_id, **params)
    body = assert_ok(r)
    assert isinstance(body.get("rooms"), list), describe(r)
    for room in body["rooms"]:
        assert isinstance(room.get("children_state"), list), room
    return body


def walk_all(base, token, room_id, **params) -> list[dict]:
    """Every page, following next_batch; returns the rooms in order."""
    rooms, frm = [], None
    for _ in range(100):
        page = hierarchy(base, token, room_id, **params, **({"from": frm} if frm else {}))
        rooms += page["rooms"]
        frm = page.get("next_batch")
        if not frm:
            return rooms
    raise AssertionError("hierarchy pagination did not finish")


def ids(rooms) -> list[str]:
    return [r["room_id"] for r in rooms]


def make_space(base, token, name, **kw) -> str:
    kw.setdefault("preset", "public_chat")
    return create_room(base, token, name=name, creation_content={"type": "m.space"}, **kw)


def add_child(base, token, space, child, server_name, **content):
    content.setdefault("via", [server_name])
    return put_state(base, token, space, "m.space.child", content, state_key=child)


@pytest.fixture
def tree(base, server_name):
    """space -> [sub (order "a") -> [c], a (order "b"), private (no order)].

    sub, c and a are public; private is invite-only (owner's only)."""
    owner = new_user(base, "owner")
    tok = owner["access_token"]
    space = make_space(base, tok, "Top")
    sub = make_space(base, tok, "Sub")
    c = create_room(base, tok, preset="public_chat", name="C")
    a = create_room(base, tok, preset="public_chat", name="A", topic="about A")
    private = create_room(base, tok, preset="private_chat", name="Private")
    add_child(base, tok, space, private, server_name)
    add_child(base, tok, space, a, server_name, order="b")
    add_child(base, tok, space, sub, server_name, order="a", suggested=True)
    add_child(base, tok, sub, c, server_name)
    return {"owner": owner, "space": space, "sub": sub, "c": c, "a": a, "private": private}


def test_depth_first_in_spec_order(base, tree):
    tok = tree["owner"]["access_token"]
    rooms = walk_all(base, tok, tree["space"])
    # The sub-space's rooms come before the siblings that follow it; children by `order`,
    # then by timestamp.
    assert ids(rooms) == [tree["space"], tree["sub"], tree["c"], tree["a"], tree["private"]]
    top = rooms[0]
    assert top["room_type"] == "m.space" and top["name"] == "Top"
    assert top["join_rule"] == "public" and top["num_joined_members"] == 1
    assert top["world_readable"] is False and top["guest_can_join"] is False
    assert top["room_version"] == "12"
    kids = top["children_state"]
    assert [k["state_key"] for k in kids] == [tree["sub"], tree["a"], tree["private"]]
    for k in kids:
        assert k["type"] == "m.space.child"
        assert k["sender"] == tree["owner"]["user_id"]
        assert isinstance(k["origin_server_ts"], int) and k["origin_server_ts"] > 0
        assert k["content"]["via"]
        assert set(k) == {"type", "state_key", "content", "sender", "origin_server_ts"}, k
    assert kids[0]["content"]["suggested"] is True and kids[0]["content"]["order"] == "a"
    a = rooms[3]
    assert a["name"] == "A" and a["topic"] == "about A" and "room_type" not in a
    assert a["children_state"] == []
    assert [k["state_key"] for k in rooms[1]["children_state"]] == [tree["c"]]


def test_only_rooms_the_user_may_see(base, tree, user2):
    rooms = walk_all(base, user2["access_token"], tree["space"])
    assert ids(rooms) == [tree["space"], tree["sub"], tree["c"], tree["a"]]
    # The link to the hidden room is still part of the space's children.
    assert tree["private"] in [k["state_key"] for k in rooms[0]["children_state"]]
    # Invited: now visible.
    invite(base, tree["owner"]["access_token"], tree["private"], user2["user_id"])
    assert tree["private"] in ids(walk_all(base, user2["access_token"], tree["space"]))


def test_restricted_knock_and_world_readable_children(base, server_name, user2):
    owner = new_user(base, "owner")
    tok = owner["access_token"]
    space = make_space(base, tok, "Space")
    restricted = create_room(base, tok, name="R", initial_state=[{"type": "m.room.join_rules", "content": {
        "join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}}])
    knock = create_room(base, tok, name="K", initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    readable = create_room(base, tok, preset="private_chat", name="W", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
        {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    hidden = create_room(base, tok, preset="private_chat", name="H")
    for i, child in enumerate([restricted, knock, readable, hidden]):
        add_child(base, tok, space, child, server_name, order=str(i))
    u2 = user2["access_token"]
    # Not in the space yet: the restricted room is hidden.
    assert ids(walk_all(base, u2, space)) == [space, knock, readable]
    join(base, u2, space)
    rooms = walk_all(base, u2, space)
    assert ids(rooms) == [space, restricted, knock, readable]
    by_id = {r["room_id"]: r for r in rooms}
    assert by_id[restricted]["join_rule"] == "restricted"
    assert by_id[restricted]["allowed_room_ids"] == [space]
    assert by_id[knock]["join_rule"] == "knock"
    assert by_id[readable]["world_readable"] is True
    assert by_id[readable]["encryption"] == "m.megolm.v1.aes-sha2"
    assert by_id[space]["num_joined_members"] == 2


def test_suggested_only(base, tree):
    tok = tree["owner"]["access_token"]
    rooms = walk_all(base, tok, tree["space"], suggested_only=True)
    # Only the suggested sub-space (and the root); c is not suggested in sub.
    assert ids(rooms) == [tree["space"], tree["sub"]]
    assert [k["state_key"] for k in rooms[0]["children_state"]] == [tree["sub"]]
    assert rooms[1]["children_state"] == []


def test_max_depth(base, tree):
    tok = tree["owner"]["access_token"]
    assert ids(walk_all(base, tok, tree["space"], max_depth=0)) == [tree["space"]]
    rooms = walk_all(base, tok, tree["space"], max_depth=1)
    assert ids(rooms) == [tree["space"], tree["sub"], tree["a"], tree["private"]]
    # The sub-space's own children are still described, just not walked into.
    assert [k["state_key"] for k in rooms[1]["children_state"]] == [tree["c"]]
    assert ids(walk_all(base, tok, tree["space"], max_depth=2))[2] == tree["c"]


def test_pagination(base, tree):
    tok = tree["owner"]["access_token"]
    full = ids(walk_all(base, tok, tree["space"]))
    first = hierarchy(base, tok, tree["space"], limit=2)
    assert ids(first["rooms"]) == full[:2]
    assert isinstance(first.get("next_batch"), str)
    second = hierarchy(base, tok, tree["space"], limit=2, **{"from": first["next_batch"]})
    assert ids(second["rooms"]) == full[2:4]
    paged = ids(walk_all(base, tok, tree["space"], limit=1))
    assert paged == full
    last = hierarchy(base, tok, tree["space"], limit=10)
    assert "next_batch" not in last and ids(last["rooms"]) == full


def test_pagination_parameters_are_pinned(base, tree, user2):
    tok = tree["owner"]["access_token"]
    first = hierarchy(base, tok, tree["space"], limit=1, max_depth=3)
    frm = first["next_batch"]
    for changed in ({"max_depth": 2}, {"max_depth": 3, "suggested_only": True}, {}):
        r = hierarchy_raw(base, tok, tree["space"], limit=1, **changed, **{"from": frm})
        assert_error(r, 400, "M_INVALID_PARAM")
    # Same parameters: fine (limit may change).
    assert ids(hierarchy(base, tok, tree["space"], max_depth=3, limit=5, **{"from": frm})["rooms"])[0] == tree["sub"]
    # Another root or another user cannot use the token.
    assert_error(hierarchy_raw(base, tok, tree["sub"], limit=1, max_depth=3, **{"from": frm}), 400, "M_INVALID_PARAM")
    assert_error(hierarchy_raw(base, user2["access_token"], tree["space"], limit=1, max_depth=3, **{"from": frm}),
                 400, "M_INVALID_PARAM")
    for bogus in ("nope", "hier_" + "A" * 43, "../x"):
        assert_error(hierarchy_raw(base, tok, tree["space"], **{"from": bogus}), 400, "M_INVALID_PARAM")


def test_loops_and_invalid_links(base, server_name):
    owner = new_user(base, "owner")
    tok = owner["access_token"]
    a = make_space(base, tok, "A")
    b = make_space(base, tok, "B")
    gone = create_room(base, tok, preset="public_chat", name="gone")
    add_child(base, tok, a, b, server_name, order="1")
    add_child(base, tok, b, a, server_name)  # a loop
    add_child(base, tok, a, a, server_name, order="0")  # a self-link
    add_child(base, tok, a, gone, server_name, order="2")
    put_state(base, tok, a, "m.space.child", {}, state_key=gone)  # removed: no via
    unknown = f"!unknown{txn()[:8]}:elsewhere.example"
    add_child(base, tok, a, unknown, server_name, via=["elsewhere.example"], order="3")
    add_child(base, tok, a, "not-a-room-id", server_name, order="4")
    rooms = walk_all(base, tok, a)
    # Each room once; the unknown (remote) room and the malformed link are skipped.
    assert ids(rooms) == [a, b]
    assert [k["state_key"] for k in rooms[0]["children_state"]] == [a, b, unknown, "not-a-room-id"]
    assert [k["state_key"] for k in rooms[1]["children_state"]] == [a]


def test_banned_user(base, tree, user2):
    tok = tree["owner"]["access_token"]
    assert_ok(membership_raw(base, tok, tree["a"], "ban", {"user_id": user2["user_id"]}))
    assert ids(walk_all(base, user2["access_token"], tree["space"])) == [tree["space"], tree["sub"], tree["c"]]
    assert_ok(membership_raw(base, tok, tree["space"], "ban", {"user_id": user2["user_id"]}))
    assert_error(hierarchy_raw(base, user2["access_token"], tree["space"]), 403, "M_FORBIDDEN")


def test_non_space_root(base, user):
    room = create_room(base, user["access_token"], preset="public_chat", name="plain")
    body = hierarchy(base, user["access_token"], room)
    assert ids(body["rooms"]) == [room] and body["rooms"][0]["children_state"] == []
    assert "next_batch" not in body


def test_root_not_visible(base, tree, user2, server_name):
    assert_error(hierarchy_raw(base, user2["access_token"], tree["private"]), 403, "M_FORBIDDEN")
    assert_error(hierarchy_raw(base, user2["access_token"], f"!nothere{txn()[:8]}:{server_name}"), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": -1}, {"limit": "ten"}, {"max_depth": -1}, {"max_depth": "deep"},
    {"suggested_only": "maybe"},
])
def test_bad_params(base, tree, params):
    r = hierarchy_raw(base, tree["owner"]["access_token"], tree["space"], **params)
    assert_error(r, 400, "M_INVALID_PARAM")


def test_bad_room_id_and_auth(base, tree):
    assert_error(hierarchy_raw(base, tree["owner"]["access_token"], "not-a-room"), 400, "M_INVALID_PARAM")
    assert_error(hierarchy_raw(base, None, tree["space"]), 401, "M_MISSING_TOKEN")
