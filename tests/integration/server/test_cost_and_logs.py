"""Issue #17's cost meter (`X-Stratus-Cost`, `DEV_COST_HEADER=on`), issue #18's request log
(one JSON line per request, no secrets or bodies in it) and the query-plan check of the hot
D1 queries (`DEV_LOG_SQL=on`: the statements /sync and send ran, under EXPLAIN QUERY PLAN on
the migrated schema)."""

import hashlib
import json
import re
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
import requests

from matrix_helpers import CLIENT_V3, assert_ok, auth, call, login, new_user
from rooms_helpers import room_pair, rpath, txn

REPO = Path(__file__).resolve().parents[3]
DEV = {"DEV_COST_HEADER": "on", "DEV_LOG_SQL": "on"}
SEND_ROUTE = "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"


def cost_of(r: requests.Response) -> dict:
    """`d1=3;rows_read=12;...;do=Room:1,UserSync:2;...` -> {"d1": 3, ..., "do": {"Room": 1}}."""
    header = r.headers.get("X-Stratus-Cost")
    assert header is not None, (r.status_code, dict(r.headers))
    out: dict = {}
    for part in header.split(";"):
        k, _, v = part.partition("=")
        if k == "do":
            out["do"] = {c: int(n) for c, _, n in (x.partition(":") for x in v.split(",") if x)}
        else:
            out[k] = int(v)
    assert set(out) == {"d1", "rows_read", "rows_written", "do", "do_ms", "kv_r", "kv_w", "r2_a", "r2_b", "sub"}, header
    return out


def log_text(server) -> str:
    return server.log_path.read_text(errors="replace")


