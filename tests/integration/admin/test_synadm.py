"""The admin API driven by the real `synadm` CLI (issue 18): the requests a Synapse admin tool
sends, answered as it expects, with every result checked through the client API.

synadm is configured non-interactively with a config file pointing at the test server and an
admin token (an admin registered with the shared secret).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from matrix_helpers import (
    HTTP_TIMEOUT,
    admin_register_raw,
    assert_error,
    assert_ok,
    auth,
    login_raw,
    new_user,
    register_via_token,
    unique_username,
    whoami,
)
from rooms_helpers import create_room, invite, join, send_text

pytest.importorskip("synadm")


@pytest.fixture(scope="module")
def admin(stratus):
    if not stratus.shared_secret:
        pytest.skip("no shared secret")
    return assert_ok(admin_register_raw(stratus.base, stratus.shared_secret, unique_username("root"), admin=True))


def synadm_runner(server, admin, folder: Path):
    """`run(*args)` runs `synadm <args>` against `server` as `admin`; returns (exit code,
    output, the last JSON document it printed)."""
    cfg = folder / "synadm.yaml"
    cfg.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "user": admin["user_id"],
                "token": admin["access_token"],
                "base_url": server.base,
                "admin_path": "/_synapse/admin",
                "matrix_path": "/_matrix",
                "protocol": "http",
                "format": "minified",
                "timeout": 60,
                "server_discovery": "well-known",
                "homeserver": server.server_name,
                "ssl_verify": False,
            }
        )
    )

    def run(*args: str):
        cmd = [sys.executable, "-m", "synadm", "--batch", "-o", "minified", "-c", str(cfg), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        doc = None
        for line in p.stdout.splitlines():
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                try:
                    doc = json.loads(line)
                except ValueError:
                    pass
        return p.returncode, p.stdout + p.stderr, doc

    return run


@pytest.fixture(scope="module")
def synadm(stratus, admin, tmp_path_factory):
    return synadm_runner(stratus, admin, tmp_path_factory.mktemp("synadm"))


def login_ok(base, user_id, password) -> bool:
    r = login_raw(base, {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password})
    return r.status_code == 200


def test_version_and_user_list(stratus, synadm, admin):
    rc, out, doc = synadm("version")
    assert rc == 0 and doc and doc["server_version"].startswith("Stratus"), out
    u = new_user(stratus.base, prefix="listme")
    rc, out, doc = synadm("user", "list", "--name", u["username"])
    assert rc == 0 and doc is not None, out
    assert [x["name"] for x in doc["users"]] == [u["user_id"]], out
    assert doc["total"] == 1 and doc["users"][0]["admin"] is False, out
    rc, out, doc = synadm("user", "list", "--name", admin["user_id"].split(":")[0][1:])
    assert doc["users"][0]["admin"] is True, out


def test_create_user_reset_password_deactivate(stratus, synadm):
    base = stratus.base
    name = unique_username("made")
    user_id = f"@{name}:{stratus.server_name}"
    # Create.
    rc, out, doc = synadm("user", "modify", user_id, "--password", "first-pass-1", "--display-name", "Made By Synadm")
    assert rc == 0 and doc and doc.get("name") == user_id, out
    assert login_ok(base, user_id, "first-pass-1"), out
    r = assert_ok(requests.get(f"{base}/_matrix/client/v3/profile/{user_id}", timeout=HTTP_TIMEOUT))
    assert r.get("displayname") == "Made By Synadm", r
    session = assert_ok(
        login_raw(base, {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": "first-pass-1"})
    )
    # Reset the password: the new one logs in, the old one does not, sessions are logged out.
    rc, out, doc = synadm("user", "password", user_id, "--password", "second-pass-2")
    assert rc == 0 and doc == {}, out
    assert login_ok(base, user_id, "second-pass-2")
    assert not login_ok(base, user_id, "first-pass-1")
    assert whoami(base, session["access_token"]).status_code == 401
    # Details, as synadm shows them.
    rc, out, doc = synadm("user", "details", user_id)
    assert doc["name"] == user_id and doc["deactivated"] is False, out
    # Deactivate: no login any more, and the account says so.
    rc, out, doc = synadm("user", "deactivate", user_id)
    assert rc == 0 and doc == {"id_server_unbind_result": "success"}, out
    r = login_raw(base, {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": "second-pass-2"})
    assert_error(r, 403, "M_USER_DEACTIVATED")
    rc, out, doc = synadm("user", "details", user_id)
    assert doc["deactivated"] is True, out
    rc, out, doc = synadm("user", "list", "--name", name)
    assert doc["users"] == [], out
    rc, out, doc = synadm("user", "list", "--name", name, "--deactivated")
    assert [x["name"] for x in doc["users"]] == [user_id], out


def test_list_rooms_and_delete_with_purge(stratus, synadm):
    base = stratus.base
    owner, member = new_user(base, prefix="rown"), new_user(base, prefix="rmem")
    topic = unique_username("topic")
    room = create_room(base, owner["access_token"], name=f"Doomed {topic}", topic=topic)
    invite(base, owner["access_token"], room, member["user_id"])
    join(base, member["access_token"], room)
    send_text(base, owner["access_token"], room, "hello before the end")
    rc, out, doc = synadm("room", "list", "--name", f"Doomed {topic}")
    assert rc == 0 and doc, out
    assert [r["room_id"] for r in doc["rooms"]] == [room], out
    assert doc["rooms"][0]["joined_members"] == 2 and doc["rooms"][0]["name"] == f"Doomed {topic}", out
    rc, out, doc = synadm("room", "details", room)
    assert doc["room_id"] == room and doc["joined_local_members"] == 2, out
    rc, out, doc = synadm("room", "members", room)
    assert sorted(doc["members"]) == sorted([owner["user_id"], member["user_id"]]), out

    # Delete with purge and block (the v2 API: a job with a delete ID).
    rc, out, doc = synadm("room", "delete", room, "--block")
    assert rc == 0 and doc and isinstance(doc.get("delete_id"), str), out
    delete_id = doc["delete_id"]
    status = None
    for _ in range(60):
        rc, out, status = synadm("room", "delete-status", "--delete-id", delete_id)
        if status and status.get("status") in ("complete", "failed"):
            break
        time.sleep(0.5)
    assert status and status["status"] == "complete", out
    assert sorted(status["shutdown_room"]["kicked_users"]) == sorted([owner["user_id"], member["user_id"]]), status

    # Gone, as far as the client API can tell.
    for u in (owner, member):
        r = requests.get(f"{base}/_matrix/client/v3/joined_rooms", headers=auth(u["access_token"]), timeout=HTTP_TIMEOUT)
        assert room not in assert_ok(r)["joined_rooms"]
        r = requests.get(f"{base}/_matrix/client/v3/rooms/{room}/messages", headers=auth(u["access_token"]), params={"dir": "b"}, timeout=HTTP_TIMEOUT)
        assert r.status_code in (403, 404), r.text
        r = requests.get(f"{base}/_matrix/client/v3/rooms/{room}/state", headers=auth(u["access_token"]), timeout=HTTP_TIMEOUT)
        assert r.status_code in (403, 404), r.text
    rc, out, doc = synadm("room", "details", room)
    assert doc.get("errcode") == "M_NOT_FOUND", out
    rc, out, doc = synadm("room", "list", "--name", f"Doomed {topic}")
    assert doc["rooms"] == [], out
    # Blocked: nobody joins it again.
    r = requests.post(f"{base}/_matrix/client/v3/rooms/{room}/join", headers=auth(member["access_token"]), json={}, timeout=HTTP_TIMEOUT)
    assert_error(r, 403, "M_FORBIDDEN")


def test_quarantine_media(stratus, synadm):
    base = stratus.base
    u = new_user(base, prefix="media")
    r = requests.post(
        f"{base}/_matrix/media/v3/upload", data=b"quarantine me " + unique_username().encode(), headers={**auth(u["access_token"]), "Content-Type": "text/plain"}, timeout=HTTP_TIMEOUT
    )
    mxc = assert_ok(r)["content_uri"]
    server, media_id = mxc[len("mxc://") :].split("/", 1)
    url = f"{base}/_matrix/client/v1/media/download/{server}/{media_id}"
    assert requests.get(url, headers=auth(u["access_token"]), timeout=HTTP_TIMEOUT).status_code == 200
    rc, out, doc = synadm("media", "quarantine", "--mxc-uri", mxc)
    assert rc == 0 and doc == {}, out
    assert_error(requests.get(url, headers=auth(u["access_token"]), timeout=HTTP_TIMEOUT), 404, "M_NOT_FOUND")
    # Listed among the user's media, quarantined.
    rc, out, doc = synadm("user", "media", u["user_id"])
    assert [m["media_id"] for m in doc["media"]] == [media_id], out
    assert doc["media"][0]["quarantined_by"], out


def test_registration_tokens(synadm_token_server):
    server, run = synadm_token_server
    base = server.base
    tok = unique_username("tok").replace("-", "")
    rc, out, doc = run("regtok", "new", "--token", tok, "--uses-allowed", "1")
    assert rc == 0 and doc == {"token": tok, "uses_allowed": 1, "pending": 0, "completed": 0, "expiry_time": None}, out
    rc, out, doc = run("regtok", "list")
    assert tok in [t["token"] for t in doc["registration_tokens"]], out
    # One registration uses it up.
    assert register_via_token(base, tok, "viatok").status_code == 200
    rc, out, doc = run("regtok", "details", tok)
    assert doc["completed"] == 1 and doc["pending"] == 0, out
    assert register_via_token(base, tok, "viatok").status_code == 401
    # More uses: it works again.
    rc, out, doc = run("regtok", "update", tok, "--uses-allowed", "2")
    assert doc["uses_allowed"] == 2, out
    assert register_via_token(base, tok, "viatok").status_code == 200
    rc, out, doc = run("regtok", "list", "--invalid")
    assert tok in [t["token"] for t in doc["registration_tokens"]], out
    # Deleted: refused.
    rc, out, doc = run("regtok", "delete", tok)
    assert rc == 0 and "successfully deleted" in out, out
    rc, out, doc = run("regtok", "details", tok)
    assert doc.get("errcode") == "M_NOT_FOUND", out
    assert register_via_token(base, tok, "viatok").status_code == 401



@pytest.fixture(scope="module")
def synadm_token_server(stratus_factory, tmp_path_factory):
    """A token-mode server with no configured token (admins make them) and synadm for it."""
    server = stratus_factory({"REGISTRATION_MODE": "token"})
    admin = assert_ok(admin_register_raw(server.base, server.shared_secret, unique_username("root"), admin=True))
    return server, synadm_runner(server, admin, tmp_path_factory.mktemp("synadm-tok"))
