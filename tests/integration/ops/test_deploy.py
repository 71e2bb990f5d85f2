"""The README's deploy section, followed with Cloudflare stood in for: scripts/first-run.sh
(with a stub `wrangler` answering as the real one does: `d1 create` and `kv namespace create`
print the configuration snippet) fills a copy of wrangler.toml, then `make deploy DRY_RUN=1`
runs the real wrangler's `deploy --dry-run` on it: the configuration and the bundle are what
a deploy would upload."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib

from stratus_conftest import REPO, _child_env

D1_ID = "4f1c2b7e-9d3a-4c55-8e21-0a6b7c8d9e0f"
KV_ID = "0123456789abcdef0123456789abcdef"

STUB = f"""#!/bin/sh
echo "$@" >> "$STUB_LOG"
case "$1 $2" in
  "d1 create") printf '%s\\n' "✅ Successfully created DB '$3' in region WEUR" "Created your new D1 database." "" \\
      "To access your new D1 Database in your Worker, add the following snippet to your configuration file:" \\
      "[[d1_databases]]" "binding = \\"$3\\"" "database_name = \\"$3\\"" "database_id = \\"{D1_ID}\\"" ;;
  "kv namespace") printf '%s\\n' "🌀 Creating namespace with title \\"$3\\"" "✨ Success!" \\
      "To access your new KV Namespace in your Worker, add the following snippet to your configuration file:" \\
      "[[kv_namespaces]]" "binding = \\"$3\\"" "id = \\"{KV_ID}\\"" ;;
  "r2 bucket") echo "Creating bucket '$4'..." ;;
  *) echo "stub wrangler: unexpected $*" >&2; exit 1 ;;
esac
"""


def test_first_run_then_deploy_dry_run(tmp_path):
    stub = tmp_path / "wrangler"
    stub.write_text(STUB)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    config = tmp_path / "wrangler.toml"
    text = (REPO / "wrangler.toml").read_text()
    # The copy points at this checkout's build and migrations (paths are relative to the file).
    text = text.replace('main = "build/index.js"', f'main = "{REPO}/build/index.js"')
    text = text.replace('migrations_dir = "migrations"', f'migrations_dir = "{REPO}/migrations"')
    config.write_text(text)
    env = dict(_child_env(tmp_path), WRANGLER=str(stub), STRATUS_CONFIG=str(config), STUB_LOG=str(log))

    r = subprocess.run(["sh", "scripts/first-run.sh"], cwd=REPO, env=env, capture_output=True, timeout=120)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    cfg = tomllib.loads(config.read_text())
    assert cfg["d1_databases"][0]["database_id"] == D1_ID, out
    assert cfg["kv_namespaces"][0]["id"] == KV_ID, out
    calls = log.read_text()
    assert "d1 create stratus" in calls and "kv namespace create stratus" in calls and "r2 bucket create stratus-media" in calls, calls
    assert "secret put SIGNING_KEY" in out and "make deploy" in out, out

    # Again: nothing is created twice, the IDs stay.
    r = subprocess.run(["sh", "scripts/first-run.sh"], cwd=REPO, env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert tomllib.loads(config.read_text())["d1_databases"][0]["database_id"] == D1_ID
    assert log.read_text().count("d1 create") == 1

    # Step "make deploy", dry: the real wrangler validates the filled configuration.
    env.pop("WRANGLER")
    env["STRATUS_SKIP_BUILD"] = "1"
    r = subprocess.run(["make", "deploy", "DRY_RUN=1", f"DEPLOY_CONFIG={config}"], cwd=REPO, env=env, capture_output=True, timeout=600)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, out
    assert "--dry-run: exiting now" in out, out
    # The bindings wrangler would deploy (KV by the ID first-run wrote; D1 is listed by name),
    # and the provenance var.
    for want in (f"env.KV ({KV_ID})", "env.DB (stratus)", "env.RATE_LIMITER (RateLimiter)", "env.STRATUS_PROVENANCE"):
        assert want in out, (want, out)
