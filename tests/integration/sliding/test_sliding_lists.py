"""Sliding sync lists and room configs (MSC4186): range changes, 0-length ranges, a room
leaving and re-entering the window, kicks, bans and leaves, filters, room subscriptions,
required_state widening and narrowing, the timeline_limit cap, request limits, and the D1
cost of a request as the account grows."""

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, qid
from rooms_helpers import create_room, join, leave, membership_raw, put_state, room_pair, send
from sliding_helpers import lists_only, room_list, sliding, sliding_raw, timeline_ids


def test_range_changes_send_only_rooms_not_sent(base, user):
    tok = user["access_token"]
    rooms = [create_room(base, tok) for _ in range(5)]
    body = sliding(base, tok, lists_only({"all": room_list(ranges=[[0, 1]])}))
    assert set(body["rooms"]) == set(rooms[-2:]) and body["lists"]["all"]["count"] == 5
    body = sliding(base, tok, lists_only({"all": room_list(ranges=[[0, 4]])}), pos=body["pos"])
    assert set(body["rooms"]) == set(rooms[:3])
    assert all(r["initial"] for r in body["rooms"].values())
    # Two ranges; a range past the end takes nothing.
    body = sliding(base, tok, lists_only({"all": room_list(ranges=[[0, 0], [3, 3], [10, 20]])}), conn_id="two")
    assert set(body["rooms"]) == {rooms[4], rooms[1]}


def test_zero_length_ranges(base, user):
    tok = user["access_token"]
    for _ in range(2):
        create_room(base, tok)
    body = sliding(base, tok, lists_only({"none": room_list(ranges=[])}))
    assert body["lists"] == {"none": {"count": 2}} and body["rooms"] == {}
    body = sliding(base, tok, lists_only({"one": room_list(ranges=[[0, 0]])}), conn_id="one")
    assert len(body["rooms"]) == 1
    # The newer `range` field, and no range at all (the whole list).
    body = sliding(base, tok, lists_only({"r": {"range": [1, 1], "timeline_limit": 1, "required_state": []}}), conn_id="r")
    assert len(body["rooms"]) == 1
    body = sliding(base, tok, lists_only({"all": {"timeline_limit": 0, "required_state": []}}), conn_id="all")
    assert len(body["rooms"]) == 2


def test_room_leaves_and_reenters_the_window(base, user):
    tok = user["access_token"]
    r0, r1 = create_room(base, tok), create_room(base, tok)
    req = lists_only({"top": room_list(ranges=[[0, 0]], timeline_limit=5)})
    body = sliding(base, tok, req)
    assert set(body["rooms"]) == {r1}
    # r0 moves to the top: it enters the window, r1 leaves it.
    e0 = send(base, tok, r0, "r0 news")
    body = sliding(base, tok, req, pos=body["pos"])
    assert set(body["rooms"]) == {r0} and body["rooms"][r0]["initial"] is True
    assert timeline_ids(body["rooms"][r0])[-1] == e0
    # r1 gets two messages while out of the window, which brings it back: only what is new.
    new = [send(base, tok, r1, f"r1 news {i}") for i in range(2)]
    body = sliding(base, tok, req, pos=body["pos"])
    r = body["rooms"][r1]
    assert "initial" not in r
    assert timeline_ids(r) == new and r["limited"] is False and r["num_live"] == 2


def test_kick_ban_and_leave(base, user, user2):
    tok, tok2 = user["access_token"], user2["access_token"]
    kicked = room_pair(base, user, user2)
    banned = room_pair(base, user, user2)
    left = room_pair(base, user, user2)
    req = lists_only({"all": room_list(timeline_limit=5)})
    body = sliding(base, tok2, req)
    assert set(body["rooms"]) == {kicked, banned, left}

    assert_ok(membership_raw(base, tok, kicked, "kick", {"user_id": user2["user_id"]}))
    assert_ok(membership_raw(base, tok, banned, "ban", {"user_id": user2["user_id"]}))
    leave(base, tok2, left)
    body = sliding(base, tok2, req, pos=body["pos"])
    for room, membership in ((kicked, "leave"), (banned, "ban"), (left, "leave")):
        r = body["rooms"][room]
        last = r["timeline"][-1]
        assert (last["type"], last["state_key"], last["content"]["membership"]) == ("m.room.member", user2["user_id"], membership)
        assert "initial" not in r
    # Kicked and banned rooms stay in the list; the room left is gone after showing the leave.
    pos = body["pos"]
    for room in (kicked, banned, left):
        send(base, tok, room, "after you went")
    body = sliding(base, tok2, req, pos=pos)
    assert body["lists"]["all"]["count"] == 2
    assert body["rooms"] == {}


