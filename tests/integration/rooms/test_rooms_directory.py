"""Room aliases, the room directory and /publicRooms, /members and /joined_members."""

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_forbidden, assert_ok, call, new_user, qid, set_displayname
from rooms_helpers import create_room, invite, join, leave, messages, put_state, room_pair, rpath, send_text, txn


def alias_path(alias):
    return f"{CLIENT_V3}/directory/room/{qid(alias)}"


def new_alias(server_name, prefix="al"):
    return f"#{prefix}-{txn()[:10]}:{server_name}"


# ---------------------------------------------------------------- aliases


def test_alias_lifecycle(base, user, server_name):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    alias = new_alias(server_name)
    assert assert_ok(call(base, "PUT", alias_path(alias), {"room_id": room_id}, token=tok)) == {}
    res = assert_ok(call(base, "GET", alias_path(alias)))
    assert res["room_id"] == room_id and server_name in res["servers"]
    aliases = assert_ok(call(base, "GET", rpath(room_id, "aliases"), token=tok))["aliases"]
    assert alias in aliases
    assert assert_ok(call(base, "DELETE", alias_path(alias), token=tok)) == {}
    assert_error(call(base, "GET", alias_path(alias)), 404, "M_NOT_FOUND")
    assert alias not in assert_ok(call(base, "GET", rpath(room_id, "aliases"), token=tok))["aliases"]
    assert_error(call(base, "DELETE", alias_path(alias), token=tok), 404, "M_NOT_FOUND")


def test_alias_exists_conflict(base, user, user2, server_name):
    tok = user["access_token"]
    r1 = create_room(base, tok)
    r2 = create_room(base, tok)
    alias = new_alias(server_name)
    assert_ok(call(base, "PUT", alias_path(alias), {"room_id": r1}, token=tok))
    assert_error(call(base, "PUT", alias_path(alias), {"room_id": r2}, token=tok), 409, "M_UNKNOWN")
    assert assert_ok(call(base, "GET", alias_path(alias)))["room_id"] == r1


