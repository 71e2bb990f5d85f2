"""Sliding sync (MSC4186, unstable endpoint): the endpoint and its advertisement, lists
ordered by recency with counts and ranges, the room fields a room list needs, invites with
stripped state, connections (`pos`, retries, M_UNKNOWN_POS) and long-polling."""

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user, qid, set_displayname
from rooms_helpers import create_room, invite, join, send
from sliding_helpers import (
    BackgroundSliding,
    lists_only,
    room_list,
    sliding,
    sliding_raw,
    timeline_ids,
)


def test_advertised_in_versions(base):
    v = assert_ok(call(base, "GET", "/_matrix/client/versions"))
    assert v["unstable_features"]["org.matrix.simplified_msc3575"] is True


def test_room_list_by_recency_and_a_new_message_moves_a_room_up(base, user):
    tok = user["access_token"]
    rooms = [create_room(base, tok, name=f"R{i}") for i in range(4)]
    # The oldest room gets a message: it is now the most recent.
    send(base, tok, rooms[0], "bump")
    body = sliding(base, tok, lists_only({"all": room_list(ranges=[[0, 1]])}))
    assert body["lists"]["all"]["count"] == 4
    # The window is the top two by recency: rooms[0] (bumped) and rooms[3] (newest).
    assert set(body["rooms"]) == {rooms[0], rooms[3]}
    assert body["rooms"][rooms[0]]["bump_stamp"] > body["rooms"][rooms[3]]["bump_stamp"]
    pos = body["pos"]

    # A message in rooms[1] moves it into the window: it comes, initial, with the message.
    ev = send(base, tok, rooms[1], "up you go")
    body = sliding(base, tok, lists_only({"all": room_list(ranges=[[0, 1]])}), pos=pos)
    assert rooms[1] in body["rooms"]
    r1 = body["rooms"][rooms[1]]
    assert r1["initial"] is True and timeline_ids(r1) == [ev]
    assert r1["bump_stamp"] > body["rooms"].get(rooms[0], {}).get("bump_stamp", 0)
    # rooms[0] was sent before and has nothing new: not repeated.
    assert rooms[0] not in body["rooms"]


def test_room_fields(base, user, user2):
    tok = user["access_token"]
    set_displayname(base, user2, "Bob the Builder")
    named = create_room(base, tok, name="Named room", topic="a topic")
    dm = create_room(base, tok, is_direct=True, invite=[user2["user_id"]])
    join(base, user2["access_token"], dm)
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/user/{qid(user['user_id'])}/account_data/m.direct",
                   {user2["user_id"]: [dm]}, token=tok))
    msgs = [send(base, user2["access_token"], dm, f"hi {i}") for i in range(3)]

    body = sliding(base, tok, lists_only({"all": room_list(timeline_limit=2)}, txn_id="tx-1"))
    assert body["txn_id"] == "tx-1"
    assert isinstance(body["pos"], str) and body["pos"]
    r = body["rooms"][named]
    assert r["name"] == "Named room" and r["initial"] is True
    assert r["joined_count"] == 1 and r["invited_count"] == 0
    assert "heroes" not in r
    state = {(e["type"], e["state_key"]): e for e in r["required_state"]}
    assert ("m.room.name", "") in state and ("m.room.create", "") in state
    assert ("m.room.member", user["user_id"]) in state  # $ME
    assert ("m.room.topic", "") in state
    assert r["is_dm"] is False

    d = body["rooms"][dm]
    assert d["is_dm"] is True
    assert "name" not in d
    assert [h["user_id"] for h in d["heroes"]] == [user2["user_id"]]
    assert d["heroes"][0]["displayname"] == "Bob the Builder"
    assert d["joined_count"] == 2
    assert timeline_ids(d) == msgs[-2:]
    assert d["limited"] is True and d["num_live"] == 0
    assert d["notification_count"] == 3
    # $LAZY: the member events of the timeline's senders.
    members = {e["state_key"] for e in d["required_state"] if e["type"] == "m.room.member"}
    assert members == {user["user_id"], user2["user_id"]}
    # prev_batch pages back with /messages from before the timeline.
    page = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(dm)}/messages", token=tok,
                          params={"dir": "b", "from": d["prev_batch"], "limit": "1"}))
    assert [e["event_id"] for e in page["chunk"]] == [msgs[0]]


