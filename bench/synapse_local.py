"""A throwaway local Synapse for side-by-side runs (bench/sync_latency.py) and for the
real-client E2EE tests against a reference server (tests/e2ee/against_synapse.py).

Synapse is installed from PyPI into bench/.synapse-venv on first use (or taken from
$SYNAPSE_PYTHON), configured on a free loopback port with rate limits out of the way, and
stopped (its directory removed) by the returned `stop`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench" / ".synapse-venv"

_BIG = {"per_second": 100000, "burst_count": 100000}
# Tests and benchmarks hammer the server from one address: no rate limits.
NO_RATE_LIMITS = {
    "rc_message": _BIG, "rc_registration": _BIG, "rc_login": {"address": _BIG, "account": _BIG, "failed_attempts": _BIG},
    "rc_joins": {"local": _BIG, "remote": _BIG}, "rc_invites": {"per_room": _BIG, "per_user": _BIG, "per_issuer": _BIG},
    "rc_key_requests": _BIG,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synapse_python() -> Path:
    if os.environ.get("SYNAPSE_PYTHON"):
        return Path(os.environ["SYNAPSE_PYTHON"])
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(py), "-c", "import synapse"], capture_output=True).returncode != 0:
        print("installing matrix-synapse into", VENV, flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "matrix-synapse"], check=True)
    return py


def start_synapse(overrides: dict, prefix: str = "synapse-", keep: bool = False) -> tuple[str, Path, Callable[[], None]]:
    """Starts Synapse; returns (base URL, its directory, stop). `overrides` are merged into
    the generated homeserver.yaml (after the loopback listener and NO_RATE_LIMITS)."""
    py = synapse_python()
    d = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = d / "homeserver.yaml"
    subprocess.run([str(py), "-m", "synapse.app.homeserver", "--server-name", f"localhost:{port}", "--config-path", str(cfg),
                    "--data-directory", str(d), "--generate-config", "--report-stats=no"], check=True, cwd=d, capture_output=True)
    conf = {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        **NO_RATE_LIMITS,
        "trusted_key_servers": [], "suppress_key_server_warning": True, "federation_domain_whitelist": [],
        **overrides,
    }
    # Edit the generated YAML with Synapse's own Python (it has PyYAML).
    edit = ("import json, sys, yaml; p = sys.argv[1]; c = yaml.safe_load(open(p)); c.update(json.loads(sys.argv[2])); "
            "open(p, 'w').write(yaml.safe_dump(c))")
    subprocess.run([str(py), "-c", edit, str(cfg), json.dumps(conf)], check=True)
    # Unbuffered log file, so the access log is complete when a run ends.
    for log_cfg in d.glob("*.log.config"):
        log_cfg.write_text(log_cfg.read_text().replace("handlers: [buffer]", "handlers: [file]"))
    out = open(d / "synapse.out", "wb")
    proc = subprocess.Popen([str(py), "-m", "synapse.app.homeserver", "--config-path", str(cfg)], cwd=d,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop() -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except Exception:
            pass
        if not keep:
            shutil.rmtree(d, ignore_errors=True)

    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_matrix/client/versions", timeout=2):
                return base, d, stop
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (d / "synapse.out").read_text(errors="replace")[-3000:]
            stop()
            raise SystemExit(f"synapse did not start:\n{tail}")
        time.sleep(0.5)