def test_alias_other_server(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = call(base, "PUT", alias_path("#x:elsewhere.example.org"), {"room_id": room_id}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")


def test_alias_malformed(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    for bad in ("nohash:server", "#nocolon"):
        r = call(base, "PUT", alias_path(bad), {"room_id": room_id}, token=tok)
        assert r.status_code == 400, (bad, r.text)


def test_alias_needs_membership(base, user, user2, server_name):
    room_id = create_room(base, user["access_token"], preset="public_chat")
    alias = new_alias(server_name)
    assert_forbidden(call(base, "PUT", alias_path(alias), {"room_id": room_id}, token=user2["access_token"]))
    assert_error(call(base, "GET", alias_path(alias)), 404, "M_NOT_FOUND")


def test_alias_unknown_room(base, user, server_name):
    r = call(base, "PUT", alias_path(new_alias(server_name)),
             {"room_id": f"!nope{txn()[:8]}:{server_name}"}, token=user["access_token"])
    assert r.status_code in (403, 404), r.text


def test_alias_missing_room_id(base, user, server_name):
    r = call(base, "PUT", alias_path(new_alias(server_name)), {}, token=user["access_token"])
    assert_error(r, 400, ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"))


def test_alias_delete_permissions(base, user, user2, server_name):
    room_id = room_pair(base, user, user2)
    u3 = new_user(base)
    join(base, u3["access_token"], room_id)
    # a PL-0 member creates an alias: they may delete their own
    own = new_alias(server_name)
    assert_ok(call(base, "PUT", alias_path(own), {"room_id": room_id}, token=user2["access_token"]))
    # the creator's alias: another PL-0 member may not delete it
    alias = new_alias(server_name)
    assert_ok(call(base, "PUT", alias_path(alias), {"room_id": room_id}, token=user["access_token"]))
    assert_forbidden(call(base, "DELETE", alias_path(alias), token=u3["access_token"]))
    assert assert_ok(call(base, "GET", alias_path(alias)))["room_id"] == room_id
    assert_forbidden(call(base, "DELETE", alias_path(own), token=u3["access_token"]))
    assert_ok(call(base, "DELETE", alias_path(own), token=user2["access_token"]))
    # a user with power over canonical aliases may delete anyone's
    pl = assert_ok(call(base, "GET", rpath(room_id, "state", "m.room.power_levels"),
                        token=user["access_token"]))
    pl["users"] = {u3["user_id"]: 50}
    put_state(base, user["access_token"], room_id, "m.room.power_levels", pl)
    assert_ok(call(base, "DELETE", alias_path(alias), token=u3["access_token"]))
    assert_error(call(base, "GET", alias_path(alias)), 404, "M_NOT_FOUND")


def test_room_aliases_non_member(base, user, user2):
    room_id = create_room(base, user["access_token"])
    assert_forbidden(call(base, "GET", rpath(room_id, "aliases"), token=user2["access_token"]))


# ---------------------------------------------------------------- directory visibility


def public_rooms_all(base, token=None, post_body=None, limit=3):
    chunks, pages = [], []
    since = None
    for _ in range(500):
        if post_body is not None:
            body = dict(post_body, limit=limit)
            if since:
                body["since"] = since
            page = assert_ok(call(base, "POST", f"{CLIENT_V3}/publicRooms", body, token=token))
        else:
            params = {"limit": limit}
            if since:
                params["since"] = since
            page = assert_ok(call(base, "GET", f"{CLIENT_V3}/publicRooms", token=token, params=params))
        assert len(page["chunk"]) <= limit
        assert isinstance(page.get("total_room_count_estimate", 0), int)
        pages.append(page)
        chunks += page["chunk"]
        since = page.get("next_batch")
        if not since:
            return chunks, pages
    raise AssertionError("publicRooms never ended")


def test_directory_visibility_roundtrip(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat", name="dirtest")
    path = f"{CLIENT_V3}/directory/list/room/{qid(room_id)}"
    assert assert_ok(call(base, "GET", path)) == {"visibility": "private"}
    assert_ok(call(base, "PUT", path, {"visibility": "public"}, token=tok))
    assert assert_ok(call(base, "GET", path)) == {"visibility": "public"}
    ids = [c["room_id"] for c in public_rooms_all(base, limit=50)[0]]
    assert room_id in ids
    assert_forbidden(call(base, "PUT", path, {"visibility": "private"}, token=user2["access_token"]))
    assert assert_ok(call(base, "GET", path)) == {"visibility": "public"}
    assert_ok(call(base, "PUT", path, {"visibility": "private"}, token=tok))
    assert room_id not in [c["room_id"] for c in public_rooms_all(base, limit=50)[0]]


def test_directory_visibility_bad_value_and_unknown_room(base, user, server_name):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = call(base, "PUT", f"{CLIENT_V3}/directory/list/room/{qid(room_id)}", {"visibility": "x"}, token=tok)
    assert r.status_code == 400, r.text
    r = call(base, "GET", f"{CLIENT_V3}/directory/list/room/{qid('!nope' + txn()[:6] + ':' + server_name)}")
    assert_error(r, 404, "M_NOT_FOUND")


def test_public_rooms_chunk_fields(base, user, user2, server_name):
    tok = user["access_token"]
    local = "pub-" + txn()[:8]
    room_id = create_room(base, tok, visibility="public", name="Fields Room", topic="About fields",
                          room_alias_name=local, initial_state=[
                              {"type": "m.room.history_visibility",
                               "content": {"history_visibility": "world_readable"}},
                              {"type": "m.room.avatar", "content": {"url": "mxc://x.org/av"}}])
    join(base, user2["access_token"], room_id)
    chunks, _ = public_rooms_all(base, limit=100)
    c = next(c for c in chunks if c["room_id"] == room_id)
    assert c["name"] == "Fields Room"
    assert c["topic"] == "About fields"
    assert c["canonical_alias"] == f"#{local}:{server_name}"
    assert c["num_joined_members"] == 2
    assert c["world_readable"] is True
    assert c["guest_can_join"] is False
    assert c["join_rule"] == "public"
    assert c.get("avatar_url") == "mxc://x.org/av"
    assert "room_type" not in c or c["room_type"] is None


def test_public_rooms_pagination_no_duplicates(base, user):
    tok = user["access_token"]
    mine = {create_room(base, tok, visibility="public", name=f"page-{i}") for i in range(7)}
    for post in (None, {}):
        chunks, pages = public_rooms_all(base, token=tok, post_body=post, limit=3)
        ids = [c["room_id"] for c in chunks]
        assert len(ids) == len(set(ids)), "duplicates across pages"
        assert mine <= set(ids)
        assert len(pages) >= 3
        if len(pages) > 1:
            assert "prev_batch" in pages[1], pages[1].keys()
        assert pages[0]["total_room_count_estimate"] >= len(mine)


def test_public_rooms_sorted_by_members(base, user, user2):
    tok = user["access_token"]
    big = create_room(base, tok, visibility="public", name="bigger")
    join(base, user2["access_token"], big)
    chunks, _ = public_rooms_all(base, limit=100)
    counts = [c["num_joined_members"] for c in chunks]
    assert counts == sorted(counts, reverse=True), counts


def test_public_rooms_filter(base, user):
    tok = user["access_token"]
    needle = "zebra" + txn()[:6]
    named = create_room(base, tok, visibility="public", name=f"The {needle.upper()} room")
    topical = create_room(base, tok, visibility="public", name="plain", topic=f"about {needle}")
    space = create_room(base, tok, visibility="public", name=f"{needle} space",
                        creation_content={"type": "m.space"})
    create_room(base, tok, visibility="public", name="unrelated")
    chunks, _ = public_rooms_all(base, tok, {"filter": {"generic_search_term": needle}}, limit=100)
    assert {c["room_id"] for c in chunks} == {named, topical, space}
    sp = next(c for c in chunks if c["room_id"] == space)
    assert sp["room_type"] == "m.space"
    chunks, _ = public_rooms_all(base, tok, {"filter": {"generic_search_term": needle,
                                                        "room_types": ["m.space"]}}, limit=100)
    assert [c["room_id"] for c in chunks] == [space]
    chunks, _ = public_rooms_all(base, tok, {"filter": {"generic_search_term": needle,
                                                        "room_types": [None]}}, limit=100)
    assert {c["room_id"] for c in chunks} == {named, topical}


def test_public_rooms_bad_since(base):
    r = call(base, "GET", f"{CLIENT_V3}/publicRooms", params={"since": "bogus!"})
    assert r.status_code == 400, r.text


# ---------------------------------------------------------------- members


def test_members_and_filters(base, user, user2):
    tok = user["access_token"]
    u3 = new_user(base)
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    invite(base, tok, room_id, u3["user_id"])
    chunk = assert_ok(call(base, "GET", rpath(room_id, "members"), token=tok))["chunk"]
    by = {e["state_key"]: e["content"]["membership"] for e in chunk}
    assert by == {user["user_id"]: "join", user2["user_id"]: "join", u3["user_id"]: "invite"}
    assert all(e["type"] == "m.room.member" for e in chunk)
    chunk = assert_ok(call(base, "GET", rpath(room_id, "members"), token=tok,
                           params={"membership": "invite"}))["chunk"]
    assert [e["state_key"] for e in chunk] == [u3["user_id"]]
    chunk = assert_ok(call(base, "GET", rpath(room_id, "members"), token=tok,
                           params={"not_membership": "join"}))["chunk"]
    assert [e["state_key"] for e in chunk] == [u3["user_id"]]


def test_members_at_token(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    send_text(base, tok, room_id, "before user2")
    at = messages(base, tok, room_id, dir="b", limit=1)["start"]
    join(base, user2["access_token"], room_id)
    leave(base, user2["access_token"], room_id)
    chunk = assert_ok(call(base, "GET", rpath(room_id, "members"), token=tok,
                           params={"at": at}))["chunk"]
    assert {e["state_key"] for e in chunk} == {user["user_id"]}
    now = assert_ok(call(base, "GET", rpath(room_id, "members"), token=tok))["chunk"]
    assert {e["state_key"]: e["content"]["membership"] for e in now}[user2["user_id"]] == "leave"


def test_members_non_member(base, user, user2):
    room_id = create_room(base, user["access_token"])
    assert_forbidden(call(base, "GET", rpath(room_id, "members"), token=user2["access_token"]))


def test_joined_members(base, user, user2):
    tok = user["access_token"]
    set_displayname(base, user2, "Second User")
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/profile/{qid(user2['user_id'])}/avatar_url",
                   {"avatar_url": "mxc://x.org/u2"}, token=user2["access_token"]))
    u3 = new_user(base)
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    invite(base, tok, room_id, u3["user_id"])
    joined = assert_ok(call(base, "GET", rpath(room_id, "joined_members"), token=tok))["joined"]
    assert set(joined) == {user["user_id"], user2["user_id"]}
    assert joined[user2["user_id"]]["display_name"] == "Second User"
    assert joined[user2["user_id"]]["avatar_url"] == "mxc://x.org/u2"
    assert joined[user["user_id"]]["display_name"] == user["username"]
    assert_forbidden(call(base, "GET", rpath(room_id, "joined_members"), token=u3["access_token"]))


@pytest.mark.parametrize("path", ["members", "joined_members"])
def test_members_unknown_room(base, user, server_name, path):
    r = call(base, "GET", rpath(f"!nope{txn()[:8]}:{server_name}", path), token=user["access_token"])
    assert r.status_code in (403, 404), r.text


def test_public_rooms_post_requires_auth_get_does_not(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/publicRooms", {}), 401, "M_MISSING_TOKEN")
    assert isinstance(assert_ok(call(base, "GET", f"{CLIENT_V3}/publicRooms"))["chunk"], list)


def test_profile_change_updates_member_event(base, user, user2):
    """A profile change is reflected in each joined room's member event (as in Synapse):
    /joined_members, /members and the state all show the new name."""
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    set_displayname(base, user2, "Renamed Later")
    joined = assert_ok(call(base, "GET", rpath(room_id, "joined_members"), token=tok))["joined"]
    assert joined[user2["user_id"]]["display_name"] == "Renamed Later"
    member = assert_ok(call(base, "GET", rpath(room_id, "state", "m.room.member", user2["user_id"]),
                            token=tok))
    assert member["membership"] == "join" and member.get("displayname") == "Renamed Later", member


# ---------------------------------------------------------------- optional fields


def assert_no_nulls(value, where="body"):
    """The OpenAPI marks these fields optional, not nullable: absent when unknown."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert v is not None, f"{where}.{k} is null"
            assert_no_nulls(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_nulls(v, f"{where}[{i}]")


def test_unset_profile_fields_are_absent_not_null(base):
    """user_directory/search, /joined_members and /devices leave out a display name or
    avatar that is not set, instead of answering `null` (users.yaml, rooms.yaml,
    client_device.yaml)."""
    me, other = new_user(base, prefix="nonull"), new_user(base, prefix="nonull")
    set_displayname(base, other, None)  # clears it: no display name, no avatar
    room = room_pair(base, me, other)

    out = assert_ok(call(base, "POST", f"{CLIENT_V3}/user_directory/search",
                         {"search_term": other["user_id"][1:].split(":")[0]}, token=me["access_token"]))
    assert_no_nulls(out)
    assert out["results"] == [{"user_id": other["user_id"]}], out

    joined = assert_ok(call(base, "GET", rpath(room, "joined_members"), token=me["access_token"]))["joined"]
    assert_no_nulls(joined)
    assert joined[other["user_id"]] == {}, joined

    devices = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices", token=other["access_token"]))["devices"]
    assert_no_nulls(devices)
    assert devices and all("device_id" in d for d in devices)
