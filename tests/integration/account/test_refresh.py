"""Refresh tokens: POST /refresh, rotation, soft logout on expiry."""

import time

import pytest

from matrix_helpers import (
    CLIENT_V3,
    assert_error,
    assert_ok,
    assert_token_works,
    assert_unknown_token,
    call,
    describe,
    login,
    new_user,
    uia_password,
    whoami,
)

REFRESH = f"{CLIENT_V3}/refresh"


def refresh(base, token):
    return call(base, "POST", REFRESH, {"refresh_token": token})


def assert_refreshed(r):
    body = assert_ok(r)
    assert isinstance(body.get("access_token"), str) and body["access_token"], body
    assert isinstance(body.get("refresh_token"), str) and body["refresh_token"], body
    assert isinstance(body.get("expires_in_ms"), int) and body["expires_in_ms"] > 0, body
    return body


@pytest.fixture
def ruser(base):
    return new_user(base, refresh_token=True)


def test_refresh_rotates(base, ruser):
    new = assert_refreshed(refresh(base, ruser["refresh_token"]))
    assert new["access_token"] != ruser["access_token"]
    assert new["refresh_token"] != ruser["refresh_token"]
    me = assert_token_works(base, new["access_token"], ruser["user_id"])
    assert me["device_id"] == ruser["device_id"], me


def test_old_refresh_token_dies_once_new_access_token_used(base, ruser):
    new = assert_refreshed(refresh(base, ruser["refresh_token"]))
    assert_token_works(base, new["access_token"], ruser["user_id"])
    assert_error(refresh(base, ruser["refresh_token"]), 401, "M_UNKNOWN_TOKEN")
    # The new refresh token still works.
    newer = assert_refreshed(refresh(base, new["refresh_token"]))
    assert_token_works(base, newer["access_token"], ruser["user_id"])


