#!/usr/bin/env python3
"""What the two modelled days of issue #17 cost on Cloudflare, from measured units.

    .venv/bin/python bench/cost.py                  # this checkout's build/
    .venv/bin/python bench/cost.py --reps 20 --poll-timeout-ms 3000

How: starts `wrangler dev` on `build/` with `DEV_COST_HEADER=on`, and measures each operation
a day is made of at a reduced scale (one room of a few users): the billable units the Worker
reports for it (`X-Stratus-Cost`: D1 statements and rows, Durable Object requests and the
wall time they were held, KV, R2, subrequests) and the CPU the local `workerd` process spent
(an upper bound of the Worker's own CPU: it also runs the local D1, KV, R2 and objects).
Then it scales up **arithmetically**: units per day = Σ operations per day × units per
operation (median of `--reps` runs), and prices them with `bench/prices.json` (dated, with the
Cloudflare pages they came from). Nothing here runs a day's traffic.

The modelled days (issue #17):
  (a) a 10-person team: 300 messages, 20 devices (2 per person) syncing all day in one room,
      5 uploads each downloaded by every member;
  (b) a 1,000-user community: 20,000 messages across 200 rooms, 1,500 devices; each user in 5
      rooms (so 25 members and 37.5 devices per room), 200 uploads each downloaded 10 times.

Syncing devices long-poll (`timeout=30000`, what Element and the SDKs send). Each message
wakes every device in its room (one more /sync each), and an idle device sends one /sync per
poll timeout. Both kinds of long-poll are measured as they run: the idle one waits its whole
(shortened) timeout, the woken one is parked when a message is sent.

Durable Object requests: the calls each request made (`X-Stratus-Cost`), plus the WebSocket
close every long-poll's watch ends with (an incoming WebSocket message for the object, billed
20:1 as requests). Duration: a waiting /sync parks a hibernatable WebSocket on the user's
`UserSync` object (#17), so an object is billed only while it handles a call: the measured
`do_ms` (how long the Worker waited on each object call, an upper bound of the handler's
time), or `--hibernate-do-ms-per-poll` for an idle long-poll (e.g. the floor that
`bench/idle_device.py` measures from the object's own trace). `--hold` prices the design
before hibernation (a waiting /sync held the object active for its whole wait) for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from cpu import cpu_ns, workerd_pids  # noqa: E402

# Each long-poll's watch socket is closed by the Worker when the poll ends: one incoming
# WebSocket event for the object, billed as 1/20 of a request.
WS_EVENTS_PER_LONG_POLL = 1
WS_EVENTS_PER_REQUEST = 20
from sync_latency import register  # noqa: E402

DAY_S = 86400
UNIT_KEYS = ("d1", "rows_read", "rows_written", "do_ms", "kv_r", "kv_w", "r2_a", "r2_b", "sub")


def parse_cost(header: str) -> dict:
    out: dict = {"do": {}}
    for part in header.split(";"):
        k, _, v = part.partition("=")
        if k == "do":
            out["do"] = {c: int(n) for c, _, n in (x.partition(":") for x in v.split(",") if x)}
        else:
            out[k] = int(v)
    return out


class Op:
    """The median units, DO requests and CPU of one operation type."""

    def __init__(self, name: str):
        self.name, self.samples, self.cpu_ms, self.wall_ms = name, [], [], []

    def add(self, r: requests.Response, cpu_ms: float, wall_ms: float) -> None:
        r.raise_for_status()
        self.samples.append(parse_cost(r.headers["X-Stratus-Cost"]))
        self.cpu_ms.append(cpu_ms)
        self.wall_ms.append(wall_ms)

    def unit(self, key: str) -> float:
        if key == "do":
            return statistics.median(sum(s["do"].values()) for s in self.samples)
        return statistics.median(s[key] for s in self.samples)

    def do_classes(self) -> str:
        s = self.samples[len(self.samples) // 2]["do"]
        return ",".join(f"{c}:{n}" for c, n in s.items()) or "-"

    def cpu(self) -> float:
        return statistics.median(self.cpu_ms)


def measure(base: str, pids: list[int], reps: int, poll_ms: int) -> dict[str, Op]:
    s = requests.Session()
    members = [register(base, f"cost{i}{uuid.uuid4().hex[:6]}") for i in range(4)]
    a = members[0]
    h = [{"Authorization": f"Bearer {m['access_token']}"} for m in members]
    room = s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=h[0], timeout=30).json()["room_id"]
    for hb in h[1:]:
        s.post(f"{base}/_matrix/client/v3/join/{room}", json={}, headers=hb, timeout=30).raise_for_status()
    for i in range(20):
        s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": f"warm {i}"}, headers=h[0], timeout=30)
    since = {"tok": s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=h[1], timeout=60).json()["next_batch"]}
    blobs = iter(lambda: os.urandom(200 * 1024), None)  # media is stored by hash: each upload new bytes
    mxc = {"id": ""}

    def timed(op: Op, fn) -> requests.Response:
        c0, t0 = cpu_ns(pids), time.perf_counter()
        r = fn()
        op.add(r, (cpu_ns(pids) - c0) / 1e6, (time.perf_counter() - t0) * 1000)
        return r

    names = ("send", "sync wake-up", "sync wake-up (long-poll)", "sync idle poll (timeout=0)", f"sync idle long-poll ({poll_ms} ms)", "upload 200 KiB", "download 200 KiB", "login")
    ops = {n: Op(n) for n in names}
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": members[3]["user_id"]}, "password": "bench-password-123"}
    for _ in range(reps):
        timed(ops["send"], lambda: s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": "hello"}, headers=h[0], timeout=30))
        # The wake-up: the sync that returns the new message (incremental, one new event).
        r = timed(ops["sync wake-up"], lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": since["tok"]}, headers=h[1], timeout=60))
        since["tok"] = r.json()["next_batch"]
        r = timed(ops["sync idle poll (timeout=0)"], lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0", "since": since["tok"]}, headers=h[1], timeout=60))
        since["tok"] = r.json()["next_batch"]
    # The wake-up as clients meet it: a long-poll parked on its watch, woken by a send. Its
    # units are its own (the send is another request); its CPU is not (both ran meanwhile),
    # so the model takes the CPU of the timeout=0 wake-up above.
    for _ in range(max(2, reps // 2)):
        out: dict = {}

        def poll() -> None:
            t0 = time.perf_counter()
            out["r"] = s2.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "20000", "since": since["tok"]}, headers=h[1], timeout=60)
            out["ms"] = (time.perf_counter() - t0) * 1000

        s2 = requests.Session()
        th = threading.Thread(target=poll)
        th.start()
        time.sleep(0.5)
        s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": "wake"}, headers=h[0], timeout=30).raise_for_status()
        th.join(60)
        ops["sync wake-up (long-poll)"].add(out["r"], float("nan"), out["ms"])
        since["tok"] = out["r"].json()["next_batch"]
    idle = {"tok": s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "0"}, headers=h[2], timeout=60).json()["next_batch"]}
    for _ in range(max(2, reps // 5)):
        # Nothing happens meanwhile: the poll waits its whole timeout.
        r = timed(ops[f"sync idle long-poll ({poll_ms} ms)"], lambda: s.get(f"{base}/_matrix/client/v3/sync", params={"timeout": str(poll_ms), "since": idle["tok"]}, headers=h[2], timeout=60))
        idle["tok"] = r.json()["next_batch"]
    for _ in range(max(2, reps // 4)):
        r = timed(ops["upload 200 KiB"], lambda: s.post(f"{base}/_matrix/media/v3/upload", data=next(blobs), headers={**h[0], "Content-Type": "application/octet-stream"}, timeout=60))
        mxc["id"] = r.json()["content_uri"].removeprefix("mxc://")
        timed(ops["download 200 KiB"], lambda: s.get(f"{base}/_matrix/client/v1/media/download/{mxc['id']}", headers=h[1], timeout=60))
        timed(ops["login"], lambda: s.post(f"{base}/_matrix/client/v3/login", json=login, timeout=30))
    return ops


def day_counts(team: bool, poll_s: float) -> dict:
    """Operations per day of a modelled day, and the shape the duration model needs."""
    if team:
        users, devices, messages, devices_per_room, uploads, downloads_each = 10, 20, 300, 20, 5, 10
    else:
        users, devices, messages, devices_per_room, uploads, downloads_each = 1000, 1500, 20000, 37.5, 200, 10
    wakeups = messages * devices_per_room
    # An idle device polls once per timeout; a wake-up ends a poll early (the next starts then).
    polls = max(0.0, devices * DAY_S / poll_s - wakeups)
    return {
        "users": users,
        "devices": devices,
        "ops": {
            "send": messages,
            "sync wake-up": wakeups,
            "sync idle long-poll": polls,
            "upload 200 KiB": uploads,
            "download 200 KiB": uploads * downloads_each,
            "login": devices * 0.02,  # a device logs in again about every 50 days
        },
    }


def price(units: dict, p: dict, days: float = 30.0) -> dict[str, float]:
    """$ per month on Workers Paid for `units` per day."""

    def over(per_day: float, included: float, usd_per_million: float) -> float:
        return max(0.0, per_day * days - included) / 1e6 * usd_per_million

    w, do, d1, kv, r2 = p["workers"], p["durable_objects"], p["d1"], p["kv"], p["r2"]
    return {
        "subscription": p["workers_paid_subscription_usd"],
        "Worker requests": over(units["requests"], w["paid_requests_included_per_month"], w["paid_usd_per_million_requests"]),
        "Worker CPU": over(units["cpu_ms"], w["paid_cpu_ms_included_per_month"], w["paid_usd_per_million_cpu_ms"]),
        "DO requests": over(units["do"], do["paid_requests_included_per_month"], do["paid_usd_per_million_requests"]),
        "DO duration": over(units["do_gb_s"], do["paid_gb_s_included_per_month"], do["paid_usd_per_million_gb_s"]),
        "D1 rows read": over(units["rows_read"], d1["paid_rows_read_included_per_month"], d1["paid_usd_per_million_rows_read"]),
        "D1 rows written": over(units["rows_written"], d1["paid_rows_written_included_per_month"], d1["paid_usd_per_million_rows_written"]),
        "KV reads": over(units["kv_r"], kv["paid_reads_included_per_month"], kv["paid_usd_per_million_reads"]),
        "KV writes": over(units["kv_w"], kv["paid_writes_included_per_month"], kv["paid_usd_per_million_writes"]),
        "R2 class A": over(units["r2_a"], r2["class_a_included_per_month"], r2["usd_per_million_class_a"]),
        "R2 class B": over(units["r2_b"], r2["class_b_included_per_month"], r2["usd_per_million_class_b"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--poll-timeout-ms", type=int, default=2000, help="the long-poll measured (scaled to 30 s in the model)")
    ap.add_argument("--client-timeout-s", type=float, default=30.0, help="the /sync timeout clients send")
    ap.add_argument("--hibernate-do-ms-per-poll", type=float, default=None, help="DO active ms per idle long-poll (default: measured, the watch's object calls)")
    ap.add_argument("--hold", action="store_true", help="also price the design before hibernation (a waiting /sync held its object active)")
    args = ap.parse_args()
    prices = json.loads((REPO / "bench" / "prices.json").read_text())
    global WS_EVENTS_PER_REQUEST
    WS_EVENTS_PER_REQUEST = prices["durable_objects"].get("websocket_messages_per_billed_request", WS_EVENTS_PER_REQUEST)

    import conftest  # the integration harness starts wrangler dev from build/

    server = conftest.start_worker({"DEV_COST_HEADER": "on", "LOGIN_FAILURES_IP_MAX": "100000"})
    try:
        pids = workerd_pids(server.proc.pid)
        if not pids:
            sys.exit("no workerd process found under wrangler")
        ops = measure(server.base, pids, args.reps, args.poll_timeout_ms)
    finally:
        server.stop()

    poll = ops[f"sync idle long-poll ({args.poll_timeout_ms} ms)"]
    ops["sync idle long-poll"] = poll  # the model's name for it
    woken = ops["sync wake-up (long-poll)"]
    woken.cpu_ms = ops["sync wake-up"].cpu_ms  # see measure()
    print(f"\nMeasured per operation (median of {args.reps}; CPU = the whole local workerd, an upper bound)\n")
    print(f"{'operation':<32}{'CPU ms':>8}{'wall ms':>9}{'D1 st':>7}{'rows r':>8}{'rows w':>8}{'DO req':>8}{'DO ms':>8}{'R2 A':>6}{'R2 B':>6}{'KV r/w':>8}  DO classes")
    for name, op in ops.items():
        if name in ("sync idle long-poll",):
            continue
        print(
            f"{name:<32}{op.cpu():>8.1f}{statistics.median(op.wall_ms):>9.1f}{op.unit('d1'):>7.0f}{op.unit('rows_read'):>8.0f}{op.unit('rows_written'):>8.0f}"
            f"{op.unit('do'):>8.0f}{op.unit('do_ms'):>8.0f}{op.unit('r2_a'):>6.0f}{op.unit('r2_b'):>6.0f}{op.unit('kv_r'):>4.0f}/{op.unit('kv_w'):<3.0f}  {op.do_classes()}"
        )
    hibernate_ms = args.hibernate_do_ms_per_poll if args.hibernate_do_ms_per_poll is not None else poll.unit("do_ms")
    print(f"\nAn idle long-poll: {poll.unit('do'):.0f} object request(s) ({poll.do_classes()}) + {WS_EVENTS_PER_LONG_POLL} WebSocket close "
          f"(1/{WS_EVENTS_PER_REQUEST} request); objects active {poll.unit('do_ms'):.0f} ms of its {args.poll_timeout_ms} ms wait.")
    print(f"DO-active ms per idle long-poll used: {hibernate_ms:.1f} ({'given' if args.hibernate_do_ms_per_poll is not None else 'measured'}).")
    print(f"Scaled up arithmetically from these figures to {args.client_timeout_s:.0f} s client long-polls; nothing ran a whole day.\n")

    gb = prices["durable_objects"]["memory_gb_billed"]
    for label, team in (("(a) 10-person team", True), ("(b) 1,000-user community", False)):
        day = day_counts(team, args.client_timeout_s)
        base_units = {k: 0.0 for k in (*UNIT_KEYS, "do")}
        requests_per_day = cpu_ms = 0.0
        worst_cpu = []
        by_op: dict[str, float] = {}
        for name, n in day["ops"].items():
            op = ops["sync wake-up (long-poll)" if name == "sync wake-up" else name]
            requests_per_day += n
            cpu_ms += n * op.cpu()
            worst_cpu.append((op.cpu(), name))
            for k in base_units:
                base_units[k] += n * op.unit(k)
            by_op[name] = n * op.unit("do")
        long_polls = day["ops"]["sync idle long-poll"] + day["ops"]["sync wake-up"]
        base_units["do"] += long_polls * WS_EVENTS_PER_LONG_POLL / WS_EVENTS_PER_REQUEST
        by_op["WebSocket closes"] = long_polls * WS_EVENTS_PER_LONG_POLL / WS_EVENTS_PER_REQUEST
        for model in ("hold", "hibernate") if args.hold else ("hibernate",):
            units = dict(base_units, requests=requests_per_day, cpu_ms=cpu_ms)
            active_s = sum(n * ops[name].unit("do_ms") for name, n in day["ops"].items() if name != "sync idle long-poll") / 1000
            if model == "hold":
                # Each user's object was held while any of their devices waited: all day.
                active_s += day["users"] * DAY_S
            else:
                active_s += day["ops"]["sync idle long-poll"] * hibernate_ms / 1000
            units["do_gb_s"] = active_s * gb
            cost = price(units, prices)
            total = sum(cost.values())
            print(f"{label}, DO duration model '{model}': ${total:.2f}/month on Workers Paid")
            print(
                f"    per day: {units['requests']:,.0f} requests, {units['cpu_ms'] / 1000:,.0f} CPU s (upper bound), {units['do']:,.0f} DO requests, "
                f"{active_s / 3600:,.1f} DO-active hours = {units['do_gb_s']:,.0f} GB-s, D1 {units['rows_read']:,.0f} rows read / {units['rows_written']:,.0f} written, "
                f"KV {units['kv_r']:,.0f}/{units['kv_w']:,.0f}, R2 A {units['r2_a']:,.0f} B {units['r2_b']:,.0f}"
            )
            print("    $/month: " + ", ".join(f"{k} {v:.2f}" for k, v in cost.items() if v > 0.005))
            top = max((v, k) for k, v in cost.items() if k != "subscription")
            print(f"    dominated by: {top[1]} (${top[0]:.2f} of ${total:.2f})")
            print("    DO requests/day by operation: " + ", ".join(f"{k} {v:,.0f}" for k, v in by_op.items() if v >= 1))
            if team:
                fp = prices
                checks = [
                    ("requests", units["requests"], fp["workers"]["free_requests_per_day"]),
                    ("DO requests", units["do"], fp["durable_objects"]["free_requests_per_day"]),
                    ("DO GB-s", units["do_gb_s"], fp["durable_objects"]["free_gb_s_per_day"]),
                    ("D1 rows read", units["rows_read"], fp["d1"]["free_rows_read_per_day"]),
                    ("D1 rows written", units["rows_written"], fp["d1"]["free_rows_written_per_day"]),
                    ("KV reads", units["kv_r"], fp["kv"]["free_reads_per_day"]),
                    ("KV writes", units["kv_w"], fp["kv"]["free_writes_per_day"]),
                ]
                over = [f"{n} {v:,.0f} > {lim:,}" for n, v, lim in checks if v > lim]
                cpu_over = [f"{n} {c:.1f} ms" for c, n in worst_cpu if c > fp["workers"]["free_cpu_ms_per_request"]]
                verdict = "fits" if not over else "does NOT fit"
                print(f"    Free plan daily quotas: {verdict}" + (f" ({'; '.join(over)})" if over else "") + ".")
                if cpu_over:
                    print(f"    Free plan 10 ms CPU per request (local workerd figure, an upper bound): over for {', '.join(cpu_over)}.")
        print()
    print(f"Reference: {prices['reference']['claim']} ({prices['reference']['source']}).")
    print(f"Prices: bench/prices.json, read {prices['retrieved']}.")


if __name__ == "__main__":
    main()
