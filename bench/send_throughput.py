#!/usr/bin/env python3
"""The send path, Stratus against a local Synapse in the same run:

- sequential sends into a room (one client): p50/p95 of `PUT /send`, and for Stratus the D1
  round trips each made (`X-Stratus-D1-Round-Trips`, the Worker's and the `Room` object's);
- 20 concurrent senders (each its own user, all in ONE room, each sending its messages one
  after another): events/s over the whole run;
- message delivery (send -> the other user's long-poll `/sync` returns it): p50/p95, with
  `bench/sync_latency.py`'s measurement.

    python3 bench/send_throughput.py [--senders 20] [--per-sender 25] [--sequential 100]
        [--messages 50] [--skip-synapse] [--stratus-url URL] [--var DEV_SIMULATED_LATENCY_MS=5]

Everything listens on 127.0.0.1 only. Timings are noisy while the machine is busy: report
`uptime` with the figures.
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

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from request_latency import start_stratus  # noqa: E402
from synapse_local import _BIG, start_synapse as start_synapse_at  # noqa: E402
from sync_latency import measure as delivery, pct, register  # noqa: E402


def start_synapse():
    # 20 users joining one room within a second: Synapse's per-room join limit out of the way too.
    base, _, stop = start_synapse_at({"enable_registration": True, "enable_registration_without_verification": True,
                                      "rc_joins_per_room": _BIG}, prefix="bench-synapse-")
    return base, stop


def auth(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


def room_with(base: str, users: list[dict]) -> str:
    owner = users[0]
    room = requests.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=auth(owner["access_token"]),
                         timeout=60).json()["room_id"]
    for u in users[1:]:
        requests.post(f"{base}/_matrix/client/v3/join/{room}", json={}, headers=auth(u["access_token"]), timeout=60).raise_for_status()
    return room


def send(s: requests.Session, base: str, tok: str, room: str, body: str) -> requests.Response:
    r = s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
              json={"msgtype": "m.text", "body": body}, headers=auth(tok), timeout=60)
    r.raise_for_status()
    return r


def sequential(base: str, n: int) -> tuple[list[float], list[int]]:
    """n sends one after another by one user into a room with a second member."""
    users = [register(base, f"seq{i}{uuid.uuid4().hex[:6]}") for i in range(2)]
    room = room_with(base, users)
    s = requests.Session()
    tok = users[0]["access_token"]
    for i in range(5):  # warm-up (the room object loads what it caches)
        send(s, base, tok, room, f"warm {i}")
    times, trips = [], []
    for i in range(n):
        t0 = time.perf_counter()
        r = send(s, base, tok, room, f"seq {i}")
        times.append((time.perf_counter() - t0) * 1000)
        if "X-Stratus-D1-Round-Trips" in r.headers:
            trips.append(int(r.headers["X-Stratus-D1-Round-Trips"]))
    return times, trips


def concurrent(base: str, senders: int, per_sender: int) -> tuple[float, int]:
    """`senders` users in one room, each sending `per_sender` messages back to back, all at
    once. Returns (events/s, events sent)."""
    users = [register(base, f"con{i}{uuid.uuid4().hex[:6]}") for i in range(senders)]
    room = room_with(base, users)
    sessions = [requests.Session() for _ in users]
    for s, u in zip(sessions, users):  # warm-up: one message each, not timed
        send(s, base, u["access_token"], room, "warm")
    go = threading.Barrier(senders + 1)
    errors: list[str] = []

    def run(s: requests.Session, u: dict, k: int) -> None:
        go.wait()
        for i in range(per_sender):
            try:
                send(s, base, u["access_token"], room, f"c{k} {i}")
            except Exception as e:  # noqa: BLE001 (counted and shown)
                errors.append(str(e))

    threads = [threading.Thread(target=run, args=(s, u, k), daemon=True) for k, (s, u) in enumerate(zip(sessions, users))]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        print(f"  {len(errors)} failed sends, e.g. {errors[0]}", flush=True)
    n = senders * per_sender - len(errors)
    return n / elapsed, n


def run_all(name: str, base: str, args, out: dict) -> None:
    print(f"{name} at {base}", flush=True)
    times, trips = sequential(base, args.sequential)
    rate, n = concurrent(base, args.senders, args.per_sender)
    lat = delivery(base, args.messages)
    out[name] = {
        "send_p50_ms": pct(times, 50), "send_p95_ms": pct(times, 95),
        "round_trips_per_send": statistics.median(trips) if trips else None,
        "events_per_s": rate, "events": n,
        "delivery_p50_ms": pct(lat, 50), "delivery_p95_ms": pct(lat, 95), "delivery_n": len(lat),
    }
    print(f"  {json.dumps(out[name])}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--senders", type=int, default=20)
    ap.add_argument("--per-sender", type=int, default=25)
    ap.add_argument("--sequential", type=int, default=100)
    ap.add_argument("--messages", type=int, default=50, help="delivery samples")
    ap.add_argument("--skip-synapse", action="store_true")
    ap.add_argument("--stratus-url")
    ap.add_argument("--var", action="append", default=[], help="a Worker var for Stratus, e.g. DEV_SIMULATED_LATENCY_MS=5 (repeatable)")
    args = ap.parse_args()
    extra = dict(v.split("=", 1) for v in args.var)
    out: dict[str, dict] = {}
    stops = []
    try:
        base, stop = (args.stratus_url, lambda: None) if args.stratus_url else start_stratus(REPO, extra)
        stops.append(stop)
        label = "Stratus" + (f" ({', '.join(args.var)})" if args.var else "")
        run_all(label, base, args, out)
        if not args.skip_synapse:
            base, stop = start_synapse()
            stops.append(stop)
            run_all("Synapse", base, args, out)
    finally:
        for s in stops:
            s()
    print()
    cols = [("send p50", "send_p50_ms"), ("send p95", "send_p95_ms"), ("D1 trips", "round_trips_per_send"),
            (f"{args.senders} senders ev/s", "events_per_s"), ("delivery p50", "delivery_p50_ms"), ("delivery p95", "delivery_p95_ms")]
    print(f"{'server':<40}" + "".join(f"{c:>18}" for c, _ in cols))
    for name, r in out.items():
        cells = []
        for _, k in cols:
            v = r.get(k)
            cells.append(f"{'-' if v is None else f'{v:.1f}':>18}")
        print(f"{name:<40}" + "".join(cells))
    if "Synapse" in out and len(out) > 1:
        st = next(v for k, v in out.items() if k != "Synapse")
        sy = out["Synapse"]
        print(f"ratios Stratus/Synapse: send p50 {st['send_p50_ms'] / sy['send_p50_ms']:.2f}, "
              f"events/s {st['events_per_s'] / sy['events_per_s']:.2f}, delivery p50 {st['delivery_p50_ms'] / sy['delivery_p50_ms']:.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
