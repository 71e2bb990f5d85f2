"""EDUs across servers (spec: server-server-api, "Typing Notifications", "Receipts",
"Presence", "Send-to-device messaging"): to-device messages, typing, read receipts and
presence between Stratus and a real Synapse, and between two Stratus instances, both ways.
Synapse→Synapse2 runs too where it shows the test itself is right.

Forged EDUs come from `StandIn`, which signs `/send` transactions with a real server's key:
the same `m.direct_to_device` twice (one message_id, two transactions) is delivered once, and
EDUs naming another server's user are dropped.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable

import pytest

from fed_helpers import (HS, StandIn, User, api, create_room, join, ok, register_user, rpath, send_text, wait_for_membership,
                         wait_for_message)
from matrix_helpers import CLIENT_V3, qid

# (sender's server, receiver's server)
DIRECTIONS = [("stratus", "synapse"), ("synapse", "stratus"), ("stratus", "stratus2"), ("stratus2", "stratus"),
              ("synapse", "synapse2")]
IDS = [f"{a}_to_{b}" for a, b in DIRECTIONS]
DEADLINE = 20.0
# How long a server is given to (wrongly) deliver something that must not arrive.
QUIET = 4.0


@pytest.fixture(scope="module")
def stratus_no_presence(stratus_factory, fed_cert) -> HS:
    """A third Stratus with FEDERATION_PRESENCE=off (built as the federation conftest builds
    `stratus_fed`)."""
    import base64
    import os

    from synapse_local import free_port

    port = free_port()
    name = f"127.0.0.1:{port}"
    key = f"ed25519 fed_nopresence {base64.b64encode(os.urandom(32)).decode().rstrip('=')}"
    server = stratus_factory(
        {"LOGIN_FAILURES_IP_MAX": "100000", "FEDERATION_RETRY_MIN_MS": "1000", "FEDERATION_RETRY_MAX_MS": "5000",
         "SERVER_NAME": name, "PUBLIC_BASEURL": f"https://{name}", "SIGNING_KEY": key, "FEDERATION_PRESENCE": "off"},
        {"NODE_EXTRA_CA_CERTS": str(fed_cert.ca)},
        https={"key": str(fed_cert.key), "cert": str(fed_cert.cert), "ca": str(fed_cert.ca)},
        port=port,
    )
    return HS(kind="stratus", label="stratus_no_presence", server_name=name, base=server.base, fed_base=server.base,
              shared_secret=server.shared_secret or "", signing_key=key, stop_process=server.stop_process,
              start_process=server.start_process, log_tail=server.log_tail)


@pytest.fixture
def servers(request, hs) -> tuple[HS, HS]:
    a, b = request.param
    return hs(a), hs(b)


def parametrize(directions=DIRECTIONS):
    return pytest.mark.parametrize("servers", directions, ids=[f"{a}_to_{b}" for a, b in directions], indirect=True)


# --------------------------------------------------------------------------- /sync sections

# Each user's own /sync position for the EDU sections (kept apart from fed_helpers' timeline one).
_SINCE: dict[str, str] = {}


def sync_edus(u: User, timeout_ms: int) -> dict:
    """One /sync from this user's EDU position: {"to_device": [...], "presence": [...],
    "ephemeral": [(room_id, event), ...]}."""
    params = {"timeout": str(timeout_ms), "filter": json.dumps({"room": {"timeline": {"limit": 1}}})}
    if u.user_id in _SINCE:
        params["since"] = _SINCE[u.user_id]
    body = ok(api(u, "GET", f"{CLIENT_V3}/sync", params=params), f"/sync of {u}")
    _SINCE[u.user_id] = body["next_batch"]
    eph = [(rid, e) for rid, room in body.get("rooms", {}).get("join", {}).items() for e in room.get("ephemeral", {}).get("events", [])]
    return {"to_device": body.get("to_device", {}).get("events", []), "presence": body.get("presence", {}).get("events", []),
            "ephemeral": eph}


def collect(u: User, section: str, pred: Callable[[Any], bool], what: str, timeout: float = DEADLINE) -> list:
    """Syncs until an item of `section` satisfies `pred`; returns every such item seen."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:.0f} s: {u} never saw {what} in /sync {section}")
        got = [x for x in sync_edus(u, int(min(left, 5) * 1000))[section] if pred(x)]
        if got:
            return got


