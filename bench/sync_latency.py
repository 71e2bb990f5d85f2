#!/usr/bin/env python3
"""Message-delivery latency: user B long-polls /sync, user A sends; the time from the start
of A's send request to B's /sync returning the event. p50 and p95 over N messages, for the
local Stratus Worker (`wrangler dev` from build/) and a local Synapse in the same run,
printed side by side. Everything listens on 127.0.0.1 only.

    python3 bench/sync_latency.py [--messages 100] [--skip-synapse] [--stratus-url URL]

Synapse is installed by this script into bench/.synapse-venv (pip install matrix-synapse)
and run from a generated config in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from synapse_local import start_synapse as start_synapse_at  # noqa: E402


def register(base: str, name: str) -> dict:
    body = {"username": name, "password": "bench-password-123", "auth": {"type": "m.login.dummy"}, "inhibit_login": False}
    r = requests.post(f"{base}/_matrix/client/v3/register", json=body, timeout=30)
    if r.status_code == 401:  # a UIA round first
        body["auth"]["session"] = r.json().get("session")
        r = requests.post(f"{base}/_matrix/client/v3/register", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def timed_arrival(poll: Callable[[str], tuple[dict, str]], since: str, arrived: Callable[[dict], bool], act: Callable[[], None],
                  deadline: float = 20.0) -> tuple[float | None, str]:
    """One delivery sample: a client long-polls with `poll(position) -> (body, next position)`
    from `since` until a body satisfies `arrived`; the time from the start of `act()` (started
    once the poll is parked) to that response, in ms (None if none came within `deadline` s),
    and the position to continue from. Shared by the /sync, federation and sliding-sync benches."""
    result: dict = {}
    started = threading.Event()

    def run(cur: str = since) -> None:
        started.set()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            body, cur = poll(cur)
            if arrived(body):
                result["t1"] = time.perf_counter()
                break
        result["since"] = cur

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait()
    time.sleep(0.15)  # let the long-poll reach the server and park
    t0 = time.perf_counter()
    act()
    t.join(deadline + 15)
    ms = (result["t1"] - t0) * 1000 if "t1" in result else None
    return ms, result.get("since", since)


def pair_in_room(base: str, prefix: str = "bench"):
    """Two new users, A and B, in a new public room of A's, B synced up to now: A's session,
    A's and B's headers, the room, B's session and B's sync position."""
    s = requests.Session()
    a = register(base, f"{prefix}a{uuid.uuid4().hex[:8]}")
    b = register(base, f"{prefix}b{uuid.uuid4().hex[:8]}")
    ha = {"Authorization": f"Bearer {a['access_token']}"}
    hb = {"Authorization": f"Bearer {b['access_token']}"}
    room = s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=ha, timeout=30).json()["room_id"]
    s.post(f"{base}/_matrix/client/v3/join/{room}", json={}, headers=hb, timeout=30).raise_for_status()
    sb = requests.Session()
    since = sb.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=hb, timeout=60).json()["next_batch"]
    # Drain anything pending.
    since = sb.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": since}, headers=hb, timeout=60).json()["next_batch"]
    return s, ha, hb, room, sb, since


def measure(base: str, n: int) -> list[float]:
    s, ha, hb, room, sb, since = pair_in_room(base)
    latencies = []

    def poll(cur: str) -> tuple[dict, str]:
        body = sb.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "30000", "since": cur, "set_presence": "offline"}, headers=hb, timeout=60).json()
        return body, body["next_batch"]

    for i in range(n):
        text = f"bench {i} {uuid.uuid4().hex[:8]}"

        def arrived(body: dict) -> bool:
            evs = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])
            return any(e.get("content", {}).get("body") == text for e in evs)

        def send() -> None:
            s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                  json={"msgtype": "m.text", "body": text}, headers=ha, timeout=30).raise_for_status()

        ms, since = timed_arrival(poll, since, arrived, send, deadline=30)
        if ms is not None:
            latencies.append(ms)
    return latencies


def start_stratus() -> tuple[str, callable]:
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import conftest  # noqa: E402  (the integration harness starts wrangler dev from build/)

    server = conftest.start_worker({"LOGIN_FAILURES_IP_MAX": "100000"})
    return server.base, server.stop


def start_synapse() -> tuple[str, callable]:
    base, _, stop = start_synapse_at({"enable_registration": True, "enable_registration_without_verification": True}, prefix="bench-synapse-")
    return base, stop


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--skip-synapse", action="store_true")
    ap.add_argument("--stratus-url")
    args = ap.parse_args()
    results: dict[str, list[float]] = {}
    stops = []
    try:
        base, stop = (args.stratus_url, lambda: None) if args.stratus_url else start_stratus()
        stops.append(stop)
        print(f"stratus at {base}: {args.messages} messages", flush=True)
        results["Stratus (wrangler dev)"] = measure(base, args.messages)
        if not args.skip_synapse:
            base, stop = start_synapse()
            stops.append(stop)
            print(f"synapse at {base}: {args.messages} messages", flush=True)
            results["Synapse"] = measure(base, args.messages)
    finally:
        for s in stops:
            s()
    print()
    print(f"{'server':<26}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name, xs in results.items():
        print(f"{name:<26}{len(xs):>6}{pct(xs, 50):>10.1f}{pct(xs, 95):>10.1f}{statistics.fmean(xs) if xs else float('nan'):>10.1f}")
    print(json.dumps({k: {"n": len(v), "p50_ms": pct(v, 50), "p95_ms": pct(v, 95)} for k, v in results.items()}))


if __name__ == "__main__":
    main()