def json_lines(text: str, msg: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        start = line.find('{"msg":"' + msg + '"')
        if start < 0:
            continue
        try:
            out.append(json.loads(line[start:]))
        except ValueError:
            pass
    return out


def wait_for_log(server, pred, what: str) -> str:
    """wrangler writes the Worker's console output asynchronously: wait for the line."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log_text(server)
        if pred(text):
            return text
        time.sleep(0.2)
    pytest.fail(f"no {what} in the wrangler log:\n{log_text(server)[-3000:]}")


@pytest.fixture(scope="module")
def dev(stratus_factory):
    return stratus_factory(DEV)


def test_cost_header_counts_d1_objects_and_r2(dev):
    base = dev.base
    a, b = new_user(base, "costa"), new_user(base, "costb")
    room = room_pair(base, a, b)

    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", token=a["access_token"])
    assert_ok(r)
    c = cost_of(r)
    assert c["d1"] >= 1 and c["rows_read"] >= 1, c
    assert c["do"] == {} and c["r2_a"] == c["r2_b"] == c["kv_w"] == 0, c
    assert int(r.headers["X-Stratus-D1-Round-Trips"]) >= 1

    r = call(base, "PUT", rpath(room, "send", "m.room.message", txn()), {"msgtype": "m.text", "body": "hi"}, token=a["access_token"])
    assert_ok(r)
    c = cost_of(r)
    # The room's single writer appends; its D1 writes count for this request (local dev).
    assert c["do"].get("Room", 0) >= 1, c
    assert c["rows_written"] >= 1, c
    assert c["do_ms"] >= 0

    blob = uuid.uuid4().bytes * 64
    r = requests.post(f"{base}/_matrix/media/v3/upload", data=blob, headers={**auth(a["access_token"]), "Content-Type": "application/octet-stream"}, timeout=30)
    up = assert_ok(r)
    assert cost_of(r)["r2_a"] >= 1, r.headers["X-Stratus-Cost"]
    r = requests.get(f"{base}/_matrix/client/v1/media/download/{up['content_uri'].removeprefix('mxc://')}", headers=auth(b["access_token"]), timeout=30)
    assert r.status_code == 200 and r.content == blob
    assert cost_of(r)["r2_b"] >= 1, r.headers["X-Stratus-Cost"]

    # Every response carries both headers, errors and unauthenticated ones too.
    for r in (call(base, "GET", "/_matrix/client/versions"), call(base, "GET", f"{CLIENT_V3}/no_such_thing")):
        cost_of(r)
        assert "X-Stratus-D1-Round-Trips" in r.headers, dict(r.headers)


def test_no_cost_header_unless_switched_on(base):
    r = call(base, "GET", "/_matrix/client/versions")
    assert r.status_code == 200
    assert "X-Stratus-Cost" not in r.headers


def test_request_log_line_and_no_secrets(dev):
    base = dev.base
    password = f"pw-{uuid.uuid4().hex}"
    a = new_user(base, "logs", password=password)
    session = login(base, a["user_id"], password)
    token = session["access_token"]
    peer = new_user(base, "logp")
    room = room_pair(base, {**a, "access_token": token}, peer)
    body = f"message-body-{uuid.uuid4().hex}"
    assert_ok(call(base, "PUT", rpath(room, "send", "m.room.message", txn()), {"msgtype": "m.text", "body": body}, token=token))
    upload = f"upload-content-{uuid.uuid4().hex}".encode()
    assert_ok(requests.post(f"{base}/_matrix/media/v3/upload", data=upload, headers={**auth(token), "Content-Type": "text/plain"}, timeout=30))
    assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", params={"timeout": "0"}, token=token))

    user_hash = hashlib.sha256(a["user_id"].encode()).hexdigest()[:16]

    def has_send(text: str) -> bool:
        return any(l["route"] == SEND_ROUTE and l.get("user") == user_hash for l in json_lines(text, "request"))

    text = wait_for_log(dev, has_send, "request line for the send")
    for secret, what in ((password, "password"), (token, "access token"), (a["access_token"], "registration token"), (body, "message body"), (upload.decode(), "uploaded bytes")):
        assert secret not in text, f"the {what} appears in the wrangler log"

    lines = json_lines(text, "request")
    send = next(l for l in lines if l["route"] == SEND_ROUTE and l.get("user") == user_hash)
    assert send["method"] == "PUT" and send["status"] == 200, send
    assert isinstance(send["request_id"], str) and send["request_id"], send
    assert isinstance(send["duration_ms"], int) and send["d1_round_trips"] >= 1, send
    assert send["cost"]["d1"] >= 1 and ["Room", 1] in send["cost"]["do"], send
    for l in lines:
        # Route patterns only: no IDs, tokens or user IDs.
        assert "!" not in l["route"] and "@" not in l["route"], l
        assert a["user_id"] not in json.dumps(l), l
    assert any(l["route"] == "/_matrix/client/v3/login" and l["method"] == "POST" for l in lines)


# ------------------------------------------------------------------ EXPLAIN QUERY PLAN


def migrated_schema() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for f in sorted((REPO / "migrations").glob("*.sql")):
        db.executescript(f.read_text())
    return db


def plan(db: sqlite3.Connection, sql: str) -> list[str]:
    params: list = []
    for _ in range(2):
        try:
            return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
        except sqlite3.ProgrammingError as e:
            m = re.search(r"uses (\d+)", str(e))
            if not m:
                raise
            params = [None] * int(m.group(1))
    raise AssertionError(sql)


def full_scans(db: sqlite3.Connection, sql: str) -> list[str]:
    """Plan steps that read a whole table with no index (scans of CTEs, VALUES lists and
    subqueries are not tables)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    bad = []
    for step in plan(db, sql):
        m = re.match(r"SCAN (?:TABLE )?(\w+)(?: AS \w+)?$", step)
        if m and m.group(1) in tables:
            bad.append(step)
    return bad


def test_hot_queries_use_indexes(dev):
    base = dev.base
    a, b = new_user(base, "qpa"), new_user(base, "qpb")
    room = room_pair(base, a, b)
    for i in range(3):
        assert_ok(call(base, "PUT", rpath(room, "send", "m.room.message", txn()), {"msgtype": "m.text", "body": f"m{i}"}, token=a["access_token"]))
    since = assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", params={"timeout": "0"}, token=b["access_token"]))["next_batch"]

    marker = f"qp-{uuid.uuid4().hex}"
    start = len(log_text(dev))
    # The hot path: an initial sync, a send, an incremental sync that sees it.
    assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", params={"timeout": "0"}, token=b["access_token"]))
    assert_ok(call(base, "PUT", rpath(room, "send", "m.room.message", txn()), {"msgtype": "m.text", "body": marker}, token=a["access_token"]))
    assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", params={"timeout": "0", "since": since}, token=b["access_token"]))
    assert_ok(call(base, "GET", f"{CLIENT_V3}/account/whoami", token=b["access_token"]))  # the log's end marker

    def done(text: str) -> bool:
        return any(l["route"] == "/_matrix/client/v3/account/whoami" for l in json_lines(text[start:], "request"))

    text = wait_for_log(dev, done, "request line for the closing whoami")[start:]
    statements = sorted({l["sql"] for l in json_lines(text, "sql")})
    assert len(statements) >= 10, statements  # /sync and send run many distinct statements
    db = migrated_schema()
    problems = {sql: bad for sql in statements if (bad := full_scans(db, sql))}
    index_scans = [step for sql in statements for step in plan(db, sql) if step.startswith("SCAN ") and "INDEX" in step]
    print(f"{len(statements)} distinct statements checked; full index scans (allowed): {index_scans}")
    assert not problems, "full table scans in hot queries:\n" + "\n\n".join(f"{' '.join(s.split())}\n  -> {b}" for s, b in problems.items())
