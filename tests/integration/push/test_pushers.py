"""Pushers and the push gateway the server POSTs to.

Spec v1.19: client-server-api, `POST /_matrix/client/v3/pushers/set` (`data.url`: "MUST be
an HTTPS URL with a path of /_matrix/push/v1/notify") and the push gateway API
(`POST /_matrix/push/v1/notify`). The server sends message contents to that URL, so it
refuses loopback, private and local hosts at set time and again at send time, and does not
follow redirects. The local test gateways live on 127.0.0.1, which the instances started
here allow-list (PUSH_GATEWAY_IP_ALLOWLIST); the main instance allow-lists nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager

import pytest

from local_state import sqlite_with_table
from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user
from rooms_helpers import room_pair, send
from stub_server import StubServer

NOTIFY = "/_matrix/push/v1/notify"
ALLOW_LOCAL_GATEWAY = {"PUSH_GATEWAY_IP_ALLOWLIST": "127.0.0.1"}


def pusher(url: str, pushkey: str = "key1", **data) -> dict:
    return {
        "kind": "http", "app_id": "org.example.app", "pushkey": pushkey, "app_display_name": "App",
        "device_display_name": "Phone", "lang": "en", "data": {"url": url, **data},
    }


def set_pusher(base: str, token: str, body: dict):
    return call(base, "POST", f"{CLIENT_V3}/pushers/set", body, token=token)


def pushers(base: str, token: str) -> list:
    return assert_ok(call(base, "GET", f"{CLIENT_V3}/pushers", token=token))["pushers"]


class Gateway:
    """A push gateway on 127.0.0.1 that records each POST; `redirect_to` makes it answer
    307 to that URL instead."""

    def __init__(self, redirect_to: str | None = None):
        self.got: list[tuple[str, dict]] = []

        def respond(method, path, headers, body):
            self.got.append((path, json.loads(body or b"{}")))
            if redirect_to:
                return 307, {"Location": redirect_to}, b""
            return 200, {"Content-Type": "application/json"}, b'{"rejected": []}'

        self.srv = StubServer(respond, methods=("POST",))
        self.url = f"{self.srv.url}{NOTIFY}"

    def wait(self, seconds: float = 15) -> list:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.got:
            time.sleep(0.2)
        return self.got


@contextmanager
def gateway(redirect_to: str | None = None):
    gw = Gateway(redirect_to)
    try:
        yield gw
    finally:
        gw.srv.close()


@pytest.fixture(scope="module")
def local_gw(stratus_factory):
    """An instance whose pushers may use the local test gateways."""
    return stratus_factory(ALLOW_LOCAL_GATEWAY)


def pair(base: str) -> tuple[dict, dict, str]:
    """Two new users in a new public room: (sender, receiver, room)."""
    a, b = new_user(base, prefix="push"), new_user(base, prefix="push")
    return a, b, room_pair(base, a, b)


def test_pushers(local_gw):
    base = local_gw.base
    tok = new_user(base, prefix="push")["access_token"]
    assert pushers(base, tok) == []
    p = pusher("http://127.0.0.1:9/_matrix/push/v1/notify", format="event_id_only")
    assert_ok(set_pusher(base, tok, p))
    got = pushers(base, tok)
    assert len(got) == 1 and got[0]["pushkey"] == "key1" and got[0]["data"]["format"] == "event_id_only"
    assert_error(set_pusher(base, tok, pusher("http://127.0.0.1:9/wrong")), 400, "M_INVALID_PARAM")
    assert_ok(set_pusher(base, tok, {"app_id": "org.example.app", "pushkey": "key1", "kind": None}))
    assert pushers(base, tok) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://push.example.org/_matrix/push/v1/notify",  # not https
        "https://push.example.org/notify",  # wrong path
        "https://push.example.org/_matrix/push/v1/notify/x",
        "https://127.0.0.1/_matrix/push/v1/notify",
        "https://127.0.0.1:8448/_matrix/push/v1/notify",
        "https://10.0.0.1/_matrix/push/v1/notify",
        "https://192.168.1.1/_matrix/push/v1/notify",
        "https://169.254.169.254/_matrix/push/v1/notify",
        "https://[::1]/_matrix/push/v1/notify",
        "https://[::ffff:127.0.0.1]/_matrix/push/v1/notify",
        "https://localhost/_matrix/push/v1/notify",
        "https://gateway/_matrix/push/v1/notify",
        "https://user:pw@push.example.org/_matrix/push/v1/notify",
        "http://127.0.0.1:9/_matrix/push/v1/notify",  # a local gateway, not allow-listed here
        "not a url",
    ],
)
def test_pusher_url_must_be_public_https(base, user, url):
    tok = user["access_token"]
    assert_error(set_pusher(base, tok, pusher(url)), 400, "M_INVALID_PARAM")
    assert pushers(base, tok) == []


def test_public_https_pusher_accepted(base, user):
    # `.invalid` never resolves: nothing is ever sent there (the user is in no room anyway).
    tok = user["access_token"]
    url = "https://push.example.invalid/_matrix/push/v1/notify"
    assert_ok(set_pusher(base, tok, pusher(url)))
    assert [p["data"]["url"] for p in pushers(base, tok)] == [url]
    assert_ok(set_pusher(base, tok, {"app_id": "org.example.app", "pushkey": "key1", "kind": None}))


def test_allowlist_covers_only_listed_ip_literals(local_gw):
    tok = new_user(local_gw.base, prefix="push")["access_token"]
    for url in [
        "http://127.0.0.2/_matrix/push/v1/notify",
        "https://[::1]/_matrix/push/v1/notify",
        "http://localhost/_matrix/push/v1/notify",
        "https://localhost/_matrix/push/v1/notify",
        "http://push.example.org/_matrix/push/v1/notify",
    ]:
        assert_error(set_pusher(local_gw.base, tok, pusher(url)), 400, "M_INVALID_PARAM")
    assert_ok(set_pusher(local_gw.base, tok, pusher("https://127.0.0.1/_matrix/push/v1/notify")))


def test_http_pusher_receives_notification(local_gw):
    """A message to the room is posted to the member's push gateway, in the background."""
    base = local_gw.base
    a, b, room = pair(base)
    with gateway() as gw:
        assert_ok(set_pusher(base, b["access_token"], pusher(gw.url, pushkey="gwkey")))
        eid = send(base, a["access_token"], room, "push me")
        assert gw.wait(), "push gateway got nothing"
        path, body = gw.got[0]
        assert path == NOTIFY
        n = body["notification"]
        assert n["event_id"] == eid and n["room_id"] == room
        assert n["devices"][0]["pushkey"] == "gwkey" and n["counts"]["unread"] >= 1
        assert n["content"]["body"] == "push me"


