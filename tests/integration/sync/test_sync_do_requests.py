"""Durable Object requests per `/sync` (#17, the cost model): a long-poll opens one watch on
the user's `UserSync` object, and that one request also says whether to-device messages wait
for the device after its `since` and carries the device's key counts,
of which `UserSync` keeps a copy that `UserKeys` refreshes on every upload and claim. So an
idle poll is one object request, and the messages and counts a client sees stay right.

The instance runs with ``DEV_COST_HEADER=on``: every response says which objects it called
(``X-Stratus-Cost: ...;do=UserSync:1,...``)."""

from __future__ import annotations

import threading
import uuid

import pytest

from e2ee_helpers import claim, one_time_keys, setup_device, upload
from matrix_helpers import CLIENT_V3, assert_ok, call, cost_do_calls as do_calls, new_user
from sync_helpers import Background

IDLE_MS = 1500


@pytest.fixture(scope="module")
def dev(stratus_factory):
    return stratus_factory({"DEV_COST_HEADER": "on", "LOGIN_FAILURES_IP_MAX": "100000"})


def sync_raw(base, token, since=None, timeout=0):
    params = {"timeout": str(timeout), "set_presence": "offline"}
    if since:
        params["since"] = since
    r = call(base, "GET", f"{CLIENT_V3}/sync", token=token, params=params)
    return assert_ok(r), do_calls(r)


def settle(base, token):
    s = sync_raw(base, token)[0]["next_batch"]
    return sync_raw(base, token, s)[0]["next_batch"]


def send_to_device(base, sender, target, content):
    path = f"{CLIENT_V3}/sendToDevice/m.test/{uuid.uuid4().hex}"
    assert_ok(call(base, "PUT", path, {"messages": {target["user_id"]: {target["device_id"]: content}}}, token=sender["access_token"]))


def test_idle_long_poll_is_one_object_request(dev):
    base = dev.base
    me = new_user(base)
    since = settle(base, me["access_token"])
    body, calls = sync_raw(base, me["access_token"], since, timeout=IDLE_MS)
    assert body["next_batch"] == since
    assert calls == {"UserSync": 1}, calls
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    # A sync that does not wait: one request too (the queue read carries the counts).
    body, calls = sync_raw(base, me["access_token"], since)
    assert calls == {"UserSync": 1}, calls


def test_to_device_waiting_before_the_poll_is_delivered_then_acknowledged(dev):
    base = dev.base
    a, b = new_user(base), new_user(base)
    since = settle(base, b["access_token"])
    send_to_device(base, a, b, {"n": 1})
    # The watch says a message waits: the first pass reads it, no waiting.
    first, calls = sync_raw(base, b["access_token"], since, timeout=20000)
    assert [e["content"] for e in first["to_device"]["events"]] == [{"n": 1}]
    assert calls.get("UserSync") == 2, calls  # the watch, the queue read
    # Not acknowledged (same since): delivered again.
    again, _ = sync_raw(base, b["access_token"], since, timeout=20000)
    assert [e["content"] for e in again["to_device"]["events"]] == [{"n": 1}]
    # The next since acknowledges it: an idle poll, nothing delivered.
    after, calls = sync_raw(base, b["access_token"], first["next_batch"], timeout=IDLE_MS)
    assert after["to_device"]["events"] == [] and after["next_batch"] == first["next_batch"]
    assert calls == {"UserSync": 1}, calls
    # Gone for good: a sync that reads the queue finds nothing after that position either.
    plain, _ = sync_raw(base, b["access_token"], first["next_batch"])
    assert plain["to_device"]["events"] == []


def test_to_device_sent_during_the_poll_wakes_it(dev):
    base = dev.base
    a, b = new_user(base), new_user(base)
    since = settle(base, b["access_token"])
    poll = Background(lambda: sync_raw(base, b["access_token"], since, timeout=20000), "sync")
    threading.Event().wait(0.7)
    send_to_device(base, a, b, {"during": True})
    (body, calls), took = poll.result()
    assert took < 15, took
    assert [e["content"] for e in body["to_device"]["events"]] == [{"during": True}]
    assert calls.get("UserSync", 0) >= 2 and "UserKeys" not in calls, calls


def test_key_counts_follow_uploads_and_claims(dev):
    """Uploads and other users' claims refresh the copy that the sync reads: the counts are
    right without the sync asking `UserKeys`."""
    base = dev.base
    me, other = new_user(base), new_user(base)
    signer = setup_device(base, me)
    since = settle(base, me["access_token"])
    assert_ok(upload(base, me["access_token"], {"one_time_keys": one_time_keys(3, me["user_id"], signer)}))
    body, calls = sync_raw(base, me["access_token"], since, timeout=IDLE_MS)
    assert body["device_one_time_keys_count"]["signed_curve25519"] == 3
    assert body["device_unused_fallback_key_types"] == []
    assert "UserKeys" not in calls, calls
    assert_ok(claim(base, other["access_token"], {me["user_id"]: {me["device_id"]: "signed_curve25519"}}))
    body, calls = sync_raw(base, me["access_token"], since, timeout=IDLE_MS)
    assert body["device_one_time_keys_count"]["signed_curve25519"] == 2
    assert "UserKeys" not in calls, calls
    fallback = one_time_keys(1, me["user_id"], signer, fallback=True)
    assert_ok(upload(base, me["access_token"], {"fallback_keys": fallback}))
    body, calls = sync_raw(base, me["access_token"], since)
    assert body["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert calls == {"UserSync": 1}, calls
