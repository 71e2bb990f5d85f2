#!/usr/bin/env python3
"""Cross-server message-delivery latency: user B on server Y long-polls /sync in a room of
server X; user A on X sends; the time from the start of A's send request to B's /sync
returning the event. p50 and p95 over N samples, for each pair:

    Stratus→Synapse, Synapse→Stratus, Stratus→Stratus, Synapse→Synapse (the baseline)

All on loopback, federation over TLS with one self-signed CA made for the run (the
harness of tests/integration/federation: Synapse from bench/synapse_local.py, Stratus from
`wrangler dev` serving build/ with --local-protocol https and NODE_EXTRA_CA_CERTS).

    .venv/bin/python bench/federation_latency.py [--samples 50] [--pairs synapse-synapse2,stratus-synapse]
        [--build DIR]     # serve another build/ (e.g. a copy of the one before a change) instead of ours
        [--compare DIR]   # also the Stratus legs of the build in DIR ("stratus_old"), side by side
        [--logs DIR]      # keep each Stratus server's wrangler log (DIR/<label>.log)
        [--runtime wrangler|direct|both]  # serve Stratus under `wrangler dev` (default), under
                          # bench/direct.mjs (the same workerd and local bindings without wrangler
                          # dev's proxy, ~3 ms a request here, which a deployed Worker does not
                          # have), or both side by side ("stratus_direct" legs)
        [--sim-ms N]      # every Stratus D1 round trip and Durable Object call delayed N ms
                          # (DEV_SIMULATED_LATENCY_MS): a preview of production, where D1 is
                          # not in the Worker's process

The samples go round-robin over the pairs (one sample of each pair in turn), so that the load
of a shared machine falls on all of them alike; `--compare` thereby measures two builds in
one run, each with the Synapse baseline beside it.

A pair whose room cannot be joined across the servers (Stratus before federation works)
is reported as n/a with the reason, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "federation"))

import matrix_helpers  # noqa: E402
from fed_helpers import HS, create_room, join, register_user, rpath, wait_for_membership  # noqa: E402
from matrix_helpers import CLIENT_V3, call  # noqa: E402
from synapse_local import Cert, FedSynapse, free_port, make_cert  # noqa: E402
from sync_latency import pct, timed_arrival  # noqa: E402  (one percentile and delivery sample for the benchmarks)

ALL_PAIRS = ["stratus-synapse", "synapse-stratus", "stratus-stratus2", "synapse-synapse2"]
SAMPLE_DEADLINE = 20.0
BUILD_DIR: Path | None = None
COMPARE_DIR: Path | None = None
LOGS_DIR: Path | None = None
OLD = "_old"  # label suffix of the servers of the --compare build
DIRECT = "_direct"  # label suffix of the servers run by bench/direct.mjs (--runtime both)
RUNTIME = "wrangler"
SIM_MS = 0


def trust(cert: Cert, d: Path) -> None:
    """This process trusts the run's CA (on top of the system bundle that requests uses)."""
    system = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    bundle = d / "bundle.pem"
    bundle.write_bytes((Path(system).read_bytes() + b"\n" if system and Path(system).is_file() else b"") + cert.ca.read_bytes())
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = str(bundle)
    matrix_helpers._session.verify = str(bundle)


