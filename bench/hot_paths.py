#!/usr/bin/env python3
"""Issue #16's table in one command: the hot client paths of Stratus beside a local Synapse,
the floor (a do-nothing Worker under the same `wrangler dev`) and a simulated-production
Stratus (every D1 round trip and Durable Object call delayed 5 ms).

    make build && .venv/bin/python bench/hot_paths.py            # about 5 minutes
    STRATUS_RUNTIME=direct .venv/bin/python bench/hot_paths.py   # Stratus and the floor without wrangler dev's proxy (bench/direct.mjs)
    .venv/bin/python bench/hot_paths.py --samples 100 --messages 50
    .venv/bin/python bench/hot_paths.py --repo ../other-checkout     # another build, e.g. "before"

Servers, all on 127.0.0.1, each with a fresh state directory:
- Stratus: this checkout's build/ under `wrangler dev` (the integration harness's
  `start_worker`), and a second one with `DEV_SIMULATED_LATENCY_MS=5` (`--sim-ms`);
- Synapse 1.163 on SQLite (bench/synapse_local.py; installed into bench/.synapse-venv);
- the floor: bench/floor/, a Worker whose `fetch` returns `{}`, under the same wrangler.

Rows (p50 in ms unless said):
- message delivery: B long-polls `/sync`, A sends; send start → B's `/sync` returns it
  (bench/sync_latency.py's `measure`); its D1 trips are those of the woken long poll (both
  passes: the idle one, then the one the wake-up starts), from `woken_sync_trips`;
- 20 senders, events/s: 20 users each send `--per-sender` messages into ONE room at once
  (bench/send_throughput.py's `events_per_second(base, senders, per_sender)` when that module
  exists, else the minimal one here); higher is better;
- incremental sync (`timeout=0`, nothing new, `set_presence=offline`), `/messages?dir=b&limit=50`
  over 60 messages, `whoami`, media upload of 1 MiB (fresh random bytes each time), `send`:
  samples interleaved across the servers (one request to each in turn), so load from elsewhere
  falls on all alike.

Columns: Stratus, Synapse, ratio (Stratus/Synapse; for events/s Synapse/Stratus, so above 1
is always Stratus being slower), D1 round trips per request (`X-Stratus-D1-Round-Trips`,
where the response carries it), the floor (the same request — method, headers, body size —
to the do-nothing Worker), Stratus minus the floor (what is ours to cut), and the simulated
production figure. Ends with one JSON line of everything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from request_latency import start_stratus  # noqa: E402
from synapse_local import NO_RATE_LIMITS, start_synapse as start_synapse_at  # noqa: E402
from sync_latency import measure as delivery, pair_in_room, pct, register  # noqa: E402

MIB = 1024 * 1024
ROWS = ["message delivery", "20 senders, events/s", "incremental sync", "messages", "whoami", "media upload 1 MiB", "send"]


def start_synapse() -> tuple[str, callable]:
    """A local Synapse with registration open and no rate limits, also none on joins per room
    (20 senders join one room at once)."""
    big = NO_RATE_LIMITS["rc_message"]
    base, _, stop = start_synapse_at({"enable_registration": True, "enable_registration_without_verification": True,
                                      "rc_joins_per_room": big}, prefix="bench-synapse-")
    return base, stop


def join(s: requests.Session, base: str, room: str, h: dict) -> None:
    """Joins, waiting out a 429 if the server still limits joins."""
    for _ in range(20):
        r = s.post(f"{base}/_matrix/client/v3/join/{room}", json={}, headers=h, timeout=60)
        if r.status_code != 429:
            r.raise_for_status()
            return
        time.sleep(r.json().get("retry_after_ms", 1000) / 1000)
    r.raise_for_status()


def start_floor() -> tuple[str, callable]:
    """The do-nothing Worker (bench/floor/) under this checkout's wrangler."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    import conftest  # noqa: E402  (free_port, the wrangler path and the child environment)

    port = conftest.free_port()
    state = Path(tempfile.mkdtemp(prefix="stratus-floor-"))
    # The harness's runner: with STRATUS_RUNTIME=direct, bench/direct.mjs (no dev proxy), as for Stratus.
    cmd = [*conftest.runner(), "--config", str(REPO / "bench" / "floor" / "wrangler.toml"), "--ip", "127.0.0.1",
           "--port", str(port), "--inspector-port", str(conftest.free_port()), "--persist-to", str(state / "persist"),
           "--show-interactive-dev-session=false"]
    log = open(state / "wrangler.log", "ab")
    proc = subprocess.Popen(cmd, cwd=REPO / "bench" / "floor", env=conftest._child_env(state), stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        log.close()

    end = time.monotonic() + 90
    while time.monotonic() < end:
        try:
            if requests.get(base, timeout=5).status_code == 200:
                return base, stop
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop()
    raise SystemExit(f"the floor Worker did not start; see {state / 'wrangler.log'}")


class Server:
    """One server with two users in a room with 60 messages of history."""

    def __init__(self, name: str, base: str):
        self.name, self.base = name, base
        self.s = requests.Session()
        a = register(base, f"hota{uuid.uuid4().hex[:8]}")
        b = register(base, f"hotb{uuid.uuid4().hex[:8]}")
        self.ha = {"Authorization": f"Bearer {a['access_token']}"}
        self.hb = {"Authorization": f"Bearer {b['access_token']}"}
        self.room = self.s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=self.ha, timeout=30).json()["room_id"]
        self.s.post(f"{base}/_matrix/client/v3/join/{self.room}", json={}, headers=self.hb, timeout=30).raise_for_status()
        for i in range(60):
            self.send(f"history {i}").raise_for_status()
        self.since = self.sync(None).json()["next_batch"]
        self.since = self.sync(self.since).json()["next_batch"]
        self.samples: dict[str, list[float]] = {}
        self.trips: dict[str, list[int]] = {}

    def send(self, body: str) -> requests.Response:
        return self.s.put(f"{self.base}/_matrix/client/v3/rooms/{self.room}/send/m.room.message/{uuid.uuid4().hex}",
                          json={"msgtype": "m.text", "body": body}, headers=self.ha, timeout=30)

    def sync(self, since: str | None) -> requests.Response:
        params = {"timeout": "0", "set_presence": "offline"}
        if since:
            params["since"] = since
        return self.s.get(f"{self.base}/_matrix/client/v3/sync", params=params, headers=self.hb, timeout=60)

    def timed(self, what: str, fn) -> None:
        t0 = time.perf_counter()
        r = fn()
        ms = (time.perf_counter() - t0) * 1000
        r.raise_for_status()
        self.samples.setdefault(what, []).append(ms)
        rt = r.headers.get("X-Stratus-D1-Round-Trips")
        if rt is not None:  # one value (a repeated header would read "n, n")
            self.trips.setdefault(what, []).append(int(rt.split(",")[0]))

    def one_round(self, blob: bytes) -> None:
        b = self.base
        # B's sync sees the previous round's message once, then is idle: measure the idle one.
        self.since = self.sync(self.since).json()["next_batch"]
        self.timed("incremental sync", lambda: self.sync(self.since))
        self.timed("messages", lambda: self.s.get(f"{b}/_matrix/client/v3/rooms/{self.room}/messages", params={"dir": "b", "limit": "50"},
                                                  headers=self.hb, timeout=60))
        self.timed("whoami", lambda: self.s.get(f"{b}/_matrix/client/v3/account/whoami", headers=self.hb, timeout=30))
        self.timed("media upload 1 MiB", lambda: self.s.post(f"{b}/_matrix/media/v3/upload", params={"filename": "bench.bin"}, data=blob,
                                                             headers={**self.ha, "Content-Type": "application/octet-stream"}, timeout=60))
        self.timed("send", lambda: self.send("measured"))


