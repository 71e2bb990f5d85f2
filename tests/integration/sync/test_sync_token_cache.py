"""/sync serves a token it has seen from the isolate's cache and folds the check that the
token still exists into its snapshot batch: an incremental sync with nothing new is ONE D1
round trip (X-Stratus-D1-Round-Trips), and revocation — logout, device deletion,
deactivation, refresh — still acts on the very next sync."""

import time

import pytest

from matrix_helpers import (
    CLIENT_V3,
    assert_error,
    assert_ok,
    assert_unknown_token,
    call,
    login,
    new_user,
    qid,
    uia_password,
)
from rooms_helpers import create_room, send


def sync(base, token, since=None, **params):
    p = {"timeout": "0", "set_presence": "offline", **params}
    if since:
        p["since"] = since
    return call(base, "GET", f"{CLIENT_V3}/sync", token=token, params=p)


def trips(r):
    return int(r.headers["X-Stratus-D1-Round-Trips"])


def warm(base, token):
    """Syncs until idle; the token is now in the isolate's cache. Returns the position."""
    since = assert_ok(sync(base, token))["next_batch"]
    return assert_ok(sync(base, token, since))["next_batch"]


def test_idle_incremental_sync_is_one_round_trip(base, user):
    tok = user["access_token"]
    room = create_room(base, tok)
    since = warm(base, tok)
    r = sync(base, tok, since)
    body = assert_ok(r)
    assert body["next_batch"] == since and body["rooms"]["join"] == {}, body
    assert trips(r) == 1, trips(r)
    # set_presence=online (the default): the presence read rides in the same batch.
    # (The first one sets the presence: the stream moves, the response has it.)
    since = assert_ok(sync(base, tok, since, set_presence="online"))["next_batch"]
    r = sync(base, tok, since, set_presence="online")
    assert_ok(r)
    assert trips(r) == 1, trips(r)
    # A stored filter is read once, then known.
    fid = assert_ok(call(base, "POST", f"{CLIENT_V3}/user/{qid(user['user_id'])}/filter", {"room": {"timeline": {"limit": 5}}}, token=tok))["filter_id"]
    assert_ok(sync(base, tok, since, filter=fid))
    r = sync(base, tok, since, filter=fid)
    assert_ok(r)
    assert trips(r) == 1, trips(r)
    # News still arrives through the cached path.
    ev = send(base, tok, room, "after warm-up")
    body = assert_ok(sync(base, tok, since))
    assert [e["event_id"] for e in body["rooms"]["join"][room]["timeline"]["events"]] == [ev], body


def test_presence_set_by_sync_shows_in_that_sync(base, user):
    tok = user["access_token"]
    since = warm(base, tok)
    body = assert_ok(sync(base, tok, since, set_presence="unavailable"))
    mine = [e for e in body.get("presence", {}).get("events", []) if e["sender"] == user["user_id"]]
    assert mine and mine[-1]["content"]["presence"] == "unavailable", body


def test_logout_kills_cached_token_at_once(base, user):
    tok = user["access_token"]
    since = warm(base, tok)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=tok))
    assert_unknown_token(sync(base, tok, since), soft_logout=False)
    # Also on the ways out that never reach the snapshot (a bad parameter, an unknown filter).
    assert_unknown_token(sync(base, tok, "not-a-token"), soft_logout=False)
    assert_unknown_token(sync(base, tok, since, filter="999999"), soft_logout=False)


def test_device_deletion_kills_cached_token(base, user):
    other = login(base, user["username"], user["password"])
    since = warm(base, other["access_token"])
    r = uia_password(base, "DELETE", f"{CLIENT_V3}/devices/{qid(other['device_id'])}", {}, user["access_token"], user["user_id"], user["password"])
    assert_ok(r)
    assert_unknown_token(sync(base, other["access_token"], since), soft_logout=False)
    assert_ok(sync(base, user["access_token"]))


def test_deactivation_kills_cached_token(base, user):
    tok = user["access_token"]
    since = warm(base, tok)
    assert_ok(uia_password(base, "POST", f"{CLIENT_V3}/account/deactivate", {}, tok, user["user_id"], user["password"]))
    assert_unknown_token(sync(base, tok, since), soft_logout=False)


def test_refresh_kills_cached_access_token(base):
    u = new_user(base, refresh_token=True)
    since = warm(base, u["access_token"])
    new = assert_ok(call(base, "POST", f"{CLIENT_V3}/refresh", {"refresh_token": u["refresh_token"]}))
    assert_unknown_token(sync(base, u["access_token"], since), soft_logout=False)
    assert_ok(sync(base, new["access_token"], since))


def test_unknown_token_is_refused(base):
    assert_error(sync(base, "syt_not_a_real_token"), 401, "M_UNKNOWN_TOKEN")


LIFETIME_MS = 3000


@pytest.fixture(scope="module")
def short_server(stratus_factory):
    return stratus_factory({"ACCESS_TOKEN_LIFETIME_SECS": str(LIFETIME_MS // 1000)})


def test_cached_token_expires_as_soft_logout(short_server):
    base = short_server.base
    u = new_user(base, refresh_token=True)
    issued_at = time.monotonic()
    r = sync(base, u["access_token"])
    if time.monotonic() - issued_at >= LIFETIME_MS / 1000 - 1:
        pytest.skip("the machine is too slow to sync within the token's lifetime")
    assert_ok(r)
    time.sleep(u["expires_in_ms"] / 1000 + 0.8)
    assert_unknown_token(sync(base, u["access_token"]), soft_logout=True)
