"""Each stream wakes a waiting /sync at once (through the user's UserSync Durable Object),
and a sync that finds nothing returns after its timeout with the same positions."""

import time

from matrix_helpers import CLIENT_V3, assert_ok, call, qid
from rooms_helpers import create_room, room_pair, send
from sync_helpers import BackgroundSync, joined, sync

# A woken sync returns well before its timeout.
TIMEOUT_MS = 20000
FAST = 8.0


def pair(base, user, user2):
    """A private room ``user2`` was invited to and joined."""
    return room_pair(base, user, user2, preset="private_chat", invite=[user2["user_id"]])


def settle(base, token):
    """An initial sync, then incremental ones until nothing is pending."""
    s = sync(base, token)["next_batch"]
    return sync(base, token, s)["next_batch"]


def test_nothing_returns_after_timeout_with_same_positions(base, user):
    since = settle(base, user["access_token"])
    t0 = time.monotonic()
    body = sync(base, user["access_token"], since, timeout=1500, set_presence="offline")
    assert time.monotonic() - t0 >= 1.3
    assert body["next_batch"] == since
    assert body["rooms"]["join"] == {}


def test_message_wakes_sync(base, user, user2):
    room = pair(base, user, user2)
    since = settle(base, user2["access_token"])
    bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS)
    time.sleep(0.5)
    eid = send(base, user["access_token"], room, "wake up")
    body, took = bg.result()
    assert took < FAST, took
    assert eid in [e["event_id"] for e in joined(body, room)["timeline"]["events"]]


def test_invite_wakes_sync(base, user, user2):
    since = settle(base, user2["access_token"])
    bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS)
    time.sleep(0.5)
    room = create_room(base, user["access_token"], invite=[user2["user_id"]])
    body, took = bg.result()
    assert took < FAST, took
    assert room in body["rooms"]["invite"]


def test_typing_wakes_sync(base, user, user2):
    room = pair(base, user, user2)
    since = settle(base, user2["access_token"])
    bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS)
    time.sleep(0.5)
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room)}/typing/{qid(user['user_id'])}", {"typing": True, "timeout": 10000}, token=user["access_token"]))
    body, took = bg.result()
    assert took < FAST, took
    typing = [e for e in joined(body, room)["ephemeral"]["events"] if e["type"] == "m.typing"]
    assert typing and typing[0]["content"]["user_ids"] == [user["user_id"]]


def test_receipt_wakes_sync(base, user, user2):
    room = pair(base, user, user2)
    eid = send(base, user2["access_token"], room, "read me")
    since = settle(base, user2["access_token"])
    bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS)
    time.sleep(0.5)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room)}/receipt/m.read/{qid(eid)}", {}, token=user["access_token"]))
    body, took = bg.result()
    assert took < FAST, took
    rc = [e for e in joined(body, room)["ephemeral"]["events"] if e["type"] == "m.receipt"]
    assert rc and user["user_id"] in rc[0]["content"][eid]["m.read"]


def test_account_data_wakes_sync(base, user):
    since = settle(base, user["access_token"])
    bg = BackgroundSync(base, user["access_token"], since, TIMEOUT_MS)
    time.sleep(0.5)
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/user/{qid(user['user_id'])}/account_data/org.example.x", {"a": 1}, token=user["access_token"]))
    body, took = bg.result()
    assert took < FAST, took
    assert {"type": "org.example.x", "content": {"a": 1}} in body["account_data"]["events"]


def test_presence_wakes_sync(base, user, user2):
    pair(base, user, user2)
    since = settle(base, user2["access_token"])
    bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS, set_presence="offline")
    time.sleep(0.5)
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/presence/{qid(user['user_id'])}/status", {"presence": "unavailable", "status_msg": "away"}, token=user["access_token"]))
    body, took = bg.result()
    assert took < FAST, took
    ev = [e for e in body["presence"]["events"] if e["sender"] == user["user_id"]]
    assert ev and ev[0]["content"]["presence"] == "unavailable" and ev[0]["content"]["status_msg"] == "away"


def test_no_lost_wakeup_under_repeated_sends(base, user, user2):
    """Many back-to-back long-polls, each with a send racing it: none misses its event."""
    room = pair(base, user, user2)
    since = settle(base, user2["access_token"])
    for i in range(5):
        bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS, set_presence="offline")
        eid = send(base, user["access_token"], room, f"race {i}")
        body, took = bg.result()
        got = [e["event_id"] for e in joined(body, room).get("timeline", {}).get("events", [])]
        if eid not in got:
            # The sync may have returned on an earlier change; the next one must have it.
            body = sync(base, user2["access_token"], body["next_batch"], timeout=TIMEOUT_MS, set_presence="offline")
            got = [e["event_id"] for e in joined(body, room)["timeline"]["events"]]
        assert eid in got
        since = body["next_batch"]


def test_to_device_wakes_sync_and_is_acknowledged(base, user, user2):
    since = settle(base, user2["access_token"])
    bg = BackgroundSync(base, user2["access_token"], since, TIMEOUT_MS, set_presence="offline")
    time.sleep(0.5)
    path = f"{CLIENT_V3}/sendToDevice/org.example.ping/txn1"
    msg = {"messages": {user2["user_id"]: {user2["device_id"]: {"n": 1}}}}
    assert_ok(call(base, "PUT", path, msg, token=user["access_token"]))
    body, took = bg.result()
    assert took < FAST, took
    evs = body["to_device"]["events"]
    assert evs == [{"type": "org.example.ping", "sender": user["user_id"], "content": {"n": 1}}]
    # The same transaction again is not delivered twice; `*` reaches every device.
    assert_ok(call(base, "PUT", path, msg, token=user["access_token"]))
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/sendToDevice/org.example.ping/txn2",
                   {"messages": {user2["user_id"]: {"*": {"n": 2}}}}, token=user["access_token"]))
    nxt = sync(base, user2["access_token"], body["next_batch"], set_presence="offline")
    assert [e["content"] for e in nxt["to_device"]["events"]] == [{"n": 2}]
    # Until a later token is used the messages are kept: retrying the same token replays them.
    again = sync(base, user2["access_token"], body["next_batch"], set_presence="offline")
    assert [e["content"] for e in again["to_device"]["events"]] == [{"n": 2}]
    # Using next_batch acknowledges them: gone afterwards.
    assert sync(base, user2["access_token"], nxt["next_batch"], set_presence="offline")["to_device"]["events"] == []
