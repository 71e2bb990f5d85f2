#!/usr/bin/env python3
"""CPU time per request, by endpoint, of the local Worker (`wrangler dev`).

    .venv/bin/python bench/cpu.py                 # this checkout's build/, 50 requests each
    .venv/bin/python bench/cpu.py --requests 200

Starts `wrangler dev` on `build/` with the integration harness, finds its `workerd`
process, and for each endpoint sends N requests one after another while reading the
process's CPU time before and after each: the sum over its threads of
`/proc/<pid>/task/<tid>/schedstat` (nanoseconds; `/proc/<pid>/stat` counts 10 ms ticks, too
coarse for one request). The mean and the p99 of the per-request figures are printed; wall
time beside them: a long-poll waits without CPU ("long-poll wake-up" is a /sync waiting
while another user sends: its CPU is the woken sync's and the send's together).

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


def cpu_ns(pids: list[int]) -> int:
    """CPU time of all threads of `pids`, in nanoseconds (schedstat: run time first)."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def p99(values: list[float]) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, -(-99 * len(v) // 100) - 1))]


def png(size: int = 256) -> bytes:
    """A `size`x`size` RGB gradient PNG (an image worth thumbnailing)."""
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"".join(bytes((x * 255 // size, y * 255 // size, (x ^ y) & 255)) for x in range(size)) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def oauth_refresher(base: str, s: requests.Session):
    """A callable doing one OAuth token exchange (refresh grant) per call, or None when the
    server has no OAuth (no OAUTH_SIGNING_KEY)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("oauth_flow", REPO / "tests" / "integration" / "oauth" / "test_oauth.py")
    if spec is None or spec.loader is None:
        return None
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        client = mod.register_client(base)
        user = mod.new_user(base, "cpuoauth")
        flow = mod.Flow(base, client["client_id"])
        flow.authorize(user["username"])
        tokens = {"refresh": flow.exchange()["refresh_token"]}
    except Exception as e:  # noqa: BLE001 - the bench goes on without this row
        print(f"(OAuth token exchange skipped: {e})")
        return None

    def refresh() -> requests.Response:
        r = s.post(f"{base}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh"], "client_id": client["client_id"]}, timeout=30)
        if r.ok:
            tokens["refresh"] = r.json()["refresh_token"]
        return r

    return refresh


class Profiler:
    """bench/isolate_cpu.mjs on wrangler's inspector: the Worker isolate's own CPU."""

    def __init__(self, server) -> None:
        import subprocess

        cmd = server.launch[0]
        port = cmd[cmd.index("--inspector-port") + 1]
        node = REPO / "node_modules" / ".bin" / "node"
        self.proc = subprocess.Popen([str(node), str(REPO / "bench" / "isolate_cpu.mjs"), port], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, cmd: str) -> dict:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("bench/isolate_cpu.mjs ended (see its stderr)")
        return json.loads(line)

    def start(self, label: str = "") -> None:
        self._ask(f"start {label}")

    def stop(self) -> float:
        return float(self._ask("stop").get("busy_ms", 0.0))

    def close(self) -> None:
        import subprocess

        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument(
        "--profile",
        action="store_true",
        help="a second pass per endpoint with V8's profiler on the Worker's isolate (bench/isolate_cpu.mjs); "
        "with ISOLATE_CPU_TOP=FILE, where the isolate's time goes, by function",
    )
    ap.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                    help="a Worker var for this run, e.g. PASSWORD_PBKDF2_ITERATIONS=10000 (the Free-plan setting)")
    ap.add_argument("--only", action="append", default=[], metavar="ENDPOINT", help="measure only these rows (by name prefix)")
    args = ap.parse_args()
    n = args.requests
    extra = dict(v.split("=", 1) for v in args.var)

    import conftest  # the integration harness starts wrangler dev from build/

    server = conftest.start_worker({"LOGIN_FAILURES_IP_MAX": "100000", **extra})
    try:
        prof = Profiler(server) if args.profile else None
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
        image = png()
        img = s.post(f"{base}/_matrix/media/v3/upload", data=image, headers={**ha, "Content-Type": "image/png"}, timeout=60).json()["content_uri"].removeprefix("mxc://")
        from e2ee_helpers import Signer, device_keys, one_time_keys

        signer = Signer(a["device_id"])
        s.post(f"{base}/_matrix/client/v3/keys/upload", json={"device_keys": device_keys(a["user_id"], a["device_id"], signer)[0]}, headers=ha, timeout=30).raise_for_status()
        # Enough one-time keys for every claim (warm-up included).
        for _ in range(0, n + 1, 50):
            s.post(f"{base}/_matrix/client/v3/keys/upload", json={"one_time_keys": one_time_keys(50, a["user_id"], signer)}, headers=ha, timeout=30).raise_for_status()
        sliding = {"conn_id": "cpu", "lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 1, "required_state": [["m.room.name", ""]]}}}
        refresh = oauth_refresher(base, s)

        wake_since: dict = {}

        def wake() -> requests.Response:
            """b long-polls; a sends once b waits; returns b's woken sync."""
            import threading

            box: dict = {}
            since = wake_since.get("tok") or s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=hb, timeout=60).json()["next_batch"]
            t = threading.Thread(target=lambda: box.update(r=requests.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "20000", "since": since}, headers=hb, timeout=60)))
            t.start()
            time.sleep(0.3)  # b is waiting (its wait costs no CPU; measured below with the send)
            s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": "wake"}, headers=ha, timeout=30)
            t.join()
            wake_since["tok"] = box["r"].json().get("next_batch")
            return box["r"]

        endpoints = {
            "login": lambda: s.post(f"{base}/_matrix/client/v3/login", json=login, timeout=30),
            "whoami": lambda: s.get(f"{base}/_matrix/client/v3/account/whoami", headers=hb, timeout=30),
            "createRoom": lambda: s.post(f"{base}/_matrix/client/v3/createRoom", json={}, headers=ha, timeout=30),
            "send": lambda: s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": "x"}, headers=ha, timeout=30),
            "sync (initial)": lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=hb, timeout=60),
            "sync (idle)": lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": tok["since"], "set_presence": "offline"}, headers=hb, timeout=60),
            "messages": lambda: s.get(f"{base}/_matrix/client/v3/rooms/{room}/messages", params={"dir": "b", "limit": "50"}, headers=hb, timeout=60),
            "keys/query": lambda: s.post(f"{base}/_matrix/client/v3/keys/query", json={"device_keys": {a["user_id"]: []}}, headers=hb, timeout=30),
            "keys/upload (5 OTKs)": lambda: s.post(f"{base}/_matrix/client/v3/keys/upload", json={"one_time_keys": one_time_keys(5, a["user_id"], signer)}, headers=ha, timeout=30),
            "keys/claim": lambda: s.post(f"{base}/_matrix/client/v3/keys/claim", json={"one_time_keys": {a["user_id"]: {a["device_id"]: "signed_curve25519"}}}, headers=hb, timeout=30),
            "media upload 100 KiB": lambda: s.post(f"{base}/_matrix/media/v3/upload", data=blob, headers={**ha, "Content-Type": "application/octet-stream"}, timeout=60),
            "media download 100 KiB": lambda: s.get(f"{base}/_matrix/client/v1/media/download/{media}", headers=hb, timeout=60),
            "thumbnail 96x96 of 256px PNG": lambda: s.get(f"{base}/_matrix/client/v1/media/thumbnail/{img}", params={"width": "96", "height": "96", "method": "scale"}, headers=hb, timeout=60),
            "sliding sync (20 rooms list)": lambda: s.post(f"{base}/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", params={"timeout": "0"}, json=sliding, headers=hb, timeout=60),
            "long-poll wake-up (+ the send)": wake,
        }
        if refresh is not None:
            endpoints["OAuth token exchange (refresh)"] = refresh
        if args.only:
            endpoints = {k: v for k, v in endpoints.items() if any(k.startswith(o) for o in args.only)}
        rows = []
        for name, fn in endpoints.items():
            if name == "sync (idle)":
                latest()
            fn().raise_for_status()  # warm-up
            trips, cpus, t0 = [], [], time.perf_counter()
            for _ in range(n):
                c0 = cpu_ns(pids)
                r = fn()
                cpus.append((cpu_ns(pids) - c0) / 1e6)
                r.raise_for_status()
                if "X-Stratus-D1-Round-Trips" in r.headers:
                    trips.append(int(r.headers["X-Stratus-D1-Round-Trips"]))
            t1 = time.perf_counter()
            own: list[float] = []
            if prof is not None:
                # A separate pass: the profiler's own work would inflate the process figures.
                for _ in range(n):
                    prof.start(name)
                    r = fn()
                    own.append(prof.stop())
                    r.raise_for_status()
            rows.append((name, sum(cpus) / n, p99(cpus), (t1 - t0) * 1000 / n, sorted(trips)[len(trips) // 2] if trips else None, own))
    finally:
        if prof is not None:
            prof.close()
        server.stop()
    print(f"\n{n} requests per endpoint; CPU of the workerd process (Worker + local D1/KV/R2/Durable Objects)" + (f"; vars {extra}" if extra else ""))
    if prof is not None:
        print(
            "isolate: time V8's profiler saw the Worker's isolate busy (50 us samples). Not CPU: it includes the\n"
            "profiler's own cost and time blocked inside native calls (a long-poll's wait), so it can exceed the\n"
            "process figure; use it for where the time goes (ISOLATE_CPU_TOP), not as a bill."
        )
    print()
    head = f"{'endpoint':<34}{'CPU ms/req':>12}{'p99':>8}{'wall ms/req':>13}{'D1 trips':>10}"
    print(head + (f"{'isolate':>9}{'p99':>8}" if prof is not None else ""))
    for name, cpu, cpu99, wall, trips, own in rows:
        line = f"{name:<34}{cpu:>12.1f}{cpu99:>8.1f}{wall:>13.1f}{trips if trips is not None else '-':>10}"
        if own:
            line += f"{sum(own) / len(own):>9.1f}{p99(own):>8.1f}"
        print(line)


if __name__ == "__main__":
    main()