def integration_harness():
    """tests/integration/conftest.py (starts wrangler dev from build/), loaded by path: the
    federation folder on sys.path has a conftest.py of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("stratus_integration_conftest", REPO / "tests" / "integration" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up there)
    spec.loader.exec_module(mod)
    return mod


def start(label: str, cert: Cert, stops: list) -> HS:
    if label.startswith("synapse"):
        s = FedSynapse(cert, prefix=f"bench-{label}-")
        stops.append(s.stop)
        s.start_process()
        key = next(s.dir.glob("*.signing.key")).read_text().strip()
        return HS("synapse", label, s.server_name, s.base, s.fed_base, s.shared_secret, key, s.stop_process, s.start_process,
                  s.log_tail)
    import base64

    conftest = sys.modules.get("stratus_integration_conftest") or integration_harness()
    build = COMPARE_DIR if label.endswith(OLD) else BUILD_DIR
    if build is not None:
        # The harness serves one copy of build/ per process; this one is served instead.
        main = Path(conftest.tomllib.loads(conftest.WRANGLER_TOML.read_text())["main"])
        conftest._BUILD_SNAPSHOT = build.resolve() / main.relative_to(main.parts[0])
    else:
        conftest._BUILD_SNAPSHOT = getattr(conftest, "_bench_own_snapshot", None)
    port = free_port()
    name = f"127.0.0.1:{port}"
    key = f"ed25519 bench_{label} {base64.b64encode(os.urandom(32)).decode().rstrip('=')}"
    direct = RUNTIME == "direct" or label.endswith(DIRECT)
    os.environ["STRATUS_RUNTIME"] = "direct" if direct else "wrangler"  # read by start_worker
    sim = {"DEV_SIMULATED_LATENCY_MS": str(SIM_MS)} if SIM_MS else {}
    server = conftest.start_worker(
        {"LOGIN_FAILURES_IP_MAX": "100000", "SERVER_NAME": name, "PUBLIC_BASEURL": f"https://{name}", "SIGNING_KEY": key, **sim},
        {"NODE_EXTRA_CA_CERTS": str(cert.ca)},
        https={"key": str(cert.key), "cert": str(cert.cert), "ca": str(cert.ca)},
        port=port,
    )
    os.environ.pop("STRATUS_RUNTIME", None)
    if build is None:
        conftest._bench_own_snapshot = conftest._BUILD_SNAPSHOT

    def stop() -> None:
        if LOGS_DIR is not None:  # the server's wrangler log, kept for reading its timings
            LOGS_DIR.mkdir(parents=True, exist_ok=True)
            (LOGS_DIR / f"{label}.log").write_bytes(server.log_path.read_bytes())
        server.stop()

    stops.append(stop)
    return HS("stratus", label, name, server.base, server.base, server.shared_secret or "", key, server.stop_process,
              server.start_process, server.log_tail)


class Pair:
    """B on server y in a room of A on server x, B's sync position, and the samples so far."""

    def __init__(self, x: HS, y: HS):
        self.x, self.y = x, y
        self.a, self.b = register_user(x, "bencha"), register_user(y, "benchb")
        self.room = create_room(self.a)
        join(self.b, self.room, via=[x.server_name])
        wait_for_membership(self.a, self.room, self.b.user_id, "join")
        self.since = call(y.base, "GET", f"{CLIENT_V3}/sync", token=self.b.token, params={"timeout": "0"}).json()["next_batch"]
        self.latencies: list[float] = []
        self.lost = 0

    def sample(self, i: int) -> None:
        room = self.room
        text = f"bench {uuid.uuid4().hex[:8]} {i}"

        def arrived(body: dict) -> bool:
            evs = body.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])
            return any(e.get("content", {}).get("body") == text for e in evs)

        def send() -> None:
            call(self.x.base, "PUT", rpath(room, "send", "m.room.message", uuid.uuid4().hex), {"msgtype": "m.text", "body": text},
                 token=self.a.token).raise_for_status()

        ms, self.since = timed_delivery(self.y, self.b.token, self.since, arrived, send)
        if ms is None:
            self.lost += 1
        else:
            self.latencies.append(ms)