def never(u: User, section: str, pred: Callable[[Any], bool], what: str, quiet: float = QUIET) -> list:
    """Syncs for `quiet` s and fails if an item of `section` satisfies `pred`; returns the
    other items seen meanwhile."""
    deadline = time.monotonic() + quiet
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        items = sync_edus(u, int(min(left, 2) * 1000))[section]
        bad = [x for x in items if pred(x)]
        assert not bad, f"{u} saw {what}: {bad}"
        seen += items
    return seen


def device_of(u: User) -> str:
    return ok(api(u, "GET", f"{CLIENT_V3}/account/whoami"), f"whoami of {u}")["device_id"]


def prime(u: User) -> None:
    """An initial sync, so that later ones are incremental from now."""
    sync_edus(u, 0)


def room_with(a: User, b: User) -> str:
    """A room on a's server that b joined; both have seen the join."""
    room_id = create_room(a)
    join(b, room_id, via=[a.hs.server_name])
    wait_for_membership(a, room_id, b.user_id, "join")
    wait_for_membership(b, room_id, b.user_id, "join")
    return room_id


def send_txn(stand_in: StandIn, dest: HS, edus: list[dict]) -> None:
    body = {"origin": stand_in.name, "origin_server_ts": int(time.time() * 1000), "pdus": [], "edus": edus}
    r = stand_in.request(dest, "PUT", f"/_matrix/federation/v1/send/{uuid.uuid4().hex}", body)
    ok(r, f"/send of {len(edus)} EDUs as {stand_in.name} to {dest}")


# --------------------------------------------------------------------------- to-device


@parametrize()
def test_to_device_crosses(servers):
    """A to-device message to one remote device and one to all of another remote user's
    devices arrive in the remote users' /sync `to_device`, with sender and type."""
    local, remote = servers
    a = register_user(local, "a")
    b, c = register_user(remote, "b"), register_user(remote, "c")
    prime(b)
    prime(c)
    tag = uuid.uuid4().hex
    body = {"messages": {b.user_id: {device_of(b): {"tag": tag, "to": "b"}}, c.user_id: {"*": {"tag": tag, "to": "c"}}}}
    ok(api(a, "PUT", f"{CLIENT_V3}/sendToDevice/org.example.test/{uuid.uuid4().hex}", body), f"sendToDevice by {a}")
    for u, to in ((b, "b"), (c, "c")):
        got = collect(u, "to_device", lambda e: e.get("content", {}).get("tag") == tag, f"the to-device message from {a}")
        assert len(got) == 1, got
        assert got[0]["sender"] == a.user_id and got[0]["type"] == "org.example.test" and got[0]["content"]["to"] == to, got


@parametrize([("synapse", "stratus"), ("stratus2", "stratus"), ("synapse", "synapse2")])
def test_to_device_redelivered_once(servers):
    """The same `m.direct_to_device` EDU (one message_id) in two transactions is queued once."""
    origin, dest = servers
    b = register_user(dest, "b")
    prime(b)
    stand_in = StandIn(origin)
    tag = uuid.uuid4().hex
    edu = {"edu_type": "m.direct_to_device", "content": {
        "sender": f"@standin:{origin.server_name}", "type": "org.example.test", "message_id": uuid.uuid4().hex[:20],
        "messages": {b.user_id: {"*": {"tag": tag}}}}}
    send_txn(stand_in, dest, [edu])
    got = collect(b, "to_device", lambda e: e.get("content", {}).get("tag") == tag, "the stand-in's to-device message")
    send_txn(stand_in, dest, [edu])
    # A fresh message after the duplicate: once it arrives, the duplicate would have too.
    control = dict(edu, content=dict(edu["content"], message_id=uuid.uuid4().hex[:20], messages={b.user_id: {"*": {"tag": tag + "-2"}}}))
    send_txn(stand_in, dest, [control])
    got += collect(b, "to_device", lambda e: e.get("content", {}).get("tag", "").startswith(tag), "the control message")
    got += never(b, "to_device", lambda e: e.get("content", {}).get("tag") == tag, "the duplicate", quiet=2.0)
    assert [e["content"]["tag"] for e in got].count(tag) == 1, got
    assert [e["content"]["tag"] for e in got].count(tag + "-2") == 1, got


