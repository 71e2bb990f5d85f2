#!/usr/bin/env python3
"""Cross-server device-list latency (issue: Federation II): user A on server X and user B on
server Y share a room; B long-polls /sync on Y; A signs in a new device on X and uploads its
device keys. The figure is the time from the start of A's `POST /keys/upload` to B's /sync
returning A in `device_lists.changed` (Y learnt it from X's `m.device_list_update` EDU, and
woke B). p50 and p95 over N samples, for each pair:

    Stratus→Synapse, Synapse→Stratus, Stratus→Stratus, Synapse→Synapse (the baseline)

The harness is bench/federation_latency.py's (one CA for the run, Synapse from
bench/synapse_local.py, Stratus from `wrangler dev` serving build/ over TLS).

    .venv/bin/python bench/device_list_latency.py [--samples 20] [--pairs synapse-synapse2,stratus-synapse]

Signing in creates the device, which servers announce too; the sample waits for that
announcement (or 5 s) and drains B's /sync before timing the key upload, so each sample
times one change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import federation_latency as fl  # noqa: E402  (sets up sys.path for the test helpers too)
from fed_helpers import HS, create_room, join, login_device, register_user, signed_device_keys, wait_for_membership  # noqa: E402
from matrix_helpers import CLIENT_V3, call  # noqa: E402
from synapse_local import make_cert  # noqa: E402
from sync_latency import pct  # noqa: E402

SAMPLE_DEADLINE = 20.0


def changed(body: dict, user_id: str) -> bool:
    return user_id in body.get("device_lists", {}).get("changed", [])


def measure(x: HS, y: HS, n: int) -> tuple[list[float], int]:
    """(latencies in ms, samples lost). Raises if B cannot join A's room."""
    a, b = register_user(x, "bencha"), register_user(y, "benchb")
    room = create_room(a)
    join(b, room, via=[x.server_name])
    wait_for_membership(a, room, b.user_id, "join")
    since = call(y.base, "GET", f"{CLIENT_V3}/sync", token=b.token, params={"timeout": "0"}).json()["next_batch"]

    def sync(cur: str, timeout_ms: int) -> dict:
        return call(y.base, "GET", f"{CLIENT_V3}/sync", token=b.token,
                    params={"timeout": str(timeout_ms), "since": cur, "set_presence": "offline"}).json()

    latencies: list[float] = []
    lost = 0
    for _ in range(n):
        token, device = login_device(x, a.user_id)
        # The new device's own announcement, then nothing pending.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            body = sync(since, 1000)
            since = body["next_batch"]
            if changed(body, a.user_id):
                break
        since = sync(since, 0)["next_batch"]

        def upload() -> None:
            call(x.base, "POST", f"{CLIENT_V3}/keys/upload", {"device_keys": signed_device_keys(a.user_id, device)},
                 token=token).raise_for_status()

        ms, since = fl.timed_delivery(y, b.token, since, lambda body: changed(body, a.user_id), upload)
        if ms is None:
            lost += 1
        else:
            latencies.append(ms)
    return latencies, lost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--pairs", default=",".join(fl.ALL_PAIRS), help=f"comma-separated, of {fl.ALL_PAIRS}")
    args = ap.parse_args()
    pairs = [p.split("-") for p in args.pairs.split(",") if p]
    for p in pairs:
        assert "-".join(p) in fl.ALL_PAIRS, f"unknown pair {'-'.join(p)}"
    d = Path(tempfile.mkdtemp(prefix="bench-devlist-"))
    cert = make_cert(d)
    fl.trust(cert, d)
    servers: dict[str, HS] = {}
    stops: list = []
    results: dict[str, dict] = {}
    try:
        for x, y in pairs:
            name = f"{x}→{y}"
            try:
                for label in (x, y):
                    if label not in servers:
                        servers[label] = fl.start(label, cert, stops)
                print(f"{name}: {args.samples} samples", flush=True)
                xs, lost = measure(servers[x], servers[y], args.samples)
                results[name] = {"n": len(xs), "lost": lost, "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95),
                                 "mean_ms": statistics.fmean(xs) if xs else float("nan")}
            except Exception as e:  # noqa: BLE001 - reported as n/a
                results[name] = {"n": 0, "error": str(e).splitlines()[0][:400] if str(e) else type(e).__name__}
    finally:
        fl.stop_all(stops)
    fl.report(list(results), results)


if __name__ == "__main__":
    main()
