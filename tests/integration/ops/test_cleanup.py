"""The scheduled clean-up (issue 18): the Cron Trigger's handler, run through wrangler dev's
`/__scheduled` (the harness starts wrangler with --test-scheduled), deletes what expired,
at most CLEANUP_BATCH rows per table per run, and the next run continues.

Expired rows are arranged directly in the instance's local D1 (as if written long ago);
fresh ones next to them must stay.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

import pytest
import requests

from stratus_conftest import WRANGLER, REPO, _child_env
from local_state import sqlite_with_table
from matrix_helpers import CLIENT_V3, assert_ok, call, login, new_user
from rooms_helpers import txn

DAY = 86_400_000


def run_cron(server) -> None:
    r = requests.get(server.base + "/__scheduled", params={"cron": "*/10 * * * *"}, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text, server.log_tail(30))


def d1(server) -> sqlite3.Connection:
    dbs = sqlite_with_table(server, "uia_sessions", kind="d1")
    assert dbs, "no local D1 found"
    return sqlite3.connect(dbs[0], timeout=10, isolation_level=None)


def count(server, sql: str, *args) -> int:
    con = d1(server)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def r2_keys(server) -> list[str]:
    keys: list[str] = []
    for db in sqlite_with_table(server, "_mf_objects", kind="r2") or []:
        con = sqlite3.connect(db)
        try:
            keys += [k for (k,) in con.execute("SELECT key FROM _mf_objects")]
        finally:
            con.close()
    return keys


def to_device_rows(server, device_id: str) -> int:
    n = 0
    for db in sqlite_with_table(server, "to_device") or []:
        con = sqlite3.connect(db)
        try:
            n += con.execute("SELECT COUNT(*) FROM to_device WHERE device_id = ?", (device_id,)).fetchone()[0]
        finally:
            con.close()
    return n


@pytest.fixture(scope="module")
def server(stratus_factory):
    return stratus_factory({"CLEANUP_BATCH": "2", "CLEANUP_TMP_AGE_SECS": "0", "UNUSED_MEDIA_LIFETIME_SECS": "1"})


def test_expired_rows_go_in_bounded_runs(server):
    now = int(time.time() * 1000)
    old = now - 2 * DAY
    u = new_user(server.base, prefix="cl")
    # Three of each expired kind, and one fresh one that must stay.
    con = d1(server)
    try:
        for i in range(3):
            con.execute("INSERT INTO uia_sessions (session_id, operation, created_ts) VALUES (?, 'register', ?)", (f"old-uia-{i}", old))
            con.execute("INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)", (f"old-lt-{i}", u["user_id"], now - 1000))
            con.execute("INSERT INTO login_failures (key, ts) VALUES ('ip:cleanup-test', ?)", (old,))
            con.execute(
                "INSERT INTO oauth_sessions (session_id, user_id, device_id, client_id, scope, created_ts, revoked_ts) VALUES (?, ?, ?, 'c', 's', ?, ?)",
                (f"old-os-{i}", u["user_id"], u["device_id"], old, old),
            )
            con.execute("INSERT INTO oauth_refresh_tokens (token_hash, session_id, created_ts) VALUES (?, ?, ?)", (f"old-rt-{i}", f"old-os-{i}", old))
        con.execute("INSERT INTO uia_sessions (session_id, operation, created_ts) VALUES ('fresh-uia', 'register', ?)", (now,))
        con.execute("INSERT INTO login_tokens (token_hash, user_id, expires_ts) VALUES ('fresh-lt', ?, ?)", (u["user_id"], now + 600_000))
        con.execute(
            "INSERT INTO oauth_sessions (session_id, user_id, device_id, client_id, scope, created_ts) VALUES ('live-os', ?, ?, 'c', 's', ?)",
            (u["user_id"], u["device_id"], now),
        )
        con.execute("INSERT INTO oauth_refresh_tokens (token_hash, session_id, created_ts) VALUES ('live-rt', 'live-os', ?)", (now,))
    finally:
        con.close()
    # Created media IDs that are never uploaded (lifetime 1 s here), and an uploaded one.
    created = [assert_ok(call(server.base, "POST", "/_matrix/media/v1/create", {}, token=u["access_token"]))["content_uri"] for _ in range(3)]
    time.sleep(1.2)
    kept = assert_ok(call(server.base, "POST", "/_matrix/media/v3/upload", None, token=u["access_token"], data=b"uploaded", headers={"Content-Type": "text/plain"}))["content_uri"]
    pending = "SELECT COUNT(*) FROM media WHERE uploaded_ts IS NULL AND media_id IN (%s)" % ",".join("?" * 3)
    ids = [c.rsplit("/", 1)[1] for c in created]

    run_cron(server)
    # At most 2 per table per run: one of each left over.
    assert count(server, "SELECT COUNT(*) FROM uia_sessions WHERE session_id LIKE 'old-uia-%'") == 1
    assert count(server, "SELECT COUNT(*) FROM login_tokens WHERE token_hash LIKE 'old-lt-%'") == 1
    assert count(server, "SELECT COUNT(*) FROM login_failures WHERE key = 'ip:cleanup-test'") == 1
    assert count(server, "SELECT COUNT(*) FROM oauth_sessions WHERE session_id LIKE 'old-os-%'") == 1
    assert count(server, pending, *ids) == 1

    run_cron(server)
    # The next run continued where the first stopped.
    assert count(server, "SELECT COUNT(*) FROM uia_sessions WHERE session_id LIKE 'old-uia-%'") == 0
    assert count(server, "SELECT COUNT(*) FROM login_tokens WHERE token_hash LIKE 'old-lt-%'") == 0
    assert count(server, "SELECT COUNT(*) FROM login_failures WHERE key = 'ip:cleanup-test'") == 0
    assert count(server, "SELECT COUNT(*) FROM oauth_sessions WHERE session_id LIKE 'old-os-%'") == 0
    assert count(server, pending, *ids) == 0
    run_cron(server)
    assert count(server, "SELECT COUNT(*) FROM oauth_refresh_tokens WHERE token_hash LIKE 'old-rt-%'") == 0

    # What has not expired is still there.
    assert count(server, "SELECT COUNT(*) FROM uia_sessions WHERE session_id = 'fresh-uia'") == 1
    assert count(server, "SELECT COUNT(*) FROM login_tokens WHERE token_hash = 'fresh-lt'") == 1
    assert count(server, "SELECT COUNT(*) FROM oauth_sessions WHERE session_id = 'live-os'") == 1
    assert count(server, "SELECT COUNT(*) FROM oauth_refresh_tokens WHERE token_hash = 'live-rt'") == 1
    assert count(server, "SELECT COUNT(*) FROM media WHERE media_id = ?", kept.rsplit("/", 1)[1]) == 1
    # And the user is unaffected.
    assert_ok(call(server.base, "GET", f"{CLIENT_V3}/account/whoami", token=u["access_token"]))


def test_r2_tmp_leftovers_go(server, tmp_path):
    """A `tmp/` object left by an interrupted large upload is deleted; media objects stay."""
    u = new_user(server.base, prefix="cl")
    assert_ok(call(server.base, "POST", "/_matrix/media/v3/upload", None, token=u["access_token"], data=b"keep me", headers={"Content-Type": "text/plain"}))
    f = tmp_path / "leftover"
    f.write_bytes(b"x" * 100)
    for key in ("tmp/leftover-a", "tmp/leftover-b"):
        put = subprocess.run(
            [str(WRANGLER), "r2", "object", "put", f"stratus-media/{key}", "--file", str(f), "--local",
             "--persist-to", str(server.state_dir / "persist"), "--config", str(server.state_dir / "wrangler.json")],
            cwd=REPO, env=dict(_child_env(server.state_dir), CI="true"), stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
        )
        assert put.returncode == 0, put.stdout.decode() + put.stderr.decode()
    before = r2_keys(server)
    assert "tmp/leftover-a" in before and any(k.startswith("sha256/") for k in before), before
    run_cron(server)
    after = r2_keys(server)
    assert not [k for k in after if k.startswith("tmp/")], after
    assert [k for k in before if k.startswith("sha256/")] == [k for k in after if k.startswith("sha256/")]


def test_to_device_of_deleted_devices_goes(server):
    """Messages queued for a device whose forget call was missed (its row deleted behind the
    server's back here) are dropped by the sweep; the live device's stay."""
    alice = new_user(server.base, prefix="cl")
    bob = new_user(server.base, prefix="cl")
    gone = login(server.base, bob["username"], bob["password"])["device_id"]
    live = bob["device_id"]
    for device in (gone, live):
        assert_ok(call(server.base, "PUT", f"{CLIENT_V3}/sendToDevice/m.test/{txn()}",
                       {"messages": {bob["user_id"]: {device: {"n": 1}}}}, token=alice["access_token"]))
    assert to_device_rows(server, gone) == 1 and to_device_rows(server, live) == 1
    con = d1(server)
    try:
        con.execute("DELETE FROM devices WHERE user_id = ? AND device_id = ?", (bob["user_id"], gone))
    finally:
        con.close()
    # The sweep walks CLEANUP_USERS_PER_RUN (20) users per run; a few runs cover this server's.
    for _ in range(5):
        run_cron(server)
        if to_device_rows(server, gone) == 0:
            break
    assert to_device_rows(server, gone) == 0
    assert to_device_rows(server, live) == 1
