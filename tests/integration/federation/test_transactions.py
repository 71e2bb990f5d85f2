"""Receiving transactions (spec: server-server-api, "Transactions", "Push notifications"
in client-server-api for the counts): a transaction repeated by its origin gets its first
answer, and messages that come over federation count as unread for the receiving server's
users as local ones do, also when a user's push rules change between two of them (the
receiving room object evaluates the rules of a message before writing it, guarded by the
rules' version).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid

from fed_helpers import (StandIn, api, build_pdu, event_id_of, joined_pair, messages, ok, room_context, rpath, send_text,
                         wait_for_message)
from matrix_helpers import CLIENT_V3, describe, qid


def counts(u, room: str) -> dict:
    """The room's `unread_notifications` in an initial /sync of `u`."""
    params = {"filter": json.dumps({"room": {"timeline": {"limit": 1}}})}
    body = ok(api(u, "GET", f"{CLIENT_V3}/sync", params=params), f"/sync of {u}")
    return body.get("rooms", {}).get("join", {}).get(room, {}).get("unread_notifications", {})


def test_unread_counts_of_ingested_messages(stratus_fed, stratus_fed2):
    a, b, room = joined_pair(stratus_fed, stratus_fed2)
    t = secrets.token_hex(4)
    # The first message after the join has no push context in b's room object; the second does.
    for i in (1, 2):
        send_text(a, room, f"m{i} {t}")
    wait_for_message(b, room, f"m2 {t}")
    assert counts(b, room).get("notification_count") == 2, counts(b, room)
    # Muted between two messages: the next one must not count (the rules changed under the
    # cached context).
    rule = f"{CLIENT_V3}/pushrules/global/room/{qid(room)}"
    ok(api(b, "PUT", rule, {"actions": []}), "muting the room")
    send_text(a, room, f"m3 {t}")
    wait_for_message(b, room, f"m3 {t}")
    assert counts(b, room).get("notification_count") == 2, counts(b, room)
    ok(api(b, "DELETE", rule), "unmuting the room")
    send_text(a, room, f"m4 {t}")
    mention = {"msgtype": "m.text", "body": f"m5 {t}", "m.mentions": {"user_ids": [b.user_id]}}
    ok(api(a, "PUT", rpath(room, "send", "m.room.message", uuid.uuid4().hex), mention), "the mention")
    wait_for_message(b, room, f"m5 {t}")
    got = counts(b, room)
    assert got.get("notification_count") == 4 and got.get("highlight_count") == 1, got


def test_repeated_transaction_gets_its_first_answer(stratus_fed, stratus_fed2):
    """The same transaction ID twice: the second answer is the first (the refused PDU's
    error included, though it is now known), and the accepted PDU is stored once."""
    local, remote = stratus_fed, stratus_fed2
    a, b, room = joined_pair(local, remote)
    send_text(b, room, "b speaks once")
    wait_for_message(a, room, "b speaks once")
    ctx = room_context(a, room)
    stand_in = StandIn(remote)
    t = secrets.token_hex(4)
    depth = 1000
    latest = stand_in.request(local, "GET", f"/_matrix/federation/v1/event/{ctx['prev_events'][0]}")
    if latest.status_code == 200:
        depth = max(p.get("depth", 0) for p in latest.json().get("pdus", [{}])) + 1

    def msg(sender: str, body: str) -> dict:
        return stand_in.sign_pdu(build_pdu(ctx, room, sender, "m.room.message", {"msgtype": "m.text", "body": body}, depth=depth))

    good, outsider = msg(b.user_id, f"once {t}"), msg(f"@outsider-{t}:{remote.server_name}", f"outsider {t}")
    txn = uuid.uuid4().hex
    body = {"origin": stand_in.name, "origin_server_ts": int(time.time() * 1000), "pdus": [good, outsider], "edus": []}
    first = stand_in.request(local, "PUT", f"/_matrix/federation/v1/send/{txn}", body)
    assert first.status_code == 200, describe(first)
    results = first.json().get("pdus", {})
    assert results.get(event_id_of(good)) == {}, results
    assert "error" in results.get(event_id_of(outsider), {}), results
    again = stand_in.request(local, "PUT", f"/_matrix/federation/v1/send/{txn}", body)
    assert again.status_code == 200, describe(again)
    assert again.json() == first.json(), (first.json(), again.json())
    # Without EDUs or refusals (the answer is then not stored: the repeat's PDUs are known).
    only = msg(b.user_id, f"alone {t}")
    body = dict(body, pdus=[only])
    txn = uuid.uuid4().hex
    for _ in range(2):
        r = stand_in.request(local, "PUT", f"/_matrix/federation/v1/send/{txn}", body)
        assert r.status_code == 200 and r.json() == {"pdus": {event_id_of(only): {}}}, describe(r)
    wait_for_message(a, room, f"once {t}")
    wait_for_message(a, room, f"alone {t}")
    assert len([m for m in messages(a, room) if m.get("content", {}).get("body") == f"alone {t}"]) == 1
    assert len([m for m in messages(a, room) if m.get("content", {}).get("body") == f"once {t}"]) == 1