def timed_delivery(y: HS, token: str, since: str, arrived: Callable[[dict], bool], act: Callable[[], None]) -> tuple[float | None, str]:
    """One sample: a user of `y` long-polls /sync from `since` until a response satisfies
    `arrived`; the time from the start of `act()` (started once the poll is parked) to that
    response, in ms (None if it never came), and the next sync position."""

    def poll(cur: str) -> tuple[dict, str]:
        body = call(y.base, "GET", f"{CLIENT_V3}/sync", token=token,
                    params={"timeout": "10000", "since": cur, "set_presence": "offline"}).json()
        return body, body["next_batch"]

    return timed_arrival(poll, since, arrived, act, SAMPLE_DEADLINE)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--pairs", default=",".join(ALL_PAIRS), help=f"comma-separated, of {ALL_PAIRS}")
    ap.add_argument("--build", type=Path, help="serve this build directory (a copy of build/) instead of build/")
    ap.add_argument("--compare", type=Path, help="also measure the Stratus legs of this build directory, side by side")
    ap.add_argument("--logs", type=Path, help="copy each Stratus server's wrangler log into this directory at the end")
    ap.add_argument("--runtime", choices=["wrangler", "direct", "both"], default="wrangler",
                    help="serve Stratus under wrangler dev, under bench/direct.mjs (no dev proxy), or both side by side")
    ap.add_argument("--sim-ms", type=int, default=0, help="DEV_SIMULATED_LATENCY_MS of every Stratus server (0: none)")
    args = ap.parse_args()
    global BUILD_DIR, COMPARE_DIR, LOGS_DIR, RUNTIME, SIM_MS
    BUILD_DIR, COMPARE_DIR, LOGS_DIR, RUNTIME, SIM_MS = args.build, args.compare, args.logs, args.runtime, args.sim_ms
    if RUNTIME == "both" and COMPARE_DIR is not None:
        raise SystemExit("--runtime both and --compare: one at a time")
    pairs = [p.split("-") for p in args.pairs.split(",") if p]
    for p in pairs:
        assert "-".join(p) in ALL_PAIRS, f"unknown pair {'-'.join(p)}"
    if COMPARE_DIR is not None:
        old = lambda lbl: lbl + OLD if lbl.startswith("stratus") else lbl  # noqa: E731
        pairs += [[old(x), old(y)] for x, y in pairs if "stratus" in x + y]
    if RUNTIME == "both":
        dr = lambda lbl: lbl + DIRECT if lbl.startswith("stratus") else lbl  # noqa: E731
        pairs += [[dr(x), dr(y)] for x, y in pairs if "stratus" in x + y]
    d = Path(tempfile.mkdtemp(prefix="bench-fed-"))
    cert = make_cert(d)
    trust(cert, d)
    servers: dict[str, HS] = {}
    stops: list = []
    results: dict[str, dict] = {}
    ready: dict[str, Pair] = {}
    try:
        for x, y in pairs:
            name = f"{x}→{y}"
            try:
                for label in (x, y):
                    if label not in servers:
                        t0 = time.monotonic()
                        servers[label] = start(label, cert, stops)
                        print(f"{label} at {servers[label].fed_base} (client {servers[label].base}) in {time.monotonic() - t0:.1f} s",
                              flush=True)
                ready[name] = Pair(servers[x], servers[y])
            except (Exception, SystemExit) as e:  # noqa: BLE001 - reported as n/a
                results[name] = {"n": 0, "error": str(e).splitlines()[0][:400] if str(e) else type(e).__name__}
            except BaseException as e:  # pytest.fail from the harness
                if isinstance(e, KeyboardInterrupt):
                    raise
                results[name] = {"n": 0, "error": str(e).splitlines()[0][:400]}
        print(f"{', '.join(ready)}: {args.samples} samples each, round-robin", flush=True)
        for i in range(args.samples):
            for name, pair in ready.items():
                if name in results:
                    continue
                try:
                    pair.sample(i)
                except Exception as e:  # noqa: BLE001 - reported as n/a
                    results[name] = {"n": 0, "error": str(e).splitlines()[0][:400] if str(e) else type(e).__name__}
        for name, pair in ready.items():
            if name not in results:
                xs = pair.latencies
                results[name] = {"n": len(xs), "lost": pair.lost, "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95),
                                 "mean_ms": statistics.fmean(xs) if xs else float("nan")}
    finally:
        stop_all(stops)
    report([f"{x}→{y}" for x, y in pairs], results)


def stop_all(stops: list) -> None:
    """Stops the servers started for the run, last first, whatever fails."""
    for s in reversed(stops):
        try:
            s()
        except BaseException:
            pass


def report(names: list[str], results: dict[str, dict]) -> None:
    """The table of the pairs' figures (or why a pair has none), then the results as JSON."""
    print()
    print(f"{'pair':<26}{'n':>5}{'lost':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for name in names:
        r = results[name]
        if "error" in r:
            print(f"{name:<26}  n/a: {r['error']}")
        else:
            print(f"{name:<26}{r['n']:>5}{r['lost']:>6}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['mean_ms']:>10.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