def test_a_ban_without_a_join_is_not_listed(base, user, user2):
    """MSC4186 "Lists": rooms the user was banned from without ever joining are not part of
    the list (an unwanted invite answered with a ban); a ban after a join is."""
    tok, tok2 = user["access_token"], user2["access_token"]
    invited = create_room(base, tok, invite=[user2["user_id"]])
    joined = room_pair(base, user, user2)
    req = lists_only({"all": room_list(timeline_limit=5)})
    assert set(sliding(base, tok2, req)["rooms"]) == {invited, joined}
    for room in (invited, joined):
        assert_ok(membership_raw(base, tok, room, "ban", {"user_id": user2["user_id"]}))
    body = sliding(base, tok2, req)
    assert set(body["rooms"]) == {joined}
    assert body["lists"]["all"]["count"] == 1


def test_filters(base, user, user2):
    tok = user["access_token"]
    plain = create_room(base, tok)
    enc = create_room(base, tok, initial_state=[{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    space = create_room(base, tok, creation_content={"type": "m.space"})
    dm = create_room(base, tok, is_direct=True)
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/user/{qid(user['user_id'])}/account_data/m.direct", {user2["user_id"]: [dm]}, token=tok))

    def ids(filters):
        body = sliding(base, tok, lists_only({"l": room_list(ranges=[[0, 9]], filters=filters)}), conn_id=None)
        return set(body["rooms"]), body["lists"]["l"]["count"]

    assert ids({"is_encrypted": True}) == ({enc}, 1)
    assert ids({"is_encrypted": False})[1] == 3
    assert ids({"is_dm": True}) == ({dm}, 1)
    assert ids({"is_dm": False}) == ({plain, enc, space}, 3)
    assert ids({"room_types": ["m.space"]}) == ({space}, 1)
    assert ids({"not_room_types": ["m.space"]}) == ({plain, enc, dm}, 3)
    assert ids({"room_types": [None]}) == ({plain, enc, dm}, 3)
    assert ids({"not_room_types": [None]}) == ({space}, 1)

    # Space children (with a `via`; an emptied child event is a removal), and tags.
    put_state(base, tok, space, "m.space.child", {"via": ["example.org"]}, state_key=plain)
    put_state(base, tok, space, "m.space.child", {}, state_key=enc)
    assert ids({"spaces": [space]}) == ({plain}, 1)
    assert ids({"spaces": ["!unknown:example.org"]}) == (set(), 0)
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/user/{qid(user['user_id'])}/rooms/{qid(enc)}/tags/m.favourite", {"order": 0.5}, token=tok))
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/user/{qid(user['user_id'])}/rooms/{qid(dm)}/tags/u.work", {}, token=tok))
    assert ids({"tags": ["m.favourite", "u.work"]}) == ({enc, dm}, 2)
    assert ids({"not_tags": ["m.favourite"]}) == ({plain, space, dm}, 3)
    assert ids({"tags": ["m.favourite", "u.work"], "not_tags": ["u.work"]}) == ({enc}, 1)


def test_room_subscriptions(base, user, user2):
    tok = user["access_token"]
    old = create_room(base, tok, name="Old one")
    create_room(base, tok)
    outsider = create_room(base, user2["access_token"])
    req = lists_only({"top": room_list(ranges=[[0, 0]])},
                     room_subscriptions={old: {"timeline_limit": 3, "required_state": [["*", "*"]]},
                                         outsider: {"timeline_limit": 3, "required_state": []}})
    body = sliding(base, tok, req)
    assert old in body["rooms"] and outsider not in body["rooms"]
    r = body["rooms"][old]
    assert len(r["timeline"]) == 3
    # All of the state.
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.name"} <= {e["type"] for e in r["required_state"]}
    # A subscription lasts for the connection (matrix-js-sdk sends each once): the room's
    # news comes though it is out of the window.
    newest = create_room(base, tok)
    ev = send(base, tok, old, "still subscribed")
    create_room(base, tok)
    body = sliding(base, tok, lists_only({"top": room_list(ranges=[[0, 0]])}), pos=body["pos"])
    assert timeline_ids(body["rooms"][old]) == [ev]
    # Unsubscribed, and out of the window: its news does not come.
    body = sliding(base, tok, lists_only({"top": room_list(ranges=[[0, 0]])}, unsubscribe_rooms=[old]), pos=body["pos"])
    pos = body["pos"]
    send(base, tok, old, "quiet")
    newest = create_room(base, tok)
    body = sliding(base, tok, lists_only({"top": room_list(ranges=[[0, 0]])}), pos=pos)
    assert set(body["rooms"]) == {newest}


def test_required_state_widening_and_narrowing(base, user):
    tok = user["access_token"]
    room = create_room(base, tok, name="Widen", topic="first topic")

    def req(state):
        return lists_only({"all": room_list(required_state=state)})

    body = sliding(base, tok, req([["m.room.name", ""]]))
    assert [e["type"] for e in body["rooms"][room]["required_state"]] == ["m.room.name"]
    # Wider: the newly covered state comes at once, without news in the room.
    body = sliding(base, tok, req([["m.room.name", ""], ["m.room.topic", ""]]), pos=body["pos"])
    r = body["rooms"][room]
    assert "initial" not in r
    assert [(e["type"], e["content"]["topic"]) for e in r["required_state"]] == [("m.room.topic", "first topic")]
    # Narrower: nothing to send.
    pos = body["pos"]
    body = sliding(base, tok, req([["m.room.name", ""]]), pos=pos)
    assert body["rooms"] == {} and body["pos"] == pos
    # A topic change while narrowed: in the timeline, not in required_state.
    ev = put_state(base, tok, room, "m.room.topic", {"topic": "second topic"})
    body = sliding(base, tok, req([["m.room.name", ""]]), pos=pos)
    assert timeline_ids(body["rooms"][room]) == [ev]
    assert body["rooms"][room]["required_state"] == []
    # Wider again: the current topic comes.
    body = sliding(base, tok, req([["m.room.name", ""], ["m.room.topic", ""]]), pos=body["pos"])
    assert [(e["type"], e["content"]["topic"]) for e in body["rooms"][room]["required_state"]] == [("m.room.topic", "second topic")]
    # The newer object form with a wildcard and an exclusion.
    body = sliding(base, tok, req({"include": [{}], "exclude": [{"type": "m.room.create"}]}), conn_id="obj")
    types = {e["type"] for e in body["rooms"][room]["required_state"]}
    assert "m.room.create" not in types and {"m.room.topic", "m.room.name", "m.room.member"} <= types


def test_timeline_limit_capped_and_expanded(base, user):
    tok = user["access_token"]
    room = create_room(base, tok)
    for i in range(102):
        send(base, tok, room, f"m{i}")
    body = sliding(base, tok, lists_only({"all": room_list(timeline_limit=100000)}))
    r = body["rooms"][room]
    assert len(r["timeline"]) == 100 and r["limited"] is True
    assert r["timeline"][-1]["content"]["body"] == "m101"
    # A connection sent 1 event per room; a subscription asking for 5 gets the latest 5.
    body = sliding(base, tok, lists_only({"all": room_list(timeline_limit=1)}), conn_id="small")
    assert len(body["rooms"][room]["timeline"]) == 1
    body = sliding(base, tok, lists_only({"all": room_list(timeline_limit=1)}, room_subscriptions={room: {"timeline_limit": 5, "required_state": []}}),
                   pos=body["pos"], conn_id="small")
    r = body["rooms"][room]
    assert [e["content"]["body"] for e in r["timeline"]] == [f"m{i}" for i in range(97, 102)]
    assert r["expanded_timeline"] is True and r["num_live"] == 0


def test_request_limits(base, user):
    tok = user["access_token"]
    many = {f"l{i}": room_list() for i in range(101)}
    assert_error(sliding_raw(base, tok, lists_only(many)), 400, "M_INVALID_PARAM")
    subs = {f"!r{i}:x": {"timeline_limit": 1, "required_state": []} for i in range(101)}
    assert_error(sliding_raw(base, tok, {"room_subscriptions": subs}), 400, "M_INVALID_PARAM")
    assert_error(sliding_raw(base, tok, lists_only({"a": room_list(ranges=[[0]])})), 400, "M_INVALID_PARAM")
    # 100 lists are fine.
    ok = {f"l{i}": room_list() for i in range(100)}
    assert_ok(sliding_raw(base, tok, lists_only(ok)))


def test_round_trips_do_not_grow_with_the_account(base, user, user2):
    def cost(u, n):
        tok = u["access_token"]
        for _ in range(n):
            create_room(base, tok)
        r = sliding_raw(base, tok, lists_only({"all": room_list(ranges=[[0, 19]])}))
        body = assert_ok(r)
        assert len(body["rooms"]) == min(n, 20)
        return int(r.headers["X-Stratus-D1-Round-Trips"])

    small, big = cost(user, 5), cost(user2, 60)
    assert big <= small + 1, (small, big)
    # The room list, one batch for the window's reads (Db::coalesced), what depends on them,
    # and the presence write with its fan-out when presence changes.
    assert big <= 8, big
