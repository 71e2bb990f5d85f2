"""Dehydrated devices (MSC3814): put, get, delete, replacement, and the events endpoint that
hands the dehydrated device its to-device messages without deleting them."""

from __future__ import annotations

import uuid

from e2ee_helpers import DEHYDRATED, b64, claim, device_keys, one_time_keys, query
from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, qid

import os


def dehydrate(base, u, device_id=None, **over):
    # A curve25519 key as the ID (MSC3814): base64, so often with '/' or '+' (percent-encoded in paths).
    device_id = device_id or b64(os.urandom(32))
    dk, signer = device_keys(u["user_id"], device_id, dehydrated=True)
    body = {
        "device_id": device_id,
        "device_data": {"algorithm": "org.matrix.msc3814.v2", "device_pickle": "opaque", "nonce": "n"},
        "initial_device_display_name": "Dehydrated",
        "device_keys": dk,
        "one_time_keys": one_time_keys(2, u["user_id"], signer),
        "fallback_keys": one_time_keys(1, u["user_id"], signer, fallback=True),
    }
    body.update(over)
    return call(base, "PUT", DEHYDRATED, body, token=u["access_token"]), device_id


def events(base, u, device_id, next_batch=None):
    body = {} if next_batch is None else {"next_batch": next_batch}
    return call(base, "POST", f"{DEHYDRATED}/{qid(device_id)}/events", body, token=u["access_token"])


def test_put_get_and_keys_of_a_dehydrated_device(base, user, user2):
    assert_error(call(base, "GET", DEHYDRATED, token=user["access_token"]), 404, "M_NOT_FOUND")
    r, dev = dehydrate(base, user)
    assert assert_ok(r) == {"device_id": dev}
    got = assert_ok(call(base, "GET", DEHYDRATED, token=user["access_token"]))
    assert got == {"device_id": dev, "device_data": {"algorithm": "org.matrix.msc3814.v2", "device_pickle": "opaque", "nonce": "n"}}
    devices = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices", token=user["access_token"]))["devices"]
    assert dev in [d["device_id"] for d in devices]
    q = query(base, user2["access_token"], {user["user_id"]: []})
    assert q["device_keys"][user["user_id"]][dev]["dehydrated"] is True
    r = assert_ok(claim(base, user2["access_token"], {user["user_id"]: {dev: "signed_curve25519"}}))
    assert dev in r["one_time_keys"][user["user_id"]]
    # Another user has none.
    assert_error(call(base, "GET", DEHYDRATED, token=user2["access_token"]), 404, "M_NOT_FOUND")


def test_events_are_paged_and_never_deleted(base, user, user2):
    r, dev = dehydrate(base, user)
    assert_ok(r)
    for i in range(3):
        assert_ok(call(base, "PUT", f"{CLIENT_V3}/sendToDevice/m.room.encrypted/{uuid.uuid4().hex}",
                       {"messages": {user["user_id"]: {dev: {"i": i}}}}, token=user2["access_token"]))
    first = assert_ok(events(base, user, dev))
    assert [e["content"]["i"] for e in first["events"]] == [0, 1, 2]
    assert all(e["sender"] == user2["user_id"] for e in first["events"])
    last = assert_ok(events(base, user, dev, first["next_batch"]))
    assert last["events"] == [] and "next_batch" not in last
    # Starting over gives the same messages: nothing was deleted.
    again = assert_ok(events(base, user, dev))
    assert [e["content"]["i"] for e in again["events"]] == [0, 1, 2]
    # GET with ?from= as the MSC text writes it.
    got = assert_ok(call(base, "GET", f"{DEHYDRATED}/{qid(dev)}/events", token=user["access_token"], params={"from": first["next_batch"]}))
    assert got["events"] == []
    # Not the dehydrated device, bad tokens.
    assert_error(events(base, user, user["device_id"]), 403, "M_FORBIDDEN")
    assert_error(events(base, user2, dev), 403, "M_FORBIDDEN")
    assert_error(events(base, user, dev, "not-a-token"), 400, "M_INVALID_PARAM")


def test_replace_and_delete(base, user, user2):
    r, old = dehydrate(base, user)
    assert_ok(r)
    r, new = dehydrate(base, user)
    assert_ok(r)
    ids = [d["device_id"] for d in assert_ok(call(base, "GET", f"{CLIENT_V3}/devices", token=user["access_token"]))["devices"]]
    assert new in ids and old not in ids
    q = query(base, user2["access_token"], {user["user_id"]: []})["device_keys"][user["user_id"]]
    assert new in q and old not in q
    assert assert_ok(call(base, "DELETE", DEHYDRATED, token=user["access_token"])) == {"device_id": new}
    assert_error(call(base, "GET", DEHYDRATED, token=user["access_token"]), 404, "M_NOT_FOUND")
    assert_error(call(base, "DELETE", DEHYDRATED, token=user["access_token"]), 404, "M_NOT_FOUND")
    q = query(base, user2["access_token"], {user["user_id"]: []})["device_keys"][user["user_id"]]
    assert new not in q


def test_bad_dehydrated_devices_are_refused(base, user):
    r, _ = dehydrate(base, user, device_id=user["device_id"])
    assert_error(r, 400, "M_INVALID_PARAM")  # the ID of a running device
    dk, _ = device_keys(user["user_id"], "OTHERID")
    r, _ = dehydrate(base, user, device_keys=dk)
    assert_error(r, 400, "M_INVALID_PARAM")  # keys of another device ID
    r, _ = dehydrate(base, user, device_data="x")
    assert_error(r, 400, "M_BAD_JSON")
    r, _ = dehydrate(base, user, device_keys=None)
    assert_error(r, 400, "M_BAD_JSON")
    assert_error(call(base, "GET", DEHYDRATED, token=user["access_token"]), 404, "M_NOT_FOUND")
