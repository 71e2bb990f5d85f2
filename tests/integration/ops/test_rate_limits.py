"""Request rate limits (issue 18): token buckets per user or client address, each kept by a
`RateLimiter` Durable Object, answering 429 M_LIMIT_EXCEEDED with retry_after_ms.

The harness starts every server with RATE_LIMITS=off; these tests set small limits. A rate
of 0.001/s refills one action per 1000 s, so nothing refills while a test runs.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from matrix_helpers import (
    CLIENT_V3,
    admin_register_raw,
    assert_error,
    assert_ok,
    call,
    describe,
    register,
    unique_username,
)
from rooms_helpers import create_room, join_raw, messages, public_room, rpath, send_raw

LIMITED = {
    "RATE_LIMIT_MESSAGE": "0.001/10",
    "RATE_LIMIT_JOIN": "0.001/2",
    "RATE_LIMIT_INVITE": "0.001/2",
    "RATE_LIMIT_MEDIA_CREATE": "0.001/2",
    "RATE_LIMIT_REGISTER_AVAILABLE": "0.001/2",
}


@pytest.fixture(scope="module")
def limited(stratus_factory):
    return stratus_factory(LIMITED)


def made_user(server, admin: bool = False) -> dict:
    """A user made through the shared-secret admin API (not subject to the registration limit)."""
    name = unique_username("rl")
    return assert_ok(admin_register_raw(server.base, server.shared_secret, name, admin=admin))


def assert_limited(r) -> int:
    body = assert_error(r, 429, "M_LIMIT_EXCEEDED")
    retry = body.get("retry_after_ms")
    assert isinstance(retry, int) and not isinstance(retry, bool) and retry > 0, describe(r)
    return retry


def test_parallel_sends_exactly_the_burst(limited):
    """50 sends at once against a burst of 10: exactly 10 go through, wherever they run."""
    base = limited.base
    u = made_user(limited)
    room = create_room(base, u["access_token"])

    def one(i: int):
        return send_raw(base, u["access_token"], room, {"msgtype": "m.text", "body": f"p{i}"}, txn_id=f"par-{i}")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    ok = [r for r in results if r.status_code == 200]
    limited_ = [r for r in results if r.status_code == 429]
    assert len(ok) == 10, [describe(r) for r in results if r.status_code not in (200, 429)] or len(ok)
    assert len(limited_) == 40
    for r in limited_:
        assert_limited(r)
    # And the room holds exactly those 10 messages.
    sent = [e for e in messages(base, u["access_token"], room, dir="b", limit=100)["chunk"] if e["type"] == "m.room.message"]
    assert sorted(e["event_id"] for e in sent) == sorted(r.json()["event_id"] for r in ok)


def test_retried_transaction_is_not_counted_again(limited):
    base = limited.base
    u = made_user(limited)
    room = create_room(base, u["access_token"])
    first = assert_ok(send_raw(base, u["access_token"], room, {"msgtype": "m.text", "body": "x"}, txn_id="same"))
    for _ in range(12):
        # The same transaction answers the same event without taking from the bucket.
        assert assert_ok(send_raw(base, u["access_token"], room, {"msgtype": "m.text", "body": "x"}, txn_id="same")) == first
    for i in range(9):
        assert_ok(send_raw(base, u["access_token"], room, {"msgtype": "m.text", "body": f"n{i}"}))
    assert_limited(send_raw(base, u["access_token"], room, {"msgtype": "m.text", "body": "over"}))


def test_server_admins_are_exempt(limited):
    base = limited.base
    admin = made_user(limited, admin=True)
    room = create_room(base, admin["access_token"])
    for i in range(13):
        assert_ok(send_raw(base, admin["access_token"], room, {"msgtype": "m.text", "body": f"a{i}"}))


def test_limits_are_per_user(limited):
    base = limited.base
    a, b = made_user(limited), made_user(limited)
    room = public_room(base, a["access_token"])
    assert_ok(join_raw(base, b["access_token"], room))
    for i in range(10):
        assert_ok(send_raw(base, a["access_token"], room, {"msgtype": "m.text", "body": f"a{i}"}))
    assert_limited(send_raw(base, a["access_token"], room, {"msgtype": "m.text", "body": "a-over"}))
    assert_ok(send_raw(base, b["access_token"], room, {"msgtype": "m.text", "body": "b still can"}))


def test_joins(limited):
    base = limited.base
    owner, joiner = made_user(limited), made_user(limited)
    rooms = [public_room(base, owner["access_token"]) for _ in range(3)]
    for room in rooms[:2]:
        assert_ok(call(base, "POST", rpath(room, "join"), {}, token=joiner["access_token"]))
    assert_limited(call(base, "POST", rpath(rooms[2], "join"), {}, token=joiner["access_token"]))
    assert_limited(join_raw(base, joiner["access_token"], rooms[2]))


def test_invites(limited):
    base = limited.base
    inviter = made_user(limited)
    invitees = [made_user(limited) for _ in range(3)]
    room = create_room(base, inviter["access_token"])
    for u in invitees[:2]:
        assert_ok(call(base, "POST", rpath(room, "invite"), {"user_id": u["user_id"]}, token=inviter["access_token"]))
    assert_limited(call(base, "POST", rpath(room, "invite"), {"user_id": invitees[2]["user_id"]}, token=inviter["access_token"]))


def test_media_create_and_upload(limited):
    base = limited.base
    u = made_user(limited)
    assert_ok(call(base, "POST", "/_matrix/media/v1/create", {}, token=u["access_token"]))
    r = call(base, "POST", "/_matrix/media/v3/upload", None, token=u["access_token"], data=b"hello", headers={"Content-Type": "text/plain"})
    assert_ok(r)
    assert_limited(call(base, "POST", "/_matrix/media/v1/create", {}, token=u["access_token"]))
    r = call(base, "POST", "/_matrix/media/v3/upload", None, token=u["access_token"], data=b"hello", headers={"Content-Type": "text/plain"})
    assert_limited(r)


def test_register_available_probes(limited):
    base = limited.base
    for _ in range(2):
        assert_ok(call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": unique_username("probe")}))
    assert_limited(call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": unique_username("probe")}))


def test_registrations_per_address(stratus_factory):
    server = stratus_factory({"RATE_LIMIT_REGISTRATION": "0.001/2", "REGISTRATION_MODE": "open"})
    register(server.base)
    register(server.base)
    # The third account from this address: the flows are still offered, the creation is refused.
    body = {"username": unique_username("reg"), "password": "correct horse battery staple"}
    r = call(server.base, "POST", f"{CLIENT_V3}/register", body)
    assert r.status_code == 401, describe(r)
    body["auth"] = {"type": "m.login.dummy", "session": r.json()["session"]}
    assert_limited(call(server.base, "POST", f"{CLIENT_V3}/register", body))
    # Nothing was created: the name is still free.
    assert_ok(call(server.base, "GET", f"{CLIENT_V3}/register/available", params={"username": body["username"]}))


def test_retry_after_is_honest(stratus_factory):
    """After retry_after_ms the next action is allowed."""
    server = stratus_factory({"RATE_LIMIT_MEDIA_CREATE": "2/1"})
    u = made_user(server)
    assert_ok(call(server.base, "POST", "/_matrix/media/v1/create", {}, token=u["access_token"]))
    retry = assert_limited(call(server.base, "POST", "/_matrix/media/v1/create", {}, token=u["access_token"]))
    assert retry <= 500
    time.sleep(retry / 1000 + 0.05)
    assert_ok(call(server.base, "POST", "/_matrix/media/v1/create", {}, token=u["access_token"]))