def test_gateway_redirects_are_not_followed(local_gw):
    """A gateway answering 307 does not get the server to POST the message elsewhere (here
    another allow-listed local gateway, so only the redirect itself is refused)."""
    base = local_gw.base
    a, b, room = pair(base)
    with gateway() as target:
        with gateway(redirect_to=target.url) as first:
            assert_ok(set_pusher(base, b["access_token"], pusher(first.url, pushkey="redir")))
            send(base, a["access_token"], room, "secret message")
            assert first.wait(), "the first gateway got nothing"
            time.sleep(2)
            assert target.got == [], "the redirect was followed"


def test_stored_private_pusher_is_not_used(stratus):
    """A pusher stored with a loopback URL (before the set-time check existed, or under
    another allow-list) gets nothing: the URL is checked again before each send."""
    dbs = sqlite_with_table(stratus, "pushers", kind="d1")
    if not dbs:
        pytest.skip("needs the local D1 files of an instance started here")
    base = stratus.base
    a, b, room = pair(base)
    with gateway() as gw:
        data = json.dumps({"url": gw.url})
        inserted = 0
        for db in dbs:
            con = sqlite3.connect(db, timeout=10)
            try:
                con.execute(
                    "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name,"
                    " lang, data, created_ts) VALUES (?, 'org.example.app', 'old', 'http', 'App', 'Phone', 'en', ?, 0)",
                    (b["user_id"], data),
                )
                con.commit()
                inserted += 1
            finally:
                con.close()
        assert inserted == 1, dbs
        # The worker sees the stored pusher...
        assert [p["data"]["url"] for p in pushers(base, b["access_token"])] == [gw.url]
        eid = send(base, a["access_token"], room, "not for a loopback gateway")
        # ...and the message notifies b (so the push path runs)...
        notes = assert_ok(call(base, "GET", f"{CLIENT_V3}/notifications", token=b["access_token"]))["notifications"]
        assert [n["event"]["event_id"] for n in notes] == [eid]
        # ...but nothing is posted to the loopback gateway.
        assert gw.wait(5) == []
