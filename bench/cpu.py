#!/usr/bin/env python3
"""CPU time per request, by endpoint, of the local Worker (`wrangler dev`).

    .venv/bin/python bench/cpu.py                 # this checkout's build/, 50 requests each
    .venv/bin/python bench/cpu.py --requests 200

Starts `wrangler dev` on `build/` with the integration harness, finds its `workerd`
process, and for each endpoint sends N requests one after another while reading the
process's CPU time (user + system, `/proc/<pid>/stat`) before and after: CPU ms per request
= the difference / N. Wall time is printed beside it: a long-poll waits without CPU.

What it includes that production does not bill to the Worker: workerd here also runs the
local D1 (SQLite), KV, R2 and the Durable Objects in the same process, so each figure is an
upper bound for the Worker's own CPU (the `D1 trips` column, where a request reports it,
says how much of it is D1 work). Only loopback addresses are used; loops are bounded by
`--requests`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from sync_latency import register  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(p.name))
    return out


def workerd_pids(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "workerd":
            found.append(pid)
        todo.extend(children(pid))
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICK


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    n = args.requests

    import conftest  # the integration harness starts wrangler dev from build/

    server = conftest.start_worker({"LOGIN_FAILURES_IP_MAX": "100000"})
    try:
        pids = workerd_pids(server.proc.pid)
        if not pids:
            sys.exit("no workerd process found under wrangler")
        base, s = server.base, requests.Session()
        a = register(base, f"cpua{uuid.uuid4().hex[:8]}")
        b = register(base, f"cpub{uuid.uuid4().hex[:8]}")
        ha = {"Authorization": f"Bearer {a['access_token']}"}
        hb = {"Authorization": f"Bearer {b['access_token']}"}
        room = s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=ha, timeout=30).json()["room_id"]
        s.post(f"{base}/_matrix/client/v3/join/{room}", json={}, headers=hb, timeout=30).raise_for_status()
        for i in range(60):
            s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": f"h{i}"}, headers=ha, timeout=30)
        tok = {"since": ""}  # b's latest position, taken just before the idle phase

        def latest() -> None:
            body = s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=hb, timeout=60).json()
            tok["since"] = body["next_batch"]

        blob = os.urandom(100 * 1024)
        mxc = s.post(f"{base}/_matrix/media/v3/upload", data=blob, headers={**ha, "Content-Type": "application/octet-stream"}, timeout=60).json()["content_uri"]
        media = mxc.removeprefix("mxc://")
        login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": b["user_id"]}, "password": "bench-password-123", "device_id": "CPULOGIN"}

        endpoints = {
            "login": lambda: s.post(f"{base}/_matrix/client/v3/login", json=login, timeout=30),
            "whoami": lambda: s.get(f"{base}/_matrix/client/v3/account/whoami", headers=hb, timeout=30),
            "createRoom": lambda: s.post(f"{base}/_matrix/client/v3/createRoom", json={}, headers=ha, timeout=30),
            "send": lambda: s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": "x"}, headers=ha, timeout=30),
            "sync (initial)": lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=hb, timeout=60),
            "sync (idle)": lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": tok["since"], "set_presence": "offline"}, headers=hb, timeout=60),
            "messages": lambda: s.get(f"{base}/_matrix/client/v3/rooms/{room}/messages", params={"dir": "b", "limit": "50"}, headers=hb, timeout=60),
            "keys/query": lambda: s.post(f"{base}/_matrix/client/v3/keys/query", json={"device_keys": {a["user_id"]: []}}, headers=hb, timeout=30),
            "media upload 100 KiB": lambda: s.post(f"{base}/_matrix/media/v3/upload", data=blob, headers={**ha, "Content-Type": "application/octet-stream"}, timeout=60),
            "media download 100 KiB": lambda: s.get(f"{base}/_matrix/client/v1/media/download/{media}", headers=hb, timeout=60),
        }
        rows = []
        for name, fn in endpoints.items():
            if name == "sync (idle)":
                latest()
            fn().raise_for_status()  # warm-up
            c0, t0 = cpu_seconds(pids), time.perf_counter()
            trips = []
            for _ in range(n):
                r = fn()
                r.raise_for_status()
                if "X-Stratus-D1-Round-Trips" in r.headers:
                    trips.append(int(r.headers["X-Stratus-D1-Round-Trips"]))
            c1, t1 = cpu_seconds(pids), time.perf_counter()
            rows.append((name, (c1 - c0) * 1000 / n, (t1 - t0) * 1000 / n, sorted(trips)[len(trips) // 2] if trips else None))
    finally:
        server.stop()
    print(f"\n{n} requests per endpoint; CPU of the workerd process (Worker + local D1/KV/R2/Durable Objects)\n")
    print(f"{'endpoint':<24}{'CPU ms/req':>12}{'wall ms/req':>13}{'D1 trips':>10}")
    for name, cpu, wall, trips in rows:
        print(f"{name:<24}{cpu:>12.1f}{wall:>13.1f}{trips if trips is not None else '-':>10}")


if __name__ == "__main__":
    main()