def test_pdus_on_the_rooms_head(stratus_fed, stratus_fed2):
    """PDUs that each name the room's one extremity (the next message, as a peer sends it)
    are checked without reading the room first (2 D1 round trips for the transaction: its
    earlier answer, read beside, and the write), after an ingest or a local send; repeated,
    refused or interleaved with local sends they are answered as any PDU: a chain of three,
    each sent twice, is stored once and in order; a non-member's PDU on the head is refused
    both times and never shown; a real peer's message after them still lands."""
    local, remote = stratus_fed, stratus_fed2
    a, b, room = joined_pair(local, remote)
    t = secrets.token_hex(4)
    # The room's head now comes from an ingest (b's message), as a peer's next PDU finds it.
    send_text(b, room, f"head {t}")
    wait_for_message(a, room, f"head {t}")
    ctx = room_context(a, room)
    stand_in = StandIn(remote)
    latest = stand_in.request(local, "GET", f"/_matrix/federation/v1/event/{ctx['prev_events'][0]}")
    assert latest.status_code == 200, describe(latest)
    depth = max(p.get("depth", 0) for p in latest.json().get("pdus", [{}])) + 1

    def on(prev: str, sender: str, body: str, d: int) -> dict:
        c = dict(ctx, prev_events=[prev])
        return stand_in.sign_pdu(build_pdu(c, room, sender, "m.room.message", {"msgtype": "m.text", "body": body}, depth=d))

    outsider = on(ctx["prev_events"][0], f"@outsider-{t}:{remote.server_name}", f"outsider {t}", depth)
    for attempt in range(2):
        r = stand_in.send_pdus(local, [outsider])
        assert r.status_code == 200, describe(r)
        assert "error" in r.json().get("pdus", {}).get(event_id_of(outsider), {}), (attempt, r.json())
    chain, prev, trips = [], ctx["prev_events"][0], []
    for i in range(3):
        pdu = on(prev, b.user_id, f"chain {i} {t}", depth + i)
        chain.append(pdu)
        prev = event_id_of(pdu)
        r = stand_in.send_pdus(local, [pdu])
        assert r.status_code == 200 and r.json() == {"pdus": {prev: {}}}, describe(r)
        trips.append(int(r.headers.get("X-Stratus-D1-Round-Trips", "-1")))
    # Each on the one before: the transaction's answer read beside the room object's one
    # write (the object's caches warm after the first).
    assert trips[1:] == [2, 2], trips
    for pdu in reversed(chain):
        r = stand_in.send_pdus(local, [pdu])
        assert r.status_code == 200 and r.json() == {"pdus": {event_id_of(pdu): {}}}, describe(r)
    wait_for_message(a, room, f"chain 2 {t}")
    # On a local send: the object's append cache gives the head.
    after_local = on(send_text(a, room, f"local {t}"), b.user_id, f"after local {t}", depth + 4)
    r = stand_in.send_pdus(local, [after_local])
    assert r.status_code == 200 and r.json() == {"pdus": {event_id_of(after_local): {}}}, describe(r)
    assert r.headers.get("X-Stratus-D1-Round-Trips") == "2", dict(r.headers)
    send_text(b, room, f"peer {t}")
    wait_for_message(a, room, f"peer {t}")
    bodies = [m.get("content", {}).get("body") for m in reversed(messages(a, room)) if m.get("type") == "m.room.message"]
    mine = [x for x in bodies if x and x.endswith(t)]
    expected = [f"head {t}", f"chain 0 {t}", f"chain 1 {t}", f"chain 2 {t}", f"local {t}", f"after local {t}", f"peer {t}"]
    assert mine == expected, mine
