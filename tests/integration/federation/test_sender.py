"""Outbound federation queue (spec: server-server-api, "Transactions"): our events reach every
other server in the room as `PUT /_matrix/federation/v1/send/{txnId}` transactions, through one
`Destination` Durable Object per server.

A Python stand-in remote (sender_helpers.SenderStandIn) joins one of its users to a room on a
Stratus server over federation, then fails every transaction for a while, as a remote that is
down would. Events sent meanwhile must all arrive once it recovers: in order, none twice
(de-duplicated by reference-hash event ID), transactions of at most 50 PDUs, and a failed
transaction retried under the same transaction ID with the same PDUs (the receiver
de-duplicates by it). Needs outbound requests over plain HTTP to loopback peers
(`FEDERATION_INSECURE_HTTP=1`) and the inbound make_join/send_join endpoints."""

from __future__ import annotations

import time

import pytest

from matrix_helpers import CLIENT_V3, assert_ok, call, new_user, qid
from rooms_helpers import public_room, txn
from sender_helpers import SenderStandIn

FED_VARS = {"FEDERATION_INSECURE_HTTP": "1", "FEDERATION_TIMEOUT_MS": "5000"}


@pytest.fixture(scope="module")
def fed(stratus_factory):
    return stratus_factory(FED_VARS)


@pytest.fixture
def stand_in():
    s = SenderStandIn()
    yield s
    s.close()


def send_text(base: str, user: dict, room: str, body: str) -> str:
    path = f"{CLIENT_V3}/rooms/{qid(room)}/send/m.room.message/{txn()}"
    return assert_ok(call(base, "PUT", path, {"msgtype": "m.text", "body": body}, token=user["access_token"]))["event_id"]


def joined_room_with_stand_in(fed, stand_in: SenderStandIn) -> tuple[dict, str]:
    alice = new_user(fed.base, "alice")
    room = public_room(fed.base, alice["access_token"])
    stand_in.join(fed.base, fed.server_name, room, "bob")
    members = assert_ok(call(fed.base, "GET", f"{CLIENT_V3}/rooms/{qid(room)}/joined_members", token=alice["access_token"]))
    assert f"@bob:{stand_in.server_name}" in members["joined"], members
    return alice, room


def test_events_sent_while_the_remote_is_down_arrive_in_order_once(fed, stand_in):
    alice, room = joined_room_with_stand_in(fed, stand_in)
    stand_in.failing = True
    sent = [send_text(fed.base, alice, room, f"while down {i}") for i in range(55)]
    # At least two failed attempts (the first at once, the retry about 5 s later).
    assert stand_in.wait_failed_attempts(2, timeout=30) >= 2, stand_in.snapshot()
    stand_in.failing = False
    delivered = stand_in.wait_for(sent, timeout=90)
    assert set(sent) <= set(delivered), f"missing {len(set(sent) - set(delivered))} of {len(sent)}"

    # In order, none twice (across distinct accepted transactions).
    ours = [e for e in delivered if e in set(sent)]
    assert ours == sent
    assert len(delivered) == len(set(delivered)), "an event arrived twice"

    attempts = stand_in.snapshot()
    ok = [a for a in attempts if a.status == 200]
    failed = [a for a in attempts if a.status != 200]
    for a in attempts:
        assert a.body.get("origin") == fed.server_name
        assert isinstance(a.body.get("origin_server_ts"), int)
        assert isinstance(a.body.get("edus", []), list)
        assert 0 < len(a.event_ids) <= 50, len(a.event_ids)
    # A failed transaction is retried under the same ID with the same PDUs, until accepted.
    by_txn: dict[str, list] = {}
    for a in attempts:
        by_txn.setdefault(a.txn_id, []).append(a)
    assert failed
    for a in failed:
        assert any(t.status == 200 for t in by_txn[a.txn_id]), f"txn {a.txn_id} never delivered"
    for txn_id, tries in by_txn.items():
        assert all(t.event_ids == tries[0].event_ids for t in tries), f"txn {txn_id} carried other PDUs on a retry"
    # What queued during the outage went in full transactions, not one event each.
    assert max(len(a.event_ids) for a in ok) == 50, [len(a.event_ids) for a in ok]

    # Recovered: a new event goes at once (no backoff left).
    start = time.monotonic()
    late = send_text(fed.base, alice, room, "after recovery")
    assert late in stand_in.wait_for([late], timeout=15)
    assert time.monotonic() - start < 15