@parametrize([("synapse", "stratus"), ("stratus2", "stratus"), ("synapse", "synapse2")])
def test_to_device_of_another_servers_user_dropped(servers, hs):
    """`m.direct_to_device` whose sender is not a user of the transaction's origin is dropped;
    one from the origin's own user in the same transaction arrives."""
    origin, dest = servers
    third = hs("stratus2" if origin.label != "stratus2" and dest.label != "stratus2" else "synapse")
    b = register_user(dest, "b")
    prime(b)
    tag = uuid.uuid4().hex

    def edu(sender: str, t: str) -> dict:
        return {"edu_type": "m.direct_to_device", "content": {"sender": sender, "type": "org.example.test",
                                                              "message_id": uuid.uuid4().hex[:20], "messages": {b.user_id: {"*": {"tag": t}}}}}

    send_txn(StandIn(origin), dest, [edu(f"@victim:{third.server_name}", tag + "-forged"), edu(f"@standin:{origin.server_name}", tag)])
    got = collect(b, "to_device", lambda e: e.get("content", {}).get("tag", "").startswith(tag), "the control message")
    got += never(b, "to_device", lambda e: e.get("content", {}).get("tag", "").startswith(tag), "anything more", quiet=2.0)
    assert [e["content"]["tag"] for e in got] == [tag], got


# --------------------------------------------------------------------------- typing


def typing_users(u: User, room_id: str, timeout: float = DEADLINE, want: Callable[[list], bool] = bool) -> list:
    """The `m.typing` user list of the room in the user's next /sync that satisfies `want`."""
    got = collect(u, "ephemeral", lambda x: x[0] == room_id and x[1].get("type") == "m.typing" and want(x[1]["content"]["user_ids"]),
                  f"m.typing in {room_id}", timeout)
    return got[-1][1]["content"]["user_ids"]


def set_typing(u: User, room_id: str, typing: bool) -> None:
    body = {"typing": typing, "timeout": 30000} if typing else {"typing": False}
    ok(api(u, "PUT", rpath(room_id, "typing", u.user_id), body), f"typing={typing} by {u}")


@parametrize()
def test_typing_crosses(servers):
    """Typing on one side shows in the other's /sync ephemeral, and stopping clears it; both
    ways (room on the sender's server)."""
    local, remote = servers
    a, b = register_user(local, "a"), register_user(remote, "b")
    room_id = room_with(a, b)
    prime(a)
    prime(b)
    set_typing(a, room_id, True)
    assert a.user_id in typing_users(b, room_id, want=lambda ids: a.user_id in ids)
    set_typing(a, room_id, False)
    assert a.user_id not in typing_users(b, room_id, want=lambda ids: a.user_id not in ids)
    set_typing(b, room_id, True)
    assert b.user_id in typing_users(a, room_id, want=lambda ids: b.user_id in ids)


@parametrize([("stratus", "synapse"), ("stratus", "stratus2")])
def test_typing_timeout_ends_typing_on_the_other_server(servers):
    """Our user's typing that simply times out is announced as stopped to the other server,
    which would otherwise show it until its own expiry (60 s on both)."""
    local, remote = servers
    a, b = register_user(local, "a"), register_user(remote, "b")
    room_id = room_with(a, b)
    prime(b)
    ok(api(a, "PUT", rpath(room_id, "typing", a.user_id), {"typing": True, "timeout": 2000}), f"typing for 2 s by {a}")
    assert a.user_id in typing_users(b, room_id, want=lambda ids: a.user_id in ids)
    # Well before the other server's own 60 s expiry.
    typing_users(b, room_id, timeout=20, want=lambda ids: a.user_id not in ids)


# --------------------------------------------------------------------------- receipts


def receipts_of(items: list, event_id: str) -> dict:
    """{receipt type: {user: data}} for `event_id` in a list of (room, ephemeral event)."""
    out: dict = {}
    for _, e in items:
        if e.get("type") == "m.receipt":
            for kind, users in e["content"].get(event_id, {}).items():
                out.setdefault(kind, {}).update(users)
    return out


def receipt(u: User, room_id: str, kind: str, event_id: str, **body: Any) -> None:
    ok(api(u, "POST", rpath(room_id, "receipt", kind, event_id), body), f"{kind} receipt by {u} on {event_id}")