class Floor:
    """The same requests, shaped alike, to the do-nothing Worker."""

    def __init__(self, base: str):
        self.base = base
        self.s = requests.Session()
        self.samples: dict[str, list[float]] = {}
        self.h = {"Authorization": "Bearer floor"}

    def timed(self, what: str, fn) -> None:
        t0 = time.perf_counter()
        fn().raise_for_status()
        self.samples.setdefault(what, []).append((time.perf_counter() - t0) * 1000)

    def one_round(self, blob: bytes) -> None:
        b = self.base
        for what in ["incremental sync", "messages", "whoami"]:
            self.timed(what, lambda: self.s.get(f"{b}/_matrix/client/v3/x", params={"timeout": "0"}, headers=self.h, timeout=30))
        self.timed("media upload 1 MiB", lambda: self.s.post(f"{b}/_matrix/media/v3/upload", data=blob,
                                                             headers={**self.h, "Content-Type": "application/octet-stream"}, timeout=60))
        self.timed("send", lambda: self.s.put(f"{b}/_matrix/client/v3/rooms/x/send/m.room.message/{uuid.uuid4().hex}",
                                              json={"msgtype": "m.text", "body": "measured"}, headers=self.h, timeout=30))


def minimal_events_per_second(base: str, senders: int, per_sender: int) -> float:
    """`senders` users, joined to one room, each send `per_sender` messages at once, one after
    another; events/s over the wall time from the first request to the last answer."""
    s = requests.Session()
    users = [register(base, f"thr{uuid.uuid4().hex[:8]}") for _ in range(senders)]
    hs = [{"Authorization": f"Bearer {u['access_token']}"} for u in users]
    room = s.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat"}, headers=hs[0], timeout=30).json()["room_id"]
    for h in hs[1:]:
        join(s, base, room, h)
    errors: list[str] = []
    go = threading.Barrier(senders + 1)

    def run(h: dict) -> None:
        sess = requests.Session()
        go.wait()
        for i in range(per_sender):
            try:
                r = sess.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                             json={"msgtype": "m.text", "body": f"throughput {i}"}, headers=h, timeout=60)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:100]}")
            except requests.RequestException as e:
                errors.append(repr(e)[:100])

    threads = [threading.Thread(target=run, args=(h,), daemon=True) for h in hs]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(300)
    wall = time.perf_counter() - t0
    if errors:
        print(f"  {base}: {len(errors)} failed sends, e.g. {errors[0]}", flush=True)
    return (senders * per_sender - len(errors)) / wall


