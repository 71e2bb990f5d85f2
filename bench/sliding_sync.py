#!/usr/bin/env python3
"""Simplified sliding sync (MSC4186, issue #15), Stratus beside a local Synapse: how fast an
account with 10, 100 or 1,000 rooms gets its room list, and how fast a new message reaches it.

    .venv/bin/python bench/sliding_sync.py [--rooms 10,100,1000] [--samples 30] [--full-samples 10]
        [--threads 4] [--skip-synapse] [--skip-stratus] [--var DEV_SIMULATED_LATENCY_MS=5]

The requests are those matrix-rust-sdk's `RoomListService` (the engine of Element X) sends to
`POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`: connection `room-list`,
one list `all_rooms` with `timeline_limit` 1 and the SDK's `required_state`, the account-data,
receipts and typing extensions, `pos` and `timeout` as query parameters. Measured per server
and account size:

- **first response**: a new connection (no `pos`), range `[0, 19]`, `timeout=0`: what the
  SDK asks first, and what the room list shows first.
- **full list**: the SDK's whole loading sequence, each request on the previous `pos`: the
  first request above, then (`SlidingSyncMode::Growing`, batch 100) `[0, 99]`, `[0, 199]`,
  ... until the range covers the list's `count`; timed from the first request's start to the
  last response. The rooms seen must add up to the account's rooms.
- **delivery**: a second device of the account holds a fully loaded `room-list` connection
  and long-polls it (`timeout=30000`, as the SDK once the list is loaded); another user sends
  a message in a room they share; the time from the start of that send to the response that
  carries the event.

Stratus runs under `wrangler dev` from `build/` (the integration harness, as the other
benches); Synapse 1.163.2 on SQLite from bench/.synapse-venv (bench/synapse_local.py; its
simplified sliding sync is on by default, `experimental_features.msc3575_enabled`). Samples
are interleaved (one round of each metric per server in turn, the order flipping every round)
so that load from elsewhere on the machine falls on both alike; two rounds per account size
are warm-up and not counted. Stratus's `X-Stratus-D1-Round-Trips` is reported per request:
it should depend on the window, not on the number of rooms.

The account grows from one size to the next (created with `/createRoom`, `--threads` requests
at a time on each server, both servers at once); nothing is kept between runs. Each room has a
name and otherwise only the `/createRoom` events. Only loopback addresses are used.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from request_latency import start_stratus, start_synapse  # noqa: E402  (the benches' server start-up)
from sync_latency import pct, register, timed_arrival  # noqa: E402  (registration, percentile, delivery sample)

SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
CLIENT_V3 = "/_matrix/client/v3"
PASSWORD = "bench-password-123"  # sync_latency.register's
FIRST_RANGE_END = 19  # ALL_ROOMS_DEFAULT_SELECTIVE_RANGE, matrix-sdk-ui room_list_service/state.rs
GROWING_BATCH = 100  # ALL_ROOMS_DEFAULT_GROWING_BATCH_SIZE
LONG_POLL_MS = 30000  # the SDK's default poll timeout once the list is fully loaded
WARM_UP_ROUNDS = 2
SAMPLE_DEADLINE = 20.0

# RoomListService's DEFAULT_REQUIRED_STATE (matrix-sdk-ui room_list_service/mod.rs). The
# m.room.pinned_events it adds is for room subscriptions only, not for the list.
REQUIRED_STATE = [
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"],
    ["m.room.join_rules", ""],
    ["m.room.tombstone", ""],
    ["m.room.create", ""],
    ["m.room.history_visibility", ""],
    ["io.element.functional_members", ""],
    ["m.space.parent", "*"],
    ["m.space.child", "*"],
    ["org.matrix.msc3672.beacon_info", "*"],
]

METRICS = ["first response", "full list", "delivery"]


def room_list_request(range_end: int) -> dict:
    """The body RoomListService sends, with the list's range `[0, range_end]` (the SDK sends
    the whole list configuration on every request)."""
    return {
        "conn_id": "room-list",
        "lists": {"all_rooms": {"ranges": [[0, range_end]], "timeline_limit": 1, "required_state": REQUIRED_STATE, "filters": {}}},
        "extensions": {
            "account_data": {"enabled": True},
            "receipts": {"enabled": True, "rooms": ["*"]},
            "typing": {"enabled": True},
        },
    }


class Unsupported(Exception):
    """The server does not serve the sliding sync endpoint (or answered it with an error)."""


class Server:
    """One server: the account B (device 1 for the room-list samples, device 2 holding the
    long-polled connection), user A who shares one of B's rooms, and the samples so far."""

    def __init__(self, name: str, base: str):
        self.name, self.base = name, base
        self._local = threading.local()
        a = register(base, f"ssa{uuid.uuid4().hex[:8]}")
        b = register(base, f"ssb{uuid.uuid4().hex[:8]}")
        self.a_token, self.b_token = a["access_token"], b["access_token"]
        login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": b["user_id"]}, "password": PASSWORD}
        self.b2_token = self.call("POST", f"{CLIENT_V3}/login", self.b_token, json=login)["access_token"]
        self.shared = self.call("POST", f"{CLIENT_V3}/createRoom", self.a_token, json={"preset": "public_chat", "name": "shared"})["room_id"]
        self.call("POST", f"{CLIENT_V3}/join/{self.shared}", self.b_token, json={})
        self.rooms = 1
        self.samples: dict[tuple[int, str], list[float]] = {}
        self.trips: dict[tuple[int, str], list[int]] = {}
        self.requests_per_full_list: dict[int, int] = {}
        self.cold: dict[int, float] = {}
        self.problems: list[str] = []
        self.error: str | None = None
        self.delivery_pos: str | None = None
        self.delivery_end = 0

    def session(self) -> requests.Session:
        if not hasattr(self._local, "s"):
            self._local.s = requests.Session()
        return self._local.s

    def call(self, method: str, path: str, token: str, **kw) -> dict:
        r = self.session().request(method, self.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)
        r.raise_for_status()
        return r.json()

    def grow(self, n: int, threads: int) -> None:
        """Creates rooms (B alone in each, with a name) until B is in `n`."""
        retried: list[str] = []

        def create(i: int) -> None:
            for attempt in range(3):
                r = self.session().post(self.base + f"{CLIENT_V3}/createRoom", json={"name": f"bench room {i}"},
                                        headers={"Authorization": f"Bearer {self.b_token}"}, timeout=60)
                # Identical /createRoom requests in the same millisecond give identical v12
                # create events, hence one room ID: a server must retry that itself (Synapse
                # does); one that answers 5xx is retried here, and the count reported.
                if r.status_code < 500 or attempt == 2:
                    r.raise_for_status()
                    return
                retried.append(r.text[:120])

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, range(self.rooms, n)))
        if retried:
            self.problems.append(f"{n} rooms: /createRoom answered 5xx {len(retried)} times (retried), e.g. {retried[0]}")
        self.rooms = max(self.rooms, n)

    def sliding_sync(self, token: str, body: dict, pos: str | None, timeout_ms: int) -> tuple[float, dict, int | None]:
        """One request: (ms, response body, D1 round trips if the server reported them)."""
        params = {"timeout": str(timeout_ms)}
        if pos is not None:
            params["pos"] = pos
        t0 = time.perf_counter()
        r = self.session().post(self.base + SLIDING_SYNC, params=params, json=body, headers={"Authorization": f"Bearer {token}"},
                                timeout=timeout_ms / 1000 + 60)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise Unsupported(f"{r.status_code} {r.text[:200]}")
        trips = r.headers.get("X-Stratus-D1-Round-Trips")
        return ms, r.json(), int(trips) if trips is not None else None

    def check(self, what: str, got, want) -> None:
        if got != want and len(self.problems) < 20:
            self.problems.append(f"{self.rooms} rooms, {what}: got {got}, expected {want}")

    def first_response(self) -> float:
        ms, body, trips = self.sliding_sync(self.b_token, room_list_request(FIRST_RANGE_END), None, 0)
        self.check("first response list count", body.get("lists", {}).get("all_rooms", {}).get("count"), self.rooms)
        self.check("first response rooms", len(body.get("rooms", {})), min(FIRST_RANGE_END + 1, self.rooms))
        self.note(trips, "first response")
        return ms

    def load_list(self, token: str) -> tuple[float, str, int, set[str], list[int | None]]:
        """The SDK's loading sequence on a new connection: (ms in all, last pos, last range
        end, rooms seen, the D1 round trips of each request, None where not reported)."""
        t0 = time.perf_counter()
        _, body, trips = self.sliding_sync(token, room_list_request(FIRST_RANGE_END), None, 0)
        seen, all_trips = set(body.get("rooms", {})), [trips]
        count = body.get("lists", {}).get("all_rooms", {}).get("count", 0)
        fetched, end = 0, FIRST_RANGE_END
        # Growing mode: [0, fetched + batch - 1], capped by the list's count, until the range
        # reaches the end of the list (matrix-sdk sliding_sync/list/request_generator.rs).
        while count > 0 and len(all_trips) <= count // GROWING_BATCH + 2:
            end = min(fetched + GROWING_BATCH, count) - 1
            _, body, trips = self.sliding_sync(token, room_list_request(end), body["pos"], 0)
            seen |= set(body.get("rooms", {}))
            all_trips.append(trips)
            count = body.get("lists", {}).get("all_rooms", {}).get("count", 0)
            if end >= count - 1:
                break
            fetched = end + 1
        return (time.perf_counter() - t0) * 1000, body["pos"], end, seen, all_trips

    def full_list(self) -> float:
        ms, _, _, seen, trips = self.load_list(self.b_token)
        self.check("full list rooms seen", len(seen), self.rooms)
        self.requests_per_full_list[self.rooms] = len(trips)
        for t in trips:
            self.note(t, "full list")
        return ms

    def delivery(self) -> float | None:
        if self.delivery_pos is None or self.delivery_end < self.rooms - 1:
            # Device 2's connection, loaded as the SDK loads it; then it long-polls.
            _, self.delivery_pos, self.delivery_end, _, _ = self.load_list(self.b2_token)
        text = f"ss bench {uuid.uuid4().hex}"
        got: dict = {}

        def poll(pos: str) -> tuple[dict, str]:
            _, body, trips = self.sliding_sync(self.b2_token, room_list_request(self.delivery_end), pos, LONG_POLL_MS)
            got["trips"] = trips
            return body, body["pos"]

        def arrived(body: dict) -> bool:
            evs = body.get("rooms", {}).get(self.shared, {}).get("timeline", [])
            return any(e.get("content", {}).get("body") == text for e in evs)

        def send() -> None:
            self.call("PUT", f"{CLIENT_V3}/rooms/{self.shared}/send/m.room.message/{uuid.uuid4().hex}", self.a_token,
                      json={"msgtype": "m.text", "body": text})

        ms, self.delivery_pos = timed_arrival(poll, self.delivery_pos, arrived, send, SAMPLE_DEADLINE)
        if ms is not None:
            self.note(got.get("trips"), "delivery")
        return ms

    def note(self, trips: int | None, metric: str) -> None:
        if trips is not None and self.recording:
            self.trips.setdefault((self.rooms, metric), []).append(trips)

    recording = False

    def round(self, with_full_list: bool) -> dict[str, float | None]:
        out: dict[str, float | None] = {"first response": self.first_response()}
        if with_full_list:
            out["full list"] = self.full_list()
        out["delivery"] = self.delivery()
        return out

    def record(self, out: dict[str, float | None]) -> None:
        for metric, ms in out.items():
            xs = self.samples.setdefault((self.rooms, metric), [])
            if ms is not None:
                xs.append(ms)
            else:
                self.problems.append(f"{self.rooms} rooms, {metric}: no response within {SAMPLE_DEADLINE} s")