@parametrize()
def test_public_receipt_crosses_private_does_not(servers):
    """The remote member's public read receipt reaches the local side (and a threaded one
    keeps its thread_id); a private one never does, though a later public one for the same
    event does; and the local member's public receipt reaches the remote side."""
    local, remote = servers
    a, b = register_user(local, "a"), register_user(remote, "b")
    room_id = room_with(a, b)
    e1 = send_text(a, room_id, "first")
    wait_for_message(b, room_id, "first")
    prime(a)
    prime(b)
    receipt(b, room_id, "m.read", e1)
    got = collect(a, "ephemeral", lambda x: b.user_id in receipts_of([x], e1).get("m.read", {}), f"{b}'s receipt on {e1}")
    assert "ts" in receipts_of(got, e1)["m.read"][b.user_id]

    e2 = send_text(a, room_id, "second")
    wait_for_message(b, room_id, "second")
    receipt(b, room_id, "m.read.private", e2)
    never(a, "ephemeral", lambda x: bool(receipts_of([x], e2)), f"a receipt of {b} on {e2} after a private one")
    receipt(b, room_id, "m.read", e2, thread_id="main")
    got = collect(a, "ephemeral", lambda x: b.user_id in receipts_of([x], e2).get("m.read", {}), f"{b}'s public receipt on {e2}")
    assert receipts_of(got, e2)["m.read"][b.user_id].get("thread_id") == "main", got
    assert "m.read.private" not in receipts_of(got, e2), got

    receipt(a, room_id, "m.read", e2)
    collect(b, "ephemeral", lambda x: a.user_id in receipts_of([x], e2).get("m.read", {}), f"{a}'s receipt on {e2}")


# --------------------------------------------------------------------------- forged EDUs


# (stand-in's server, receiving server, third server whose user the stand-in names)
FORGERIES = [("synapse", "stratus", "stratus2"), ("stratus2", "stratus", "synapse"), ("stratus", "synapse", "stratus2")]


