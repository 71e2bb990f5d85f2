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
