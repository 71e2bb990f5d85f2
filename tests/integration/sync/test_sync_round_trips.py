"""D1 round trips of an incremental `/sync` (issue #13, the receiving leg): new events in rooms
the user was already in at `since` come from the snapshot batch itself, with their unread
counts, so such a sync (and the woken pass of a long poll) makes ONE round trip; an idle poll
too. What the response holds is the same as when the rooms were read in round trips of their
own: the timeline in order, `limited`, `prev_batch`, unread counts, `next_batch`.

The instance runs with ``DEV_COST_HEADER=on``: every response carries
``X-Stratus-D1-Round-Trips`` (and ``X-Stratus-Cost``)."""

from __future__ import annotations

import json
import threading

import pytest

from matrix_helpers import CLIENT_V3, assert_ok, call, new_user
from rooms_helpers import room_pair, send_text
from sync_helpers import Background, joined, sync_timeline_ids


@pytest.fixture(scope="module")
def dev(stratus_factory):
    return stratus_factory({"DEV_COST_HEADER": "on", "LOGIN_FAILURES_IP_MAX": "100000"})


def sync_trips(base, token, since=None, timeout=0, **extra):
    params = {"timeout": str(timeout), "set_presence": "offline", **extra}
    if since:
        params["since"] = since
    r = call(base, "GET", f"{CLIENT_V3}/sync", token=token, params=params)
    return assert_ok(r), int(r.headers["X-Stratus-D1-Round-Trips"])


def settle(base, token):
    s = sync_trips(base, token)[0]["next_batch"]
    return sync_trips(base, token, s)[0]["next_batch"]


@pytest.fixture
def pair(dev):
    a, b = new_user(dev.base), new_user(dev.base)
    room = room_pair(dev.base, a, b)
    return a, b, room


def test_new_messages_in_a_joined_room_are_one_round_trip(dev, pair):
    base = dev.base
    a, b, room = pair
    since = settle(base, b["access_token"])
    body, trips = sync_trips(base, b["access_token"], since)
    assert body["next_batch"] == since and trips == 1, (body, trips)

    sent = [send_text(base, a["access_token"], room, f"m{i}") for i in range(3)]
    body, trips = sync_trips(base, b["access_token"], since)
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == sent
    assert r["timeline"]["limited"] is False
    # A two-member room: every message notifies (`.m.rule.room_one_to_one`).
    assert r["unread_notifications"]["notification_count"] == 3, r
    assert trips == 1, trips

    # Read up to the second: the receipt moves the counts, in the same one round trip
    # when the room also has a new event.
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{room}/receipt/m.read/{sent[1]}", {}, token=b["access_token"]))
    more = send_text(base, a["access_token"], room, "m3")
    body2, _ = sync_trips(base, b["access_token"], body["next_batch"])
    assert sync_timeline_ids(body2, room) == [more]
    assert joined(body2, room)["unread_notifications"]["notification_count"] == 2

    # The next poll is idle: one round trip, nothing new, the same token back.
    idle, trips = sync_trips(base, b["access_token"], body2["next_batch"])
    assert idle["next_batch"] == body2["next_batch"] and room not in idle["rooms"]["join"] and trips == 1


def test_a_limited_window_keeps_its_order_limited_and_prev_batch(dev, pair):
    base = dev.base
    a, b, room = pair
    since = settle(base, b["access_token"])
    sent = [send_text(base, a["access_token"], room, f"m{i}") for i in range(5)]
    body, _ = sync_trips(base, b["access_token"], since, filter=json.dumps({"room": {"timeline": {"limit": 3}}}))
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == sent[2:]
    assert r["timeline"]["limited"] is True
    # Paging back from prev_batch returns the two before the window.
    back = assert_ok(
        call(base, "GET", f"{CLIENT_V3}/rooms/{room}/messages", token=b["access_token"], params={"dir": "b", "from": r["timeline"]["prev_batch"], "limit": "2"})
    )
    assert [e["event_id"] for e in back["chunk"]] == [sent[1], sent[0]]


def test_a_woken_long_poll_is_one_round_trip_per_pass(dev, pair):
    base = dev.base
    a, b, room = pair
    since = settle(base, b["access_token"])
    poll = Background(lambda: sync_trips(base, b["access_token"], since, timeout=20000), "sync")
    threading.Event().wait(0.7)
    ev = send_text(base, a["access_token"], room, "during")
    (body, trips), took = poll.result()
    assert sync_timeline_ids(body, room) == [ev]
    assert joined(body, room)["unread_notifications"]["notification_count"] == 1
    # The first pass (idle) and the woken one: a round trip each.
    assert trips == 2, trips


def test_a_room_joined_since_the_token_still_comes_whole(dev):
    """The rooms the snapshot does not cover (newly joined: full state and history) are read
    as before, next to a room it does cover."""
    base = dev.base
    a, b = new_user(base), new_user(base)
    old = room_pair(base, a, b)
    since = settle(base, b["access_token"])
    fresh = room_pair(base, a, b, name="fresh")
    ev = send_text(base, a["access_token"], old, "in the old room")
    body, _ = sync_trips(base, b["access_token"], since)
    assert sync_timeline_ids(body, old) == [ev]
    state = joined(body, fresh)["state"]["events"] + joined(body, fresh)["timeline"]["events"]
    assert any(e["type"] == "m.room.create" for e in state)
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "fresh" for e in state)


def test_lazy_loaded_members_come_in_the_same_round_trip(dev, pair):
    """With lazy-loaded members, the senders' member events (as of the timeline's start) come
    from the snapshot too when the timeline is the whole window; a limited one reads them
    (as before: as of its own start)."""
    base = dev.base
    a, b, room = pair
    lazy = json.dumps({"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 5}}})
    since = settle(base, b["access_token"])
    sent = [send_text(base, a["access_token"], room, f"m{i}") for i in range(2)]
    body, trips = sync_trips(base, b["access_token"], since, filter=lazy)
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == sent
    members = [e for e in r["state"]["events"] if e["type"] == "m.room.member"]
    assert [(e["state_key"], e["content"]["membership"]) for e in members] == [(a["user_id"], "join")], members
    # The snapshot, then the room summary (read whenever member events come, as they always
    # do with lazy loading); the member events no longer need a round trip between the two.
    assert trips == 2, trips

    # Limited: the member events as of the (later) timeline start, read on their own.
    more = [send_text(base, a["access_token"], room, f"n{i}") for i in range(7)]
    body, _ = sync_trips(base, b["access_token"], body["next_batch"], filter=lazy)
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == more[2:] and r["timeline"]["limited"] is True
    members = [e for e in r["state"]["events"] if e["type"] == "m.room.member"]
    assert [(e["state_key"], e["content"]["membership"]) for e in members] == [(a["user_id"], "join")], members