@pytest.mark.parametrize("names", FORGERIES, ids=[f"{a}_as_{c}_to_{b}" for a, b, c in FORGERIES])
def test_edus_about_another_servers_user_dropped(names, hs):
    """A server's typing, receipt and presence EDUs about a user of a third server (joined
    to the room, so only the origin check can refuse them) are dropped; the same EDUs about
    its own user, in the same transaction, apply."""
    origin, dest, third = (hs(n) for n in names)
    a = register_user(dest, "a")
    b, c = register_user(origin, "b"), register_user(third, "c")
    room_id = create_room(a)
    for u in (b, c):
        join(u, room_id, via=[dest.server_name])
        wait_for_membership(a, room_id, u.user_id, "join")
    event_id = send_text(a, room_id, "read me")
    prime(a)
    tag = uuid.uuid4().hex

    def edus(user: str) -> list[dict]:
        return [
            {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": user, "typing": True}},
            {"edu_type": "m.receipt", "content": {room_id: {"m.read": {user: {"event_ids": [event_id], "data": {"ts": 1}}}}}},
            {"edu_type": "m.presence", "content": {"push": [{"user_id": user, "presence": "online", "status_msg": tag,
                                                             "last_active_ago": 10, "currently_active": True}]}},
        ]

    send_txn(StandIn(origin), dest, edus(c.user_id) + edus(b.user_id))
    seen: dict[str, list] = {"ephemeral": [], "presence": []}

    def controls_seen() -> bool:
        typing = [e["content"]["user_ids"] for _, e in seen["ephemeral"] if e.get("type") == "m.typing"]
        return (b.user_id in receipts_of(seen["ephemeral"], event_id).get("m.read", {}) and any(b.user_id in ids for ids in typing)
                and any(p.get("sender") == b.user_id and p["content"].get("status_msg") == tag for p in seen["presence"]))

    deadline, quiet_until = time.monotonic() + DEADLINE, None
    while quiet_until is None or time.monotonic() < quiet_until:
        assert time.monotonic() < deadline, f"{a} never saw all of {b}'s EDUs (the controls): {seen}"
        r = sync_edus(a, 1000)
        seen["ephemeral"] += r["ephemeral"]
        seen["presence"] += r["presence"]
        if quiet_until is None and controls_seen():
            quiet_until = time.monotonic() + 2.0
    assert c.user_id not in receipts_of(seen["ephemeral"], event_id).get("m.read", {}), seen
    typing = [e["content"]["user_ids"] for _, e in seen["ephemeral"] if e.get("type") == "m.typing"]
    assert not any(c.user_id in ids for ids in typing), typing
    assert not [p for p in seen["presence"] if p.get("sender") == c.user_id and p["content"].get("status_msg") == tag], seen["presence"]
    r = api(a, "GET", f"{CLIENT_V3}/presence/{qid(c.user_id)}/status")
    assert r.status_code != 200 or r.json().get("status_msg") != tag, r.text


# --------------------------------------------------------------------------- presence


@parametrize()
def test_presence_crosses(servers):
    """A remote member's presence (set by PUT /presence) shows in the local member's /sync
    presence and in GET /presence/{userId}/status."""
    local, remote = servers
    a, b = register_user(local, "a"), register_user(remote, "b")
    room_id = room_with(a, b)
    assert room_id
    prime(a)
    tag = uuid.uuid4().hex
    ok(api(b, "PUT", f"{CLIENT_V3}/presence/{qid(b.user_id)}/status", {"presence": "unavailable", "status_msg": tag}),
       f"presence of {b}")
    got = collect(a, "presence", lambda p: p.get("sender") == b.user_id and p["content"].get("status_msg") == tag, f"{b}'s presence")
    assert got[-1]["content"]["presence"] == "unavailable", got
    status = ok(api(a, "GET", f"{CLIENT_V3}/presence/{qid(b.user_id)}/status"), f"{a} reads {b}'s presence")
    assert status["presence"] == "unavailable" and status.get("status_msg") == tag, status


@pytest.mark.parametrize("other", ["synapse", "stratus"])
def test_presence_off_stays_home(other, hs, stratus_no_presence):
    """With FEDERATION_PRESENCE=off, a Stratus neither sends its users' presence nor takes
    other servers'; typing in the same room still crosses both ways (the control), and local
    presence still works."""
    a, b = register_user(stratus_no_presence, "a"), register_user(hs(other), "b")
    a2 = register_user(stratus_no_presence, "a2")
    room_id = room_with(b, a)
    join(a2, room_id, via=[b.hs.server_name])
    wait_for_membership(a, room_id, a2.user_id, "join")
    prime(a)
    prime(b)
    tag_a, tag_b = uuid.uuid4().hex, uuid.uuid4().hex
    ok(api(a2, "PUT", f"{CLIENT_V3}/presence/{qid(a2.user_id)}/status", {"presence": "unavailable", "status_msg": tag_a}), "presence a2")
    ok(api(b, "PUT", f"{CLIENT_V3}/presence/{qid(b.user_id)}/status", {"presence": "unavailable", "status_msg": tag_b}), "presence b")
    # Local presence still works, and typing crosses both ways: federation itself is up.
    collect(a, "presence", lambda p: p.get("sender") == a2.user_id and p["content"].get("status_msg") == tag_a, f"{a2}'s presence")
    set_typing(a, room_id, True)
    set_typing(b, room_id, True)
    typing_users(b, room_id, want=lambda ids: a.user_id in ids)
    typing_users(a, room_id, want=lambda ids: b.user_id in ids)
    never(a, "presence", lambda p: p["content"].get("status_msg") == tag_b, f"{b}'s presence", quiet=2.0)
    never(b, "presence", lambda p: p["content"].get("status_msg") == tag_a, f"{a2}'s presence", quiet=2.0)


@pytest.mark.parametrize("names", [("synapse", "stratus"), ("stratus2", "stratus")], ids=["synapse_to_stratus", "stratus2_to_stratus"])
def test_receipt_and_typing_need_a_known_event_and_a_member(names, hs):
    """A receipt for an event the receiver does not have, and typing and a receipt from a
    user of the origin who is not in the room, are dropped; the member's receipt for a known
    event, sent after them, arrives. (Stratus as the receiver only: Synapse is laxer and
    takes a receipt from any user of a server that is in the room.)"""
    origin, dest = (hs(n) for n in names)
    a, b = register_user(dest, "a"), register_user(origin, "b")
    room_id = room_with(a, b)
    event_id = send_text(a, room_id, "known")
    prime(a)
    ghost = f"@ghost-{uuid.uuid4().hex[:8]}:{origin.server_name}"
    unknown = "$" + uuid.uuid4().hex + "unknownevent"
    stand_in = StandIn(origin)
    send_txn(stand_in, dest, [
        {"edu_type": "m.receipt", "content": {room_id: {"m.read": {b.user_id: {"event_ids": [unknown], "data": {"ts": 1}}}}}},
        {"edu_type": "m.receipt", "content": {room_id: {"m.read": {ghost: {"event_ids": [event_id], "data": {"ts": 1}}}}}},
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": ghost, "typing": True}},
    ])
    send_txn(stand_in, dest, [
        {"edu_type": "m.receipt", "content": {room_id: {"m.read": {b.user_id: {"event_ids": [event_id], "data": {"ts": 2}}}}}}])
    seen = collect(a, "ephemeral", lambda x: b.user_id in receipts_of([x], event_id).get("m.read", {}), f"{b}'s receipt (control)")
    seen += never(a, "ephemeral", lambda x: bool(receipts_of([x], unknown)) or ghost in receipts_of([x], event_id).get("m.read", {})
                  or (x[1].get("type") == "m.typing" and ghost in x[1]["content"]["user_ids"]), "a dropped EDU", quiet=2.0)
    assert not receipts_of(seen, unknown) and ghost not in receipts_of(seen, event_id).get("m.read", {}), seen
