"""Run the E2EE client tests against a local Synapse: the reference the Stratus run compares to.

    .venv/bin/python tests/e2ee/against_synapse.py [test files...] [pytest args...]

Installs matrix-synapse into bench/.synapse-venv on first use (the sync benchmark's venv;
SYNAPSE_PYTHON=/path/to/python uses another), generates a config in a temporary directory
(SQLite, no TLS, 127.0.0.1 on a free port, a registration shared secret, rate limits
lifted, MSC3814 dehydrated devices on), runs the given test files (those arguments that name
tests under tests/, with or without a ::node suffix; by default
tests/integration/e2ee/test_e2ee_clients.py) with STRATUS_URL and
STRATUS_SHARED_SECRET pointing at it, prints which client endpoints the clients called
(from Synapse's access log), and stops Synapse. Exits with pytest's status.
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from synapse_local import start_synapse  # noqa: E402


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
    secret = secrets.token_hex(16)
    base, d, stop = start_synapse({
        "registration_shared_secret": secret,
        # Dehydrated devices (the js-sdk's startDehydration) are behind a flag in Synapse.
        "experimental_features": {"msc3814_enabled": True},
    }, prefix="e2ee-synapse-", keep=bool(os.environ.get("E2EE_KEEP_SYNAPSE")))
    try:
        print(f"synapse at {base} ({d})", flush=True)
        env = dict(os.environ, STRATUS_URL=base, STRATUS_SHARED_SECRET=secret)
        args = sys.argv[1:]
        tests = [a for a in args if a.startswith("tests/") and a.split("::")[0].endswith(".py")]
        rest = [a for a in args if a not in tests]
        rc = subprocess.run([sys.executable, "-m", "pytest", *(tests or ["tests/integration/e2ee/test_e2ee_clients.py"]),
                             "-p", "no:cacheprovider", *(rest or ["-q"])], cwd=REPO, env=env).returncode
        log = d / "homeserver.log"
        if log.exists():
            print("client API calls seen by Synapse:\n" + endpoint_summary(log))
        return rc
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
