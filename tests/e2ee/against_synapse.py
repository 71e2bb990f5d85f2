"""Run the E2EE client tests against a local Synapse: the reference the Stratus run compares to.

    .venv/bin/python tests/e2ee/against_synapse.py [test files...] [pytest args...]

Installs matrix-synapse into bench/.synapse-venv on first use (the sync benchmark's venv;
SYNAPSE_PYTHON=/path/to/python uses another), generates a config in a temporary directory
(SQLite, no TLS, 127.0.0.1 on a free port, a registration shared secret, rate limits
lifted, MSC3814 dehydrated devices on), runs the given test files (those arguments that name
tests under tests/, with or without a ::node suffix; by default
tests/integration/test_e2ee_clients.py) with STRATUS_URL and
STRATUS_SHARED_SECRET pointing at it, prints which client endpoints the clients called
(from Synapse's access log), and stops Synapse. Exits with pytest's status.
"""

from __future__ import annotations

import collections
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "bench" / ".synapse-venv"


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


def endpoint_summary(log: Path) -> str:
    """Client-API calls by user agent (nio: aiohttp, js-sdk: node), IDs folded."""
    counts: collections.Counter = collections.Counter()
    pat = re.compile(r'"(GET|POST|PUT|DELETE) (\S+) HTTP/1.1" "([^"]*)"')
    for line in log.read_text(errors="replace").splitlines():
        m = pat.search(line)
        if not m or "/_matrix/" not in m.group(2):
            continue
        method, path, agent = m.groups()
        path = path.split("?")[0]
        path = re.sub(r"(%21|!)[^/]+", "!ROOM", path)
        path = re.sub(r"(%40|@)[^/]+", "@USER", path)
        path = re.sub(r"/(event)/[^/]+", r"/\1/EVENT", path)
        path = re.sub(r"/(sendToDevice/[^/]+|send/[^/]+)/[^/]+", r"/\1/TXN", path)
        who = "js-sdk" if agent.startswith("node") else "nio" if "aiohttp" in agent else "test"
        counts[(who, method, path)] += 1
    return "\n".join(f"  {who:6} {n:4}  {method} {path}" for (who, method, path), n in sorted(counts.items()))


def main() -> int:
    py = synapse_python()
    d = Path(tempfile.mkdtemp(prefix="e2ee-synapse-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    secret = secrets.token_hex(16)
    cfg = d / "homeserver.yaml"
    subprocess.run([str(py), "-m", "synapse.app.homeserver", "--server-name", f"localhost:{port}", "--config-path", str(cfg),
                    "--data-directory", str(d), "--generate-config", "--report-stats=no"], check=True, cwd=d, capture_output=True)
    big = {"per_second": 100000, "burst_count": 100000}
    overrides = {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        "registration_shared_secret": secret,
        "rc_message": big, "rc_registration": big, "rc_login": {"address": big, "account": big, "failed_attempts": big},
        "rc_joins": {"local": big, "remote": big}, "rc_invites": {"per_room": big, "per_user": big, "per_issuer": big},
        "rc_key_requests": big,
        "trusted_key_servers": [], "suppress_key_server_warning": True, "federation_domain_whitelist": [],
        # Dehydrated devices (the js-sdk's startDehydration) are behind a flag in Synapse.
        "experimental_features": {"msc3814_enabled": True},
    }
    edit = ("import json, sys, yaml; p = sys.argv[1]; c = yaml.safe_load(open(p)); c.update(json.loads(sys.argv[2])); "
            "open(p, 'w').write(yaml.safe_dump(c))")
    subprocess.run([str(py), "-c", edit, str(cfg), json.dumps(overrides)], check=True)
    # Unbuffered log file, so the access log is complete when the tests end.
    for log_cfg in d.glob("*.log.config"):
        log_cfg.write_text(log_cfg.read_text().replace("handlers: [buffer]", "handlers: [file]"))
    out = open(d / "synapse.out", "wb")
    proc = subprocess.Popen([str(py), "-m", "synapse.app.homeserver", "--config-path", str(cfg)], cwd=d,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_matrix/client/versions", timeout=2):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                print((d / "synapse.out").read_text(errors="replace")[-3000:])
                return 1
            time.sleep(0.5)
        print(f"synapse at {base} ({d})", flush=True)
        env = dict(os.environ, STRATUS_URL=base, STRATUS_SHARED_SECRET=secret)
        args = sys.argv[1:]
        tests = [a for a in args if a.startswith("tests/") and a.split("::")[0].endswith(".py")]
        rest = [a for a in args if a not in tests]
        rc = subprocess.run([sys.executable, "-m", "pytest", *(tests or ["tests/integration/test_e2ee_clients.py"]),
                             "-p", "no:cacheprovider", *(rest or ["-q"])], cwd=REPO, env=env).returncode
        log = d / "homeserver.log"
        if log.exists():
            print("client API calls seen by Synapse:\n" + endpoint_summary(log))
        return rc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except Exception:
            pass
        if not os.environ.get("E2EE_KEEP_SYNAPSE"):
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