def test_old_refresh_token_dies_once_new_refresh_token_used(base, ruser):
    new = assert_refreshed(refresh(base, ruser["refresh_token"]))
    assert_refreshed(refresh(base, new["refresh_token"]))
    assert_error(refresh(base, ruser["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_refresh_chain(base, ruser):
    tokens = ruser
    for _ in range(3):
        tokens = assert_refreshed(refresh(base, tokens["refresh_token"]))
        assert_token_works(base, tokens["access_token"], ruser["user_id"])


def test_refresh_from_login(base, user):
    out = login(base, user["username"], user["password"], refresh_token=True)
    new = assert_refreshed(refresh(base, out["refresh_token"]))
    me = assert_token_works(base, new["access_token"], user["user_id"])
    assert me["device_id"] == out["device_id"]


def test_garbage_refresh_token(base):
    assert_error(refresh(base, "definitely-not-a-refresh-token"), 401, "M_UNKNOWN_TOKEN")


def test_access_token_is_not_a_refresh_token(base, ruser):
    assert_error(refresh(base, ruser["access_token"]), 401, "M_UNKNOWN_TOKEN")


def test_refresh_after_logout(base, ruser):
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=ruser["access_token"]))
    assert_error(refresh(base, ruser["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_refresh_missing_field(base):
    assert_error(call(base, "POST", REFRESH, {}), 400, "M_BAD_JSON")


def test_refresh_wrong_type(base):
    assert_error(call(base, "POST", REFRESH, {"refresh_token": 42}), 400, "M_BAD_JSON")


def test_refresh_not_json(base):
    assert_error(call(base, "POST", REFRESH, data="{bad"), 400, "M_NOT_JSON")


# ---------------------------------------------------------------- expiry / soft logout

LIFETIME_MS = 3000
LIFETIME_VARS = {"ACCESS_TOKEN_LIFETIME_SECS": str(LIFETIME_MS // 1000)}


@pytest.fixture(scope="module")
def short_server(stratus_factory):
    return stratus_factory(LIFETIME_VARS)


def test_expired_token_soft_logout(short_server):
    base = short_server.base
    u = new_user(base, refresh_token=True)
    issued_at = time.monotonic()
    assert 0 < u["expires_in_ms"] <= LIFETIME_MS, u
    r = whoami(base, u["access_token"])
    if time.monotonic() - issued_at < LIFETIME_MS / 1000 - 1:  # not already expired on a slow machine
        assert_ok(r)
    time.sleep(u["expires_in_ms"] / 1000 + 0.8)
    assert_unknown_token(whoami(base, u["access_token"]), soft_logout=True)
    new = assert_refreshed(refresh(base, u["refresh_token"]))
    me = assert_token_works(base, new["access_token"], u["user_id"])
    assert me["device_id"] == u["device_id"]


def test_expired_login_token_soft_logout(short_server):
    base = short_server.base
    u = new_user(base)
    out = login(base, u["username"], u["password"], refresh_token=True)
    assert 0 < out["expires_in_ms"] <= LIFETIME_MS, out
    time.sleep(out["expires_in_ms"] / 1000 + 0.8)
    assert_unknown_token(whoami(base, out["access_token"]), soft_logout=True)
    new = assert_refreshed(refresh(base, out["refresh_token"]))
    assert_token_works(base, new["access_token"], u["user_id"])


def test_logged_out_token_is_hard_logout_even_on_short_lifetime(short_server):
    base = short_server.base
    u = new_user(base, refresh_token=True)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=u["access_token"]))
    assert_unknown_token(whoami(base, u["access_token"]), soft_logout=False)


# ---------------------------------------------------------------- refresh tokens die with their session


def test_refresh_token_dies_on_password_change(base, user):
    other = login(base, user["username"], user["password"], refresh_token=True)
    r = uia_password(
        base,
        "POST",
        f"{CLIENT_V3}/account/password",
        {"new_password": "rotated-password"},
        user["access_token"],
        user["user_id"],
        user["password"],
    )
    assert_ok(r)
    assert_error(refresh(base, other["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_refresh_token_dies_on_logout_all(base, user):
    other = login(base, user["username"], user["password"], refresh_token=True)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout/all", {}, token=user["access_token"]))
    assert_error(refresh(base, other["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_refresh_token_dies_on_device_delete(base, user):
    other = login(base, user["username"], user["password"], refresh_token=True)
    r = uia_password(
        base,
        "DELETE",
        f"{CLIENT_V3}/devices/{other['device_id']}",
        {},
        user["access_token"],
        user["user_id"],
        user["password"],
    )
    assert_ok(r)
    assert_error(refresh(base, other["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_refresh_token_dies_on_deactivate(base):
    u = new_user(base, refresh_token=True)
    r = uia_password(
        base, "POST", f"{CLIENT_V3}/account/deactivate", {}, u["access_token"], u["user_id"], u["password"]
    )
    assert_ok(r)
    assert_error(refresh(base, u["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_relogin_same_device_kills_old_refresh_token(base, user):
    first = login(base, user["username"], user["password"], refresh_token=True, device_id="RELOGINDEV")
    login(base, user["username"], user["password"], device_id="RELOGINDEV")
    assert_error(refresh(base, first["refresh_token"]), 401, "M_UNKNOWN_TOKEN")


def test_old_refresh_token_valid_until_new_tokens_used(base, ruser):
    """Spec: the old refresh token stays valid until the new access or refresh token is used,
    so a client that lost the first /refresh response can repeat it."""
    first = assert_refreshed(refresh(base, ruser["refresh_token"]))
    again = assert_refreshed(refresh(base, ruser["refresh_token"]))
    assert again["access_token"] != first["access_token"]
    me = assert_token_works(base, again["access_token"], ruser["user_id"])
    assert me["device_id"] == ruser["device_id"]


def test_repeated_refresh_revokes_earlier_pair(base, ruser):
    """Synapse: refreshing the same token again replaces (deletes) the pair issued before,
    so one refresh token never has two live descendants."""
    first = assert_refreshed(refresh(base, ruser["refresh_token"]))
    again = assert_refreshed(refresh(base, ruser["refresh_token"]))
    assert_unknown_token(whoami(base, first["access_token"]), soft_logout=False)
    assert_error(refresh(base, first["refresh_token"]), 401, "M_UNKNOWN_TOKEN")
    assert_token_works(base, again["access_token"], ruser["user_id"])


def test_concurrent_refresh_leaves_one_live_session(base, ruser):
    """Racing the same refresh token must not fork the session: whatever the parallel
    /refresh calls return, afterwards at most one of the issued access tokens works."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    def attempt(_):
        return requests.post(f"{base}{REFRESH}", json={"refresh_token": ruser["refresh_token"]}, timeout=60)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, range(6)))
    issued = [r.json()["access_token"] for r in results if r.status_code == 200]
    assert issued, [describe(r) for r in results]
    live = [t for t in issued if whoami(base, t).status_code == 200]
    assert len(live) <= 1, f"{len(live)} of {len(issued)} access tokens from one refresh token are live"


def test_refresh_token_is_not_an_access_token(base, ruser):
    assert_unknown_token(whoami(base, ruser["refresh_token"]), soft_logout=False)
