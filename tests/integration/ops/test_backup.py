"""Backups (README "Backups"): `wrangler d1 export` of a server's D1, restored with
`wrangler d1 execute --file` into a fresh instance, which then serves the same room.

The restored instance has the same SERVER_NAME and signing key (.dev.vars) as the first,
as a restore in production would; Durable Object state is not in the export and is not
needed to read a room (events live in D1; the restored room's `Room` object starts fresh).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from stratus_conftest import REPO, WRANGLER, _STARTED, _child_env, start_worker
from matrix_helpers import CLIENT_V3, assert_ok, call, new_user
from rooms_helpers import bodies, create_room, messages, send_text


def wrangler(server, *args: str, persist_flag: bool = True) -> str:
    persist = ["--persist-to", str(server.state_dir / "persist")] if persist_flag else []
    r = subprocess.run(
        [str(WRANGLER), *args, "--local", *persist, "--config", str(server.state_dir / "wrangler.json")],
        cwd=REPO, env=dict(_child_env(server.state_dir), CI="true"), stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
    )
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode == 0, out
    return out


def test_export_restore_reads_the_room_back(stratus_factory, tmp_path):
    a = stratus_factory({"CLEANUP_BATCH": "100"})  # an instance of its own
    u = new_user(a.base, prefix="bk")
    room = create_room(a.base, u["access_token"], name="backed up")
    sent = [send_text(a.base, u["access_token"], room, f"before backup {i}") for i in range(5)]
    assert len(sent) == 5

    dump = tmp_path / "stratus.sql"
    # `d1 export` has no --persist-to: it reads the default state directory next to the
    # configuration (.wrangler/state, where `make dev` keeps it), here a link to the instance's.
    (a.state_dir / ".wrangler").mkdir(exist_ok=True)
    (a.state_dir / ".wrangler" / "state").symlink_to(a.state_dir / "persist")
    wrangler(a, "d1", "export", "DB", "--output", str(dump), persist_flag=False)
    text = dump.read_text()
    assert "CREATE TABLE" in text and "before backup 4" in text

    # A fresh instance with the same server name; its D1 replaced by the export.
    b = start_worker({"SERVER_NAME": a.server_name})
    _STARTED.append(b)
    try:
        b.stop_process()
        d1_dir = b.state_dir / "persist" / "v3" / "d1"
        assert d1_dir.is_dir(), list((b.state_dir / "persist").rglob("*"))[:20]
        shutil.rmtree(d1_dir)
        wrangler(b, "d1", "execute", "DB", "--file", str(dump), "--yes")
        b.start_process()

        # The same token, the same room, the same messages.
        assert_ok(call(b.base, "GET", f"{CLIENT_V3}/account/whoami", token=u["access_token"]))
        got = bodies(messages(b.base, u["access_token"], room, dir="b", limit=20)["chunk"], prefix="before backup")
        assert sorted(got) == sorted(f"before backup {i}" for i in range(5))
        # And the restored server carries on: a new message lands after the old ones.
        send_text(b.base, u["access_token"], room, "after restore")
        latest = messages(b.base, u["access_token"], room, dir="b", limit=1)["chunk"]
        assert latest and latest[0]["content"]["body"] == "after restore"
    finally:
        b.stop()
