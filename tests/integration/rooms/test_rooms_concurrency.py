"""Concurrent writers to one room: the Room Durable Object serialises appends, so every send
succeeds, each event is stored once, and a repeated transaction ID races to one event."""

from concurrent.futures import ThreadPoolExecutor

from matrix_helpers import assert_ok, call, new_user, qid

V3 = "/_matrix/client/v3"


def _room(base, token, **body):
    return assert_ok(call(base, "POST", f"{V3}/createRoom", {"preset": "public_chat", **body}, token=token))["room_id"]


def _all_messages(base, token, room):
    events, frm = [], None
    while True:
        params = {"dir": "b", "limit": "100"}
        if frm:
            params["from"] = frm
        page = assert_ok(call(base, "GET", f"{V3}/rooms/{qid(room)}/messages", token=token, params=params))
        events.extend(page["chunk"])
        if "end" not in page or not page["chunk"]:
            return events
        frm = page["end"]


def test_parallel_sends_from_two_users_all_land_once(base):
    a, b = new_user(base, "ca"), new_user(base, "cb")
    room = _room(base, a["access_token"])
    assert_ok(call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=b["access_token"]))

    def send(i):
        who = a if i % 2 else b
        r = call(base, "PUT", f"{V3}/rooms/{qid(room)}/send/m.room.message/par{i}",
                 {"msgtype": "m.text", "body": f"msg {i}"}, token=who["access_token"])
        return assert_ok(r)["event_id"]

    with ThreadPoolExecutor(max_workers=12) as pool:
        ids = list(pool.map(send, range(30)))
    assert len(set(ids)) == 30

    events = _all_messages(base, a["access_token"], room)
    bodies = [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
    assert sorted(bodies) == sorted(f"msg {i}" for i in range(30))
    assert len([e for e in events if e["event_id"] in ids]) == 30


def test_same_transaction_raced_stores_one_event(base):
    a = new_user(base, "ct")
    room = _room(base, a["access_token"])

    def send(_):
        r = call(base, "PUT", f"{V3}/rooms/{qid(room)}/send/m.room.message/same-txn",
                 {"msgtype": "m.text", "body": "once"}, token=a["access_token"])
        return assert_ok(r)["event_id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = set(pool.map(send, range(8)))
    assert len(ids) == 1, ids
    events = _all_messages(base, a["access_token"], room)
    assert [e["content"]["body"] for e in events if e["type"] == "m.room.message"] == ["once"]


def test_parallel_joins_and_state_changes_keep_state_consistent(base):
    owner = new_user(base, "co")
    room = _room(base, owner["access_token"])
    joiners = [new_user(base, f"cj{i}") for i in range(6)]

    def join(u):
        return call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=u["access_token"]).status_code

    def rename(i):
        return call(base, "PUT", f"{V3}/rooms/{qid(room)}/state/m.room.topic",
                    {"topic": f"topic {i}"}, token=owner["access_token"]).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(join, joiners)) + list(pool.map(rename, range(4)))
    assert codes == [200] * 10
    joined = assert_ok(call(base, "GET", f"{V3}/rooms/{qid(room)}/joined_members", token=owner["access_token"]))["joined"]
    assert set(joined) == {owner["user_id"], *(u["user_id"] for u in joiners)}
    topic = assert_ok(call(base, "GET", f"{V3}/rooms/{qid(room)}/state/m.room.topic", token=owner["access_token"]))
    # The current state is the last topic that was written, whichever it was.
    events = _all_messages(base, owner["access_token"], room)
    last_topic = next(e for e in events if e["type"] == "m.room.topic")
    assert topic["topic"] == last_topic["content"]["topic"]


def test_identical_rooms_created_at_once_are_distinct_rooms(base):
    """From room version 12 a room's ID is its create event's hash: the same user creating
    the same room many times at once still gets that many rooms, never a conflict."""
    a = new_user(base, "cc")

    def create(_):
        return _room(base, a["access_token"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        rooms = list(pool.map(create, range(120)))
    assert len(set(rooms)) == 120
    joined = assert_ok(call(base, "GET", f"{V3}/joined_rooms", token=a["access_token"]))["joined_rooms"]
    assert set(rooms) <= set(joined)
