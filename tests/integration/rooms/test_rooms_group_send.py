"""The send path through the room's `Room` object: many senders at once are appended in
groups (one D1 batch for several requests), each still authorised on the state after the
ones before it and answered with its own event ID or error; once the object knows the room
a send costs a bounded number of D1 round trips (`X-Stratus-D1-Round-Trips`)."""

from concurrent.futures import ThreadPoolExecutor

from matrix_helpers import assert_error, assert_ok, assert_unknown_token, call, login, new_user, qid

V3 = "/_matrix/client/v3"


def _room(base, token, **body):
    return assert_ok(call(base, "POST", f"{V3}/createRoom", {"preset": "public_chat", **body}, token=token))["room_id"]


def _send(base, token, room, txn, body, kind="m.room.message"):
    return call(base, "PUT", f"{V3}/rooms/{qid(room)}/send/{kind}/{txn}", {"msgtype": "m.text", "body": body}, token=token)


def _timeline(base, token, room):
    page = assert_ok(call(base, "GET", f"{V3}/rooms/{qid(room)}/messages", token=token, params={"dir": "f", "limit": "1000"}))
    return page["chunk"]


def test_many_senders_at_once_each_get_their_event_in_one_linear_order(base):
    users = [new_user(base, f"gs{i}") for i in range(10)]
    room = _room(base, users[0]["access_token"])
    for u in users[1:]:
        assert_ok(call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=u["access_token"]))

    def send(i):
        u = users[i % len(users)]
        return assert_ok(_send(base, u["access_token"], room, f"g{i}", f"group {i}"))["event_id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(send, range(60)))
    assert len(set(ids)) == 60
    events = _timeline(base, users[0]["access_token"], room)
    by_id = {e["event_id"]: e for e in events}
    assert all(i in by_id for i in ids)
    assert sorted(by_id[i]["content"]["body"] for i in ids) == sorted(f"group {i}" for i in range(60))
    assert len([e for e in events if e["event_id"] in set(ids)]) == 60


def test_a_refused_send_in_a_busy_room_fails_alone(base):
    owner, member, outsider = new_user(base, "gr_o"), new_user(base, "gr_m"), new_user(base, "gr_x")
    room = _room(base, owner["access_token"])
    assert_ok(call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=member["access_token"]))

    def send(i):
        who = outsider if i % 5 == 0 else (owner if i % 2 else member)
        return i, _send(base, who["access_token"], room, f"r{i}", f"busy {i}")

    with ThreadPoolExecutor(max_workers=15) as pool:
        results = list(pool.map(send, range(30)))
    for i, r in results:
        if i % 5 == 0:
            assert_error(r, 403, "M_FORBIDDEN")
        else:
            assert_ok(r)
    bodies = [e["content"].get("body") for e in _timeline(base, owner["access_token"], room) if e["type"] == "m.room.message"]
    assert sorted(bodies) == sorted(f"busy {i}" for i in range(30) if i % 5)


def test_sends_follow_state_changes(base):
    """What the Room object keeps follows the room's state: once the power levels require
    more for messages, the member's sends (after ones that were allowed) are refused."""
    owner, member = new_user(base, "gp_o"), new_user(base, "gp_m")
    room = _room(base, owner["access_token"])
    assert_ok(call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=member["access_token"]))
    assert_ok(_send(base, member["access_token"], room, "before-pl", "allowed"))
    pl = assert_ok(call(base, "GET", f"{V3}/rooms/{qid(room)}/state/m.room.power_levels/", token=owner["access_token"]))
    pl["events"] = {**pl.get("events", {}), "m.room.message": 50}
    assert_ok(call(base, "PUT", f"{V3}/rooms/{qid(room)}/state/m.room.power_levels/", pl, token=owner["access_token"]))
    # The member now may not send messages, the owner may.
    assert_error(_send(base, member["access_token"], room, "after-pl", "no"), 403, "M_FORBIDDEN")
    assert_ok(_send(base, owner["access_token"], room, "owner-ok", "yes"))


def test_send_reads_nothing_once_the_room_object_knows_the_room(base):
    a, b = new_user(base, "gc_a"), new_user(base, "gc_b")
    room = _room(base, a["access_token"])
    assert_ok(call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=b["access_token"]))
    for i in range(3):  # the object loads what it keeps
        assert_ok(_send(base, a["access_token"], room, f"warm{i}", "warm"))
    trips = []
    for i in range(5):
        r = _send(base, a["access_token"], room, f"cost{i}", f"cost {i}")
        assert_ok(r)
        trips.append(int(r.headers["X-Stratus-D1-Round-Trips"]))
    # One: the token comes from the isolate's cache and is confirmed inside the append's
    # batch, which also writes the push actions (for the other member) computed before it.
    assert trips == [1] * 5, trips
    # A repeated transaction is answered with the same event, and stored once.
    first = assert_ok(_send(base, a["access_token"], room, "cost0", "again"))["event_id"]
    bodies = [e["content"].get("body") for e in _timeline(base, a["access_token"], room) if e["type"] == "m.room.message"]
    assert bodies.count("cost 0") == 1 and "again" not in bodies
    assert first in {e["event_id"] for e in _timeline(base, a["access_token"], room)}


def test_a_revoked_token_cannot_send_even_from_a_busy_group(base):
    """A send's token read from the isolate's cache is confirmed by the append's own batch:
    once logged out it is refused at once (M_UNKNOWN_TOKEN), stores nothing, and the sends
    of others committed in the same groups land."""
    owner, other = new_user(base, "gt_o"), new_user(base, "gt_x")
    room = _room(base, owner["access_token"])
    assert_ok(call(base, "POST", f"{V3}/join/{qid(room)}", {}, token=other["access_token"]))
    second = login(base, owner["user_id"])["access_token"]
    for i in range(2):  # cached in the isolate
        assert_ok(_send(base, second, room, f"ok{i}", f"second {i}"))
    assert_ok(call(base, "POST", f"{V3}/logout", {}, token=second))

    def send(i):
        if i % 4 == 0:
            return i, _send(base, second, room, f"dead{i}", f"revoked {i}")
        return i, _send(base, other["access_token"], room, f"live{i}", f"live {i}")

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(send, range(24)))
    for i, r in results:
        if i % 4 == 0:
            assert_unknown_token(r)
        else:
            assert_ok(r)
    bodies = [e["content"].get("body") for e in _timeline(base, owner["access_token"], room) if e["type"] == "m.room.message"]
    assert not [b for b in bodies if b and b.startswith("revoked")]
    assert sorted(b for b in bodies if b and b.startswith("live")) == sorted(f"live {i}" for i in range(24) if i % 4)
    # And stays refused, also for a repeated transaction of an earlier, accepted send.
    assert_unknown_token(_send(base, second, room, "ok0", "second 0"))