def run_phase(servers: list[Server], n: int, args: argparse.Namespace) -> None:
    live = [s for s in servers if s.error is None]
    if not live:
        return
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(live)) as pool:
        list(pool.map(lambda s: s.grow(n, args.threads), live))
    print(f"{n} rooms: set up in {time.monotonic() - t0:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    for i in range(WARM_UP_ROUNDS + args.samples):
        order = live if i % 2 == 0 else live[::-1]
        for s in order:
            if s.error is not None:
                continue
            counted = i >= WARM_UP_ROUNDS
            s.recording = counted
            try:
                t = time.perf_counter()
                # The full list (seconds on a big account) is warmed up once, not every warm-up round.
                out = s.round(with_full_list=i == 0 or WARM_UP_ROUNDS <= i < WARM_UP_ROUNDS + args.full_samples)
                if i == 0:
                    s.cold[n] = out["first response"] or float("nan")
                if counted:
                    s.record(out)
                elif i == 0:
                    print(f"  {s.name}: first round {1000 * (time.perf_counter() - t):.0f} ms", flush=True)
            except (Unsupported, requests.RequestException) as e:
                s.error = f"{n} rooms: {e}"
                print(f"  {s.name}: {s.error}", flush=True)
    print(f"{n} rooms: measured in {time.monotonic() - t0:.0f} s", flush=True)


def fmt(xs: list[float]) -> str:
    return f"{pct(xs, 50):.1f} / {pct(xs, 95):.1f}" if xs else "n/a"


def trips_text(ts: list[int] | None) -> str:
    if not ts:
        return "-"
    lo, hi = min(ts), max(ts)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def report(servers: list[Server], sizes: list[int], load: tuple[float, float]) -> None:
    stratus = next((s for s in servers if s.name == "Stratus"), None)
    synapse = next((s for s in servers if s.name == "Synapse"), None)
    print(f"\nload average (1 min) at start {load[0]:.2f}, at end {load[1]:.2f}; p50 / p95 in ms\n")
    print(f"{'rooms':>6}  {'metric':<16}{'Stratus':>18}{'Synapse':>18}{'ratio p50 / p95':>18}{'D1 trips/req':>14}")
    out: dict = {"load_start": load[0], "load_end": load[1], "results": {}}
    for n in sizes:
        for metric in METRICS:
            a = stratus.samples.get((n, metric), []) if stratus else []
            b = synapse.samples.get((n, metric), []) if synapse else []
            ratio = f"{pct(a, 50) / pct(b, 50):.2f} / {pct(a, 95) / pct(b, 95):.2f}" if a and b else "-"
            label = metric
            reqs = (stratus or synapse).requests_per_full_list.get(n) if metric == "full list" and (stratus or synapse) else None
            if reqs:
                label = f"full list ({reqs} req)"
            trips = trips_text(stratus.trips.get((n, metric)) if stratus else None)
            print(f"{n:>6}  {label:<16}{fmt(a):>18}{fmt(b):>18}{ratio:>18}{trips:>14}")
            out["results"][f"{n} {metric}"] = {
                s.name: {"n": len(xs), "p50_ms": pct(xs, 50) if xs else None, "p95_ms": pct(xs, 95) if xs else None,
                         "mean_ms": statistics.fmean(xs) if xs else None,
                         "d1_round_trips": s.trips.get((n, metric))}
                for s, xs in ((stratus, a), (synapse, b)) if s is not None
            }
    for s in servers:
        cold = ", ".join(f"{n}: {ms:.0f} ms" for n, ms in s.cold.items())
        print(f"\n{s.name}: first request after each set-up (not counted) {cold or '-'}")
        if s.error:
            print(f"{s.name}: stopped: {s.error}")
        for p in s.problems:
            print(f"{s.name}: {p}")
    out["errors"] = {s.name: s.error for s in servers if s.error}
    out["problems"] = {s.name: s.problems for s in servers if s.problems}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", default="10,100,1000", help="account sizes, comma-separated, measured in increasing order")
    ap.add_argument("--samples", type=int, default=30, help="counted rounds per size (first response and delivery)")
    ap.add_argument("--full-samples", type=int, default=10, help="of those rounds, how many also load the full list")
    ap.add_argument("--threads", type=int, default=4, help="concurrent /createRoom requests per server while setting up")
    ap.add_argument("--skip-synapse", action="store_true")
    ap.add_argument("--skip-stratus", action="store_true")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="a Worker var for Stratus, e.g. DEV_SIMULATED_LATENCY_MS=5 (repeatable)")
    args = ap.parse_args()
    sizes = sorted({int(x) for x in args.rooms.split(",") if x})
    assert sizes and sizes[0] >= 1, "--rooms: sizes of at least 1 (the shared room is one)"
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    stops: list = []
    servers: list[Server] = []
    try:
        if not args.skip_stratus:
            base, stop = start_stratus(REPO, dict(v.split("=", 1) for v in args.var))
            stops.append(stop)
            servers.append(Server("Stratus", base))
        if not args.skip_synapse:
            base, stop = start_synapse()
            stops.append(stop)
            servers.append(Server("Synapse", base))
        print(f"{', '.join(f'{s.name} at {s.base}' for s in servers)}; {args.samples} rounds per size "
              f"({args.full_samples} with the full list), load {load_start:.1f}", flush=True)
        for n in sizes:
            run_phase(servers, n, args)
    finally:
        for stop in stops:
            try:
                stop()
            except Exception:  # noqa: BLE001 - the others still stop
                pass
    report(servers, sizes, (load_start, os.getloadavg()[0]))
    print(f"whole run {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
