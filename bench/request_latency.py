#!/usr/bin/env python3
"""Per-endpoint latency of the hot client requests, for one or more Stratus builds side by
side (e.g. before and after a change), optionally beside a local Synapse.

    .venv/bin/python bench/request_latency.py                          # this checkout's build/
    .venv/bin/python bench/request_latency.py --repo ../before --repo . # two builds
    .venv/bin/python bench/request_latency.py --synapse                 # and Synapse

Each `--repo` is a checkout with a built `build/` (`make build`); its own
`tests/integration/conftest.py` starts `wrangler dev` on a free port with a fresh state
directory. Samples are interleaved across servers (one request to each in turn), so load
from elsewhere on the machine falls on all of them alike. Measured per server:

- `login`: password login (PBKDF2 with the configured cost; the same device each time).
- `whoami`: token lookup only.
- `send`: `PUT /rooms/{roomId}/send` into a room with two members.
- `sync (idle)`: an incremental `/sync` with `timeout=0` and nothing new.
- `messages`: `GET /messages?dir=b&limit=50` over a room with 60 messages.

`--var DEV_SIMULATED_LATENCY_MS=5` previews production, where every D1 round trip and
Durable Object call is a network hop (the Worker adds that delay to each; development only).

Prints p50/p95/mean in ms per endpoint and server, and the D1 round trips each Stratus
request reported (`X-Stratus-D1-Round-Trips`, where the endpoint sets it). Only loopback
addresses are used; the loops are bounded by `--samples`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from sync_latency import pct, register  # noqa: E402  (one registration helper and percentile for the benchmarks)


def start_stratus(repo: Path, extra: dict[str, str] | None = None):
    """Starts `wrangler dev` on `repo`'s build with that checkout's own harness."""
    path = repo / "tests" / "integration" / "conftest.py"
    sys.path.insert(0, str(path.parent))
    name = f"conftest_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    sys.path.remove(str(path.parent))
    server = mod.start_worker({"LOGIN_FAILURES_IP_MAX": "100000", **(extra or {})})
    return server.base, server.stop


def start_synapse():
    from synapse_local import start_synapse as start_synapse_at

    base, _, stop = start_synapse_at(
        {"enable_registration": True, "enable_registration_without_verification": True}, prefix="bench-synapse-"
    )
    return base, stop


class Target:
    """One server with two users in a room that has history, ready to be measured."""

    def __init__(self, name: str, base: str):
        self.name, self.base = name, base
        self.s = requests.Session()
        a = register(base, f"lata{uuid.uuid4().hex[:8]}")
        b = register(base, f"latb{uuid.uuid4().hex[:8]}")
        self.b_user = b["user_id"]
        self.ha = {"Authorization": f"Bearer {a['access_token']}"}
        self.hb = {"Authorization": f"Bearer {b['access_token']}"}
        self.room = self.s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=self.ha, timeout=30).json()["room_id"]
        self.s.post(f"{base}/_matrix/client/v3/join/{self.room}", json={}, headers=self.hb, timeout=30).raise_for_status()
        for i in range(60):
            self.send(f"history {i}")
        since = self.s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=self.hb, timeout=60).json()["next_batch"]
        self.since = self.s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": since}, headers=self.hb, timeout=60).json()["next_batch"]
        self.samples: dict[str, list[float]] = {}
        self.round_trips: dict[str, list[int]] = {}

    def send(self, body: str) -> requests.Response:
        r = self.s.put(
            f"{self.base}/_matrix/client/v3/rooms/{self.room}/send/m.room.message/{uuid.uuid4().hex}",
            json={"msgtype": "m.text", "body": body},
            headers=self.ha,
            timeout=30,
        )
        r.raise_for_status()
        return r

    def timed(self, what: str, fn) -> None:
        t0 = time.perf_counter()
        r = fn()
        ms = (time.perf_counter() - t0) * 1000
        r.raise_for_status()
        self.samples.setdefault(what, []).append(ms)
        rt = r.headers.get("X-Stratus-D1-Round-Trips")
        if rt is not None:
            self.round_trips.setdefault(what, []).append(int(rt))

    def one_round(self) -> None:
        b = self.base
        login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": self.b_user}, "password": "bench-password-123", "device_id": "BENCHLOGIN"}
        self.timed("login", lambda: self.s.post(f"{b}/_matrix/client/v3/login", json=login, timeout=30))
        self.timed("whoami", lambda: self.s.get(f"{b}/_matrix/client/v3/account/whoami", headers=self.hb, timeout=30))
        self.timed("send", lambda: self.send("measured"))
        # B's sync sees A's message once, then is idle: measure the idle one.
        self.since = self.s.get(f"{b}/_matrix/client/v3/sync", params={"timeout": "0", "since": self.since}, headers=self.hb, timeout=60).json()["next_batch"]
        self.timed(
            "sync (idle)",
            lambda: self.s.get(f"{b}/_matrix/client/v3/sync", params={"timeout": "0", "since": self.since, "set_presence": "offline"}, headers=self.hb, timeout=60),
        )
        self.timed(
            "messages",
            lambda: self.s.get(f"{b}/_matrix/client/v3/rooms/{self.room}/messages", params={"dir": "b", "limit": "50"}, headers=self.hb, timeout=60),
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", action="append", type=Path, help="a checkout with build/ (repeatable); default: this one")
    ap.add_argument("--synapse", action="store_true", help="also measure a local Synapse")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="a Worker var for every Stratus instance, e.g. DEV_SIMULATED_LATENCY_MS=5 (repeatable)")
    args = ap.parse_args()
    repos = args.repo or [REPO]
    extra = dict(v.split("=", 1) for v in args.var)
    stops = []
    targets: list[Target] = []
    try:
        for repo in repos:
            base, stop = start_stratus(repo.resolve(), extra)
            stops.append(stop)
            targets.append(Target(f"Stratus {repo.resolve().name}", base))
        if args.synapse:
            base, stop = start_synapse()
            stops.append(stop)
            targets.append(Target("Synapse", base))
        for t in targets:  # warm-up, not counted
            for _ in range(3):
                t.one_round()
            t.samples.clear()
            t.round_trips.clear()
        for _ in range(args.samples):
            for t in targets:
                t.one_round()
    finally:
        for s in stops:
            s()
    print(f"\n{args.samples} interleaved samples per endpoint and server\n")
    print(f"{'endpoint':<14}{'server':<28}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'D1 trips':>10}")
    out = {}
    for what in ["login", "whoami", "send", "sync (idle)", "messages"]:
        for t in targets:
            xs = t.samples.get(what, [])
            rts = t.round_trips.get(what)
            rt = f"{statistics.median(rts):.0f}" if rts else "-"
            print(f"{what:<14}{t.name:<28}{pct(xs, 50):>9.1f}{pct(xs, 95):>9.1f}{statistics.fmean(xs) if xs else float('nan'):>9.1f}{rt:>10}")
            out.setdefault(what, {})[t.name] = {"p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95), "n": len(xs)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
