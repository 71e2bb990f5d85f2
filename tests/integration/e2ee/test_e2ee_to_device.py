"""Send-to-device messaging (spec: client-server-api, "Send-to-Device messaging"): per-device
queues, delivery until acknowledged, `*`, idempotent transactions, unknown devices, limits."""

from __future__ import annotations

import uuid

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, login
from sync_helpers import sync


def send(base, token, messages, txn=None, kind="m.test"):
    return call(base, "PUT", f"{CLIENT_V3}/sendToDevice/{kind}/{txn or uuid.uuid4().hex}", {"messages": messages}, token=token)


def events(body):
    return body["to_device"]["events"]


def test_delivered_until_acknowledged_then_deleted(base, user, user2):
    since = sync(base, user2["access_token"])["next_batch"]
    assert_ok(send(base, user["access_token"], {user2["user_id"]: {user2["device_id"]: {"n": 1}}}))
    first = sync(base, user2["access_token"], since)
    assert [(e["sender"], e["type"], e["content"]) for e in events(first)] == [(user["user_id"], "m.test", {"n": 1})]
    # Not acknowledged yet (same since): delivered again.
    again = sync(base, user2["access_token"], since)
    assert [e["content"] for e in events(again)] == [{"n": 1}]
    # Acknowledged by the next since: gone.
    after = sync(base, user2["access_token"], first["next_batch"])
    assert events(after) == []


def test_star_reaches_every_device_and_txn_is_idempotent(base, user, user2):
    second = login(base, user2["user_id"])
    s1 = sync(base, user2["access_token"])["next_batch"]
    s2 = sync(base, second["access_token"])["next_batch"]
    txn = uuid.uuid4().hex
    for _ in range(2):
        assert_ok(send(base, user["access_token"], {user2["user_id"]: {"*": {"all": True}}}, txn=txn))
    assert [e["content"] for e in events(sync(base, user2["access_token"], s1))] == [{"all": True}]
    assert [e["content"] for e in events(sync(base, second["access_token"], s2))] == [{"all": True}]


def test_txn_id_scoped_by_event_type(base, user, user2):
    """A transaction ID is scoped to the endpoint with its path: the same ID for another
    event type is a new request, not a silently dropped one."""
    since = sync(base, user2["access_token"])["next_batch"]
    txn = uuid.uuid4().hex
    target = {user2["user_id"]: {user2["device_id"]: {"n": 1}}}
    assert_ok(send(base, user["access_token"], target, txn=txn, kind="m.test.one"))
    assert_ok(send(base, user["access_token"], target, txn=txn, kind="m.test.two"))
    assert_ok(send(base, user["access_token"], target, txn=txn, kind="m.test.two"))  # a retry
    got = sorted(e["type"] for e in events(sync(base, user2["access_token"], since)))
    assert got == ["m.test.one", "m.test.two"], got


def test_unknown_devices_and_remote_users_are_skipped(base, user, user2):
    since = sync(base, user2["access_token"])["next_batch"]
    assert_ok(send(base, user["access_token"], {
        user2["user_id"]: {"NOSUCHDEVICE": {"x": 1}, user2["device_id"]: {"x": 2}},
        "@someone:remote.invalid": {"D": {"x": 3}},
    }))
    assert [e["content"] for e in events(sync(base, user2["access_token"], since))] == [{"x": 2}]


def test_limits_and_bad_input(base, user, user2):
    since = sync(base, user2["access_token"])["next_batch"]
    big = {"data": "x" * 70_000}
    assert_error(send(base, user["access_token"], {user2["user_id"]: {user2["device_id"]: big}}), 413, "M_TOO_LARGE")
    assert_error(send(base, user["access_token"], {user2["user_id"]: {user2["device_id"]: "text"}}), 400, "M_BAD_JSON")
    assert_error(send(base, user["access_token"], {user2["user_id"]: ["x"]}), 400, "M_BAD_JSON")
    assert_error(call(base, "PUT", f"{CLIENT_V3}/sendToDevice/m.test/t1", {"messages": []}, token=user["access_token"]), 400, "M_BAD_JSON")
    # Nothing of a refused request was queued.
    assert events(sync(base, user2["access_token"], since)) == []
