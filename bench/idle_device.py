#!/usr/bin/env python3
"""What an idle device costs (#17): one client long-polls `/sync` (`timeout=30000`, the way
Element and matrix-nio do) while nobody writes, for `--minutes`, against one or more Stratus
builds at the same time (e.g. before and after a change). Prints, per build: Worker requests,
`UserSync` Durable Object requests (HTTP requests, WebSocket messages and closes) and the
other objects' requests (`UserKeys`..., from the `X-Stratus-Cost` header), the seconds
the object was active, how often it was (re)built, and what that implies per idle device per
month: requests and GB-s of Durable Object duration at 128 MB.

    .venv/bin/python bench/idle_device.py --minutes 10                      # this build/
    .venv/bin/python bench/idle_device.py --repo ../before --repo . --minutes 10

How "active" is observed: each server runs with `DO_TRACE=1`, which makes the `UserSync`
object log one `stratus-do-trace UserSync <instance> <event> <ms>` line when it is built
(`new`) and when each handler starts and ends (`begin`/`end` for HTTP requests, `ws-begin`/
`ws-end` for WebSocket events). Cloudflare bills Durable Object duration while a handler runs
or while the object is idle but cannot hibernate; an object that is idle and eligible for
hibernation (no request in flight, only hibernatable WebSockets) is not billed, even before it
is evicted (developers.cloudflare.com/durable-objects/platform/pricing, "Compute billing").
So the billed time is the union of the handler intervals, which this script adds up per
instance from the log. The object's clock is workerd's, which advances only across I/O: a
handler with no I/O reads as 0 ms, so the after-figures are a floor (each such handler takes
well under a millisecond of CPU here; `--handler-ms` adds an assumed cost per event to show
the bound).

Each `--repo` is a checkout with a built `build/`; its own `tests/integration/conftest.py`
starts `wrangler dev` (local D1 and Durable Objects) on a free loopback port.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from sync_latency import register  # noqa: E402

TRACE = re.compile(r"stratus-do-trace UserSync (\S+) (\S+) (\d+)")
MONTH_S = 30 * 24 * 3600
GB = 128 / 1024  # a Durable Object is billed at 128 MB


def start(repo: Path):
    """`wrangler dev` on `repo`'s build through that checkout's own harness, with the trace on."""
    path = repo / "tests" / "integration" / "conftest.py"
    sys.path.insert(0, str(path.parent))
    name = f"conftest_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    sys.path.remove(str(path.parent))
    return mod.start_worker({"LOGIN_FAILURES_IP_MAX": "100000", "DO_TRACE": "1", "DEV_COST_HEADER": "on"})


@dataclass
class Run:
    label: str
    server: object
    requests: int = 0
    empty: int = 0
    errors: int = 0
    log_offset: int = 0
    seconds: float = 0.0
    poll_ms: list = field(default_factory=list)
    # Object requests of the idle /syncs by class, from `X-Stratus-Cost` (UserSync's come from
    # the trace instead: builds before the synccost change did not meter the watch upgrade).
    other_do: dict = field(default_factory=dict)


def do_classes(header: str) -> dict:
    for part in header.split(";"):
        k, _, v = part.partition("=")
        if k == "do":
            return {c: int(n) for c, _, n in (x.partition(":") for x in v.split(",") if x)}
    return {}


def idle_client(run: Run, minutes: float) -> None:
    """One device: a /sync loop with timeout=30000, nobody else writing."""
    base = run.server.base
    s = requests.Session()
    me = register(base, f"idle{uuid.uuid4().hex[:8]}")
    h = {"Authorization": f"Bearer {me['access_token']}"}
    s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "private_chat", "name": "idle"}, headers=h, timeout=30).raise_for_status()
    since = s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=h, timeout=60).json()["next_batch"]
    # Settle: the first incremental sync may carry the tail of the setup.
    since = s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": since}, headers=h, timeout=60).json()["next_batch"]
    time.sleep(1)
    run.log_offset = run.server.log_path.stat().st_size
    t0 = time.monotonic()
    end = t0 + minutes * 60
    while time.monotonic() < end:
        a = time.monotonic()
        try:
            r = s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "30000", "since": since}, headers=h, timeout=90)
            run.requests += 1
            if r.status_code != 200:
                run.errors += 1
                time.sleep(1)
                continue
            body = r.json()
            for c, n in do_classes(r.headers.get("X-Stratus-Cost", "")).items():
                if c != "UserSync":
                    run.other_do[c] = run.other_do.get(c, 0) + n
            since = body.get("next_batch", since)
            rooms = body.get("rooms", {})
            run.empty += 1 if not any(rooms.get(k) for k in ("join", "invite", "leave", "knock")) and not body.get("to_device", {}).get("events") else 0
        except requests.RequestException:
            run.errors += 1
            time.sleep(1)
        run.poll_ms.append((time.monotonic() - a) * 1000)
    run.seconds = time.monotonic() - t0
    time.sleep(2)  # let the last close land in the log


@dataclass
class Trace:
    built: int = 0
    http: int = 0
    ws_events: int = 0
    active_ms: float = 0.0


def read_trace(run: Run) -> Trace:
    """Adds up the union of handler intervals per object instance, from the log lines written
    since the idle loop started."""
    with open(run.server.log_path, "rb") as f:
        f.seek(run.log_offset)
        text = f.read().decode(errors="replace")
    t = Trace()
    depth: dict[str, int] = {}
    since: dict[str, int] = {}
    for inst, event, ms in TRACE.findall(text):
        ms = int(ms)
        if event == "new":
            t.built += 1
            continue
        if event in ("begin", "ws-begin"):
            if event == "begin":
                t.http += 1
            else:
                t.ws_events += 1
            if depth.get(inst, 0) == 0:
                since[inst] = ms
            depth[inst] = depth.get(inst, 0) + 1
        elif event in ("end", "ws-end"):
            d = depth.get(inst, 0) - 1
            depth[inst] = max(d, 0)
            if d == 0:
                t.active_ms += ms - since.get(inst, ms)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", action="append", type=Path, help="a checkout with build/ (repeatable; default: this one)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--handler-ms", type=float, default=1.0, help="assumed cost of each handler and construction (the bound column)")
    args = ap.parse_args()
    repos = args.repo or [REPO]
    runs = []
    try:
        for repo in repos:
            runs.append(Run(label=str(repo), server=start(repo.resolve())))
        threads = [threading.Thread(target=idle_client, args=(r, args.minutes)) for r in runs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        rows = []
        for r in runs:
            t = read_trace(r)
            scale = MONTH_S / r.seconds
            # Incoming WebSocket messages are billed 20:1 as requests; closes are counted as messages here (an upper bound).
            billed_requests = t.http + t.ws_events / 20 + sum(r.other_do.values())
            bound_ms = t.active_ms + args.handler_ms * (t.http + t.ws_events + t.built)
            rows.append((r, t, scale, billed_requests, bound_ms))
        print(f"\nIdle device, {args.minutes:g} min, one /sync long-poll loop (timeout=30000); month = 30 days.\n")
        print("| build | /sync requests | UserSync HTTP requests | UserSync WebSocket events | other DO requests | DO built | DO active s |"
              " active share | GB-s/month (128 MB) | bound GB-s/month | DO requests/poll | DO requests/month | Worker requests/month |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r, t, scale, billed, bound_ms in rows:
            active_s = t.active_ms / 1000
            print(
                f"| {r.label} | {r.requests} | {t.http} | {t.ws_events} | {', '.join(f'{c} {n}' for c, n in r.other_do.items()) or 0} | {t.built} |"
                f" {active_s:.1f} | {active_s / r.seconds:.1%} | {active_s * scale * GB:,.0f} | {bound_ms / 1000 * scale * GB:,.0f} |"
                f" {billed / max(r.requests, 1):.2f} | {billed * scale:,.0f} | {r.requests * scale:,.0f} |"
            )
        for r, *_ in rows:
            mean = sum(r.poll_ms) / len(r.poll_ms) if r.poll_ms else 0
            print(f"- {r.label}: {r.seconds:.0f} s measured, {r.empty} empty responses, {r.errors} errors, mean /sync {mean / 1000:.1f} s")
    finally:
        for r in runs:
            r.server.stop()


if __name__ == "__main__":
    main()