def events_per_second(base: str, senders: int, per_sender: int) -> float:
    try:
        import send_throughput  # noqa: E402  (the send path's own bench, when present)

        fn = getattr(send_throughput, "events_per_second", None)
        if fn is not None:
            return fn(base, senders, per_sender)
    except ImportError:
        pass
    return minimal_events_per_second(base, senders, per_sender)


def woken_sync_trips(base: str, n: int = 5) -> list[int]:
    """D1 round trips of `n` long polls each woken by one new message (the response's
    `X-Stratus-D1-Round-Trips`)."""
    s, ha, hb, room, sb, since = pair_in_room(base, "trip")
    out: list[int] = []
    for _ in range(n):
        got: dict = {}

        def poll() -> None:
            got["r"] = sb.get(f"{base}/_matrix/client/v3/sync", params={"timeout": "30000", "since": since, "set_presence": "offline"},
                              headers=hb, timeout=60)

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.3)
        s.put(f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", json={"msgtype": "m.text", "body": "t"},
              headers=ha, timeout=30).raise_for_status()
        t.join(60)
        r = got["r"]
        since = r.json()["next_batch"]
        rt = r.headers.get("X-Stratus-D1-Round-Trips")
        if rt is not None:
            out.append(int(rt.split(",")[0]))
    return out


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=50, help="interleaved samples per request row")
    ap.add_argument("--messages", type=int, default=30, help="message-delivery samples")
    ap.add_argument("--senders", type=int, default=20)
    ap.add_argument("--per-sender", type=int, default=10)
    ap.add_argument("--sim-ms", type=int, default=5, help="DEV_SIMULATED_LATENCY_MS of the simulated-production Stratus (0: skip it)")
    ap.add_argument("--no-synapse", action="store_true")
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose build/ to measure (default: this one), e.g. a before/after")
    args = ap.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = load()
    stops = []
    servers: dict[str, Server] = {}
    try:
        print("starting Stratus, the floor" + ("" if args.no_synapse else ", Synapse") + (f", Stratus +{args.sim_ms} ms/hop" if args.sim_ms else ""), flush=True)
        repo = args.repo.resolve()
        base, stop = start_stratus(repo)
        stops.append(stop)
        servers["stratus"] = Server("Stratus", base)
        if args.sim_ms:
            base, stop = start_stratus(repo, {"DEV_SIMULATED_LATENCY_MS": str(args.sim_ms)})
            stops.append(stop)
            servers["sim"] = Server(f"Stratus +{args.sim_ms} ms/hop", base)
        if not args.no_synapse:
            base, stop = start_synapse()
            stops.append(stop)
            servers["synapse"] = Server("Synapse", base)
        fbase, stop = start_floor()
        stops.append(stop)
        floor = Floor(fbase)

        everyone = [*servers.values(), floor]
        for t in everyone:  # warm-up, not counted
            for _ in range(3):
                t.one_round(os.urandom(MIB))
            t.samples.clear()
            if isinstance(t, Server):
                t.trips.clear()
        print(f"{args.samples} interleaved rounds", flush=True)
        for _ in range(args.samples):
            for t in everyone:
                t.one_round(os.urandom(MIB))

        for key, srv in servers.items():
            print(f"delivery and throughput: {srv.name}", flush=True)
            try:
                srv.samples["message delivery"] = delivery(srv.base, args.messages)
                if srv.name != "Synapse":
                    srv.trips["message delivery"] = woken_sync_trips(srv.base)
                srv.samples["20 senders, events/s"] = [events_per_second(srv.base, args.senders, args.per_sender)]
            except Exception as e:  # one server's failure leaves the rest of the table
                print(f"  {srv.name}: {e!r}", flush=True)
    finally:
        for s in reversed(stops):
            s()

    def p50(srv: Server | Floor | None, row: str) -> float | None:
        if srv is None or row not in srv.samples or not srv.samples[row]:
            return None
        return pct(srv.samples[row], 50)

    st, sy, sim = servers.get("stratus"), servers.get("synapse"), servers.get("sim")
    title = f"p50 ms ({args.samples} interleaved samples; delivery {args.messages}; {args.senders}x{args.per_sender} sends)"
    head = ["", "Stratus", "Synapse", "ratio", "D1 trips", "floor", "Stratus-floor", f"+{args.sim_ms} ms/hop"]
    print(f"\n{started}, {platform.node()} ({os.cpu_count()} CPUs), load {load_before} before / {load()} after, build of {args.repo.resolve()}\n")
    print(f"| {title} | " + " | ".join(head[1:]) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    out: dict = {"date": started, "load": [load_before, load()], "rows": {}}
    for row in ROWS:
        a, b, s = p50(st, row), p50(sy, row), p50(sim, row)
        f = p50(floor, row)
        if row == "20 senders, events/s":
            ratio = b / a if a and b else None
        else:
            ratio = a / b if a and b else None
        trips = st.trips.get(row) if st else None
        rt = f"{statistics.median(trips):.0f}" if trips else "-"
        own = a - f if a is not None and f is not None else None
        print(f"| {row} | {fmt(a)} | {fmt(b)} | {fmt(ratio, 2)} | {rt} | {fmt(f)} | {fmt(own)} | {fmt(s)} |")
        out["rows"][row] = {"stratus": a, "synapse": b, "ratio": ratio, "d1_round_trips": rt, "floor": f, "stratus_minus_floor": own, "sim": s}
    print("\nratio: Stratus/Synapse (for events/s Synapse/Stratus): above 1 means Stratus is slower. floor: the same request to a")
    print("do-nothing Worker under the same wrangler dev. D1 trips: X-Stratus-D1-Round-Trips (median), where the response has it.")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