def test_only_our_events_and_only_to_servers_in_the_room(fed, stand_in):
    """A room without the stand-in sends it nothing; bob's own join (the stand-in's event)
    never comes back to it."""
    alice, room = joined_room_with_stand_in(fed, stand_in)
    other = public_room(fed.base, alice["access_token"])
    quiet = send_text(fed.base, alice, other, "not for the stand-in")
    shared = send_text(fed.base, alice, room, "for the stand-in")
    delivered = stand_in.wait_for([shared], timeout=30)
    assert shared in delivered
    time.sleep(1)
    delivered = stand_in.delivered_ids()
    assert quiet not in delivered
    senders = {p.get("sender") for a in stand_in.snapshot() for p in a.body.get("pdus", [])}
    assert senders == {alice["user_id"]}, senders


def test_transactions_share_one_kept_connection(fed, stand_in):
    """Transactions to a server go over one kept-alive connection (no TCP and TLS handshake
    per transaction); a server that drops its connections after each answer still gets
    everything, over a new connection each time."""
    alice, room = joined_room_with_stand_in(fed, stand_in)
    first = [send_text(fed.base, alice, room, f"kept {i}") for i in range(3)]
    for e in first:
        assert e in stand_in.wait_for([e], timeout=30)
    kept = [a for a in stand_in.snapshot() if set(a.event_ids) & set(first)]
    assert len({a.peer for a in kept}) == 1, [a.peer for a in kept]

    stand_in.drop_connections = True
    dropped = []
    for i in range(3):
        e = send_text(fed.base, alice, room, f"dropped {i}")
        assert e in stand_in.wait_for([e], timeout=30)
        dropped.append(e)
    later = [a for a in stand_in.snapshot() if set(a.event_ids) & set(dropped)]
    assert all(a.status == 200 for a in later)
    assert len({a.peer for a in later}) == len(later), [a.peer for a in later]
    delivered = stand_in.delivered_ids()
    assert len(delivered) == len(set(delivered)), "an event arrived twice"


@pytest.fixture(scope="module")
def fed_fast_retry(stratus_factory):
    return stratus_factory({**FED_VARS, "FEDERATION_RETRY_MIN_MS": "500", "FEDERATION_RETRY_MAX_MS": "2000"})


def test_a_pdu_that_cannot_be_checked_yet_is_kept_and_retried(fed_fast_retry, stand_in):
    """Inbound work that does not fit the request goes on in the room's object: a PDU whose
    ancestor cannot be fetched while its server is failing is not rejected; it is kept and
    tried again on the room's alarm, and appears (with the ancestor) once the server answers."""
    fed = fed_fast_retry
    alice, room = joined_room_with_stand_in(fed, stand_in)
    state = assert_ok(call(fed.base, "GET", f"{CLIENT_V3}/rooms/{qid(room)}/state", token=alice["access_token"]))
    pl = next(e["event_id"] for e in state if e["type"] == "m.room.power_levels")
    join = stand_in.join_event
    join_id = next(i for i, e in stand_in.events.items() if e is join)
    auth = [pl, join_id]
    a_id, _ = stand_in.build_event(room, "bob", "m.room.message", {"msgtype": "m.text", "body": "ancestor A"}, [join_id], auth, join["depth"] + 1)
    b_id, b = stand_in.build_event(room, "bob", "m.room.message", {"msgtype": "m.text", "body": "child B"}, [a_id], auth, join["depth"] + 2)

    def bodies() -> list[str]:
        page = assert_ok(call(fed.base, "GET", f"{CLIENT_V3}/rooms/{qid(room)}/messages?dir=b&limit=50", token=alice["access_token"]))
        return [e.get("content", {}).get("body") for e in page["chunk"]]

    stand_in.serving = False
    path = f"/_matrix/federation/v1/send/deferral-{time.monotonic_ns()}"
    r = stand_in.request(fed.base, fed.server_name, "PUT", path, {"origin": stand_in.server_name, "origin_server_ts": int(time.time() * 1000), "pdus": [b]})
    assert r.status_code == 200, r.text
    assert "error" not in r.json()["pdus"].get(b_id, {}), r.json()
    time.sleep(2)
    assert "child B" not in bodies(), "B was stored without its ancestor"
    assert any(p.startswith("/_matrix/federation/v1/get_missing_events/") or "/event/" in p for _, p in stand_in.other_requests), stand_in.other_requests

    stand_in.serving = True
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = bodies()
        if "child B" in got and "ancestor A" in got:
            break
        time.sleep(0.5)
    got = bodies()
    assert "child B" in got and "ancestor A" in got, f"B and A never arrived after the server recovered: {got}"
    assert got.index("child B") < got.index("ancestor A"), "B (newer) is listed before A when paginating backwards"