def test_invite_with_stripped_state(base, user, user2):
    tok2 = user2["access_token"]
    room = create_room(base, user["access_token"], name="Come in")
    invite(base, user["access_token"], room, user2["user_id"])
    body = sliding(base, tok2, lists_only({"all": room_list()}))
    r = body["rooms"][room]
    assert r["initial"] is True
    types = {(e["type"], e.get("state_key")) for e in r["invite_state"]}
    assert ("m.room.name", "") in types and ("m.room.member", user2["user_id"]) in types
    assert r["stripped_state"] == r["invite_state"]
    assert "timeline" not in r
    # Filters: only invites, or no invites.
    body = sliding(base, tok2, lists_only({"inv": room_list(filters={"is_invite": True}),
                                           "rest": room_list(filters={"is_invite": False})}), conn_id="f")
    assert body["lists"] == {"inv": {"count": 1}, "rest": {"count": 0}}
    # Joining sends the room afresh, now with its timeline.
    pos = body["pos"]
    join(base, tok2, room)
    body = sliding(base, tok2, lists_only({"inv": room_list(filters={"is_invite": True}),
                                           "rest": room_list(filters={"is_invite": False})}), pos=pos, conn_id="f")
    assert body["lists"] == {"inv": {"count": 0}, "rest": {"count": 1}}
    r = body["rooms"][room]
    assert r["initial"] is True and "invite_state" not in r
    assert r["timeline"][-1]["type"] == "m.room.member" and r["timeline"][-1]["state_key"] == user2["user_id"]


def test_unknown_pos_and_retried_pos(base, user):
    tok = user["access_token"]
    assert_error(sliding_raw(base, tok, lists_only({"all": room_list()}), pos="999999"), 400, "M_UNKNOWN_POS")
    assert_error(sliding_raw(base, tok, lists_only({"all": room_list()}), pos="not-a-pos"), 400, "M_UNKNOWN_POS")
    a = create_room(base, tok)
    first = sliding(base, tok, lists_only({"all": room_list()}))
    assert set(first["rooms"]) == {a}
    pos = first["pos"]
    # Another device's pos is unknown to this one.
    other = call(base, "POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user["user_id"]}, "password": user["password"]})
    tok_b = assert_ok(other)["access_token"]
    assert_error(sliding_raw(base, tok_b, lists_only({"all": room_list()}), pos=pos), 400, "M_UNKNOWN_POS")
    # So is another connection's.
    assert_error(sliding_raw(base, tok, lists_only({"all": room_list()}), pos=pos, conn_id="other"), 400, "M_UNKNOWN_POS")

    ev = send(base, tok, a, "new")
    second = sliding(base, tok, lists_only({"all": room_list()}), pos=pos)
    assert timeline_ids(second["rooms"][a]) == [ev]
    assert second["pos"] != pos
    # The client never got `second` and retries with the same pos: the same room and event.
    again = sliding(base, tok, lists_only({"all": room_list()}), pos=pos)
    assert timeline_ids(again["rooms"][a]) == [ev]
    assert again["rooms"][a].get("initial") is None
    # Continuing from the retry's pos: nothing new; the earlier answer's pos is gone.
    third = sliding(base, tok, lists_only({"all": room_list()}), pos=again["pos"])
    assert third["rooms"] == {} and third["pos"] == again["pos"]
    assert_error(sliding_raw(base, tok, lists_only({"all": room_list()}), pos=pos), 400, "M_UNKNOWN_POS")
    # A connection started again (no pos) gets everything.
    fresh = sliding(base, tok, lists_only({"all": room_list()}))
    assert fresh["rooms"][a]["initial"] is True


def test_pos_and_timeout_in_the_body(base, user):
    tok = user["access_token"]
    a = create_room(base, tok)
    first = sliding(base, tok, lists_only({"all": room_list()}))
    ev = send(base, tok, a, "x")
    body = sliding(base, tok, lists_only({"all": room_list()}, pos=first["pos"], timeout=0))
    assert timeline_ids(body["rooms"][a]) == [ev]


def test_long_poll_woken_by_a_message_and_empty_on_timeout(base, user):
    tok = user["access_token"]
    a = create_room(base, tok)
    body = sliding(base, tok, lists_only({"all": room_list()}))
    pos = body["pos"]
    # Nothing happens: an empty but valid answer after the timeout, with the same pos.
    quiet = sliding(base, tok, lists_only({"all": room_list()}), pos=pos, timeout=1500)
    assert quiet["pos"] == pos and quiet["rooms"] == {} and quiet["lists"] == {"all": {"count": 1}}
    # A message wakes a waiting request.
    bg = BackgroundSliding(base, tok, lists_only({"all": room_list()}), pos=pos, timeout=20000)
    ev = send(base, tok, a, "wake up")
    woken, elapsed = bg.result()
    assert timeline_ids(woken["rooms"][a]) == [ev]
    assert woken["rooms"][a]["num_live"] == 1
    assert elapsed < 15


def test_many_new_users_have_no_rooms(base):
    u = new_user(base)
    body = sliding(base, u["access_token"], lists_only({"all": room_list()}))
    assert body["lists"] == {"all": {"count": 0}} and body["rooms"] == {}
