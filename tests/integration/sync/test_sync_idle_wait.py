"""The long-poll wait parks on a hibernatable WebSocket to the user's UserSync object (#17):
the object is not held by a request while nobody writes, yet every parked wait of the user
is woken, and waits that ended (timed out) leave nothing behind that breaks the next one.

The instance here runs with ``DO_TRACE=1``: the object logs when it is built and when each
handler starts and ends (``stratus-do-trace UserSync <instance> <event> <ms>``), which is how
these tests see whether a handler stayed in flight for the wait."""

import re
import threading

import pytest

from matrix_helpers import login, new_user
from rooms_helpers import room_pair, send
from sync_helpers import BackgroundSync, joined, sync

TRACE = re.compile(r"stratus-do-trace UserSync (\S+) (\S+) (\d+)")
TIMEOUT_MS = 20000


@pytest.fixture(scope="module")
def traced(stratus_factory):
    return stratus_factory({"DO_TRACE": "1", "LOGIN_FAILURES_IP_MAX": "100000"})


def settle(base, token):
    s = sync(base, token)["next_batch"]
    return sync(base, token, s)["next_batch"]


def handler_spans(server, offset):
    """(longest handler interval in ms, number of HTTP handlers) logged since ``offset``."""
    with open(server.log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    open_at: dict[str, list[int]] = {}
    longest, http = 0, 0
    for inst, event, ms in TRACE.findall(text):
        if event in ("begin", "ws-begin"):
            http += event == "begin"
            open_at.setdefault(inst, []).append(int(ms))
        elif event in ("end", "ws-end") and open_at.get(inst):
            longest = max(longest, int(ms) - open_at[inst].pop())
    return longest, http


def test_waiting_sync_holds_no_handler_in_the_object(traced):
    """A sync that waits 3 s for nothing: it returns after its timeout, and no UserSync
    handler was in flight for that time (the old design held one for the whole wait)."""
    base = traced.base
    me = new_user(base)
    since = settle(base, me["access_token"])
    offset = traced.log_path.stat().st_size
    body = sync(base, me["access_token"], since, timeout=3000, set_presence="offline")
    assert body["next_batch"] == since
    longest, http = handler_spans(traced, offset)
    # The watch: since #17's fold, the only object request an idle poll makes.
    assert http >= 1, "the trace saw the watch"
    assert longest < 1500, f"a UserSync handler stayed in flight {longest} ms"


def test_one_change_wakes_every_parked_wait_of_the_user(traced):
    """Two devices of one user long-poll at once; one message wakes both (each parked socket
    gets the new counter) and each gets the message."""
    base = traced.base
    a = new_user(base)
    b = new_user(base)
    room = room_pair(base, a, b, preset="private_chat", invite=[b["user_id"]])
    second = login(base, b["user_id"], b["password"])
    tokens = [b["access_token"], second["access_token"]]
    sinces = [settle(base, t) for t in tokens]
    waits = [BackgroundSync(base, t, s, TIMEOUT_MS, set_presence="offline") for t, s in zip(tokens, sinces)]
    threading.Event().wait(0.7)
    eid = send(base, a["access_token"], room, "both")
    for token, w in zip(tokens, waits):
        body, took = w.result()
        assert took < TIMEOUT_MS / 1000 - 5, took
        ids = [e["event_id"] for e in joined(body, room).get("timeline", {}).get("events", [])]
        if eid not in ids:
            # Woken by an earlier change (e.g. the other device's presence); the next has it.
            body = sync(base, token, body["next_batch"], timeout=TIMEOUT_MS, set_presence="offline")
            ids = [e["event_id"] for e in joined(body, room)["timeline"]["events"]]
        assert eid in ids


def test_timed_out_waits_leave_the_next_one_working(traced):
    """Several waits time out one after another (their sockets are closed by the Worker);
    the next wait is still woken by a message."""
    base = traced.base
    a = new_user(base)
    b = new_user(base)
    room = room_pair(base, a, b, preset="private_chat", invite=[b["user_id"]])
    since = settle(base, b["access_token"])
    for _ in range(3):
        body = sync(base, b["access_token"], since, timeout=700, set_presence="offline")
        assert body["next_batch"] == since
    bg = BackgroundSync(base, b["access_token"], since, TIMEOUT_MS, set_presence="offline")
    threading.Event().wait(0.7)
    eid = send(base, a["access_token"], room, "after timeouts")
    body, took = bg.result()
    assert took < TIMEOUT_MS / 1000 - 5, took
    assert eid in [e["event_id"] for e in joined(body, room)["timeline"]["events"]]
