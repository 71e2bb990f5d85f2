"""GET/POST /login (password and token), /login/get_token."""

import pytest

from matrix_helpers import (
    CLIENT_V1,
    CLIENT_V3,
    assert_error,
    assert_ok,
    assert_token_dead,
    assert_token_works,
    call,
    device_ids,
    login,
    login_raw,
    password_auth,
    uia_password,
    uia_start,
    unique_username,
)


def pw_body(user, password, **kw):
    b = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}
    b.update(kw)
    return b


def test_login_flows(base):
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/login"))
    types = [f["type"] for f in body["flows"]]
    assert "m.login.password" in types, body
    assert "m.login.token" in types, body


def test_login_localpart(base, user, server_name):
    out = login(base, user["username"], user["password"])
    assert out["user_id"] == user["user_id"]
    assert isinstance(out["access_token"], str) and out["access_token"]
    assert isinstance(out["device_id"], str) and out["device_id"]
    assert out["access_token"] != user["access_token"]
    assert out["device_id"] != user["device_id"]
    assert out["home_server"] == server_name, out
    if "well_known" in out:
        assert isinstance(out["well_known"]["m.homeserver"]["base_url"], str), out
    assert_token_works(base, out["access_token"], user["user_id"])
    # The registration session is untouched by a second login.
    assert_token_works(base, user["access_token"], user["user_id"])


def test_login_full_user_id(base, user):
    out = login(base, user["user_id"], user["password"])
    assert out["user_id"] == user["user_id"]


def test_login_deprecated_user_field(base, user):
    r = login_raw(base, {"type": "m.login.password", "user": user["username"], "password": user["password"]})
    out = assert_ok(r)
    assert out["user_id"] == user["user_id"]


def test_login_deprecated_user_field_full_id(base, user):
    r = login_raw(base, {"type": "m.login.password", "user": user["user_id"], "password": user["password"]})
    assert assert_ok(r)["user_id"] == user["user_id"]


def test_login_device_id_and_display_name(base, user):
    dev = "LOGINDEV" + unique_username("").replace("-", "").upper()[:8]
    out = login(base, user["username"], user["password"], device_id=dev, initial_device_display_name="Laptop")
    assert out["device_id"] == dev
    d = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices/{dev}", token=out["access_token"]))
    assert d["display_name"] == "Laptop", d


def test_login_existing_device_replaces_token(base, user):
    dev = "REUSE" + unique_username("").replace("-", "").upper()[:8]
    first = login(base, user["username"], user["password"], device_id=dev)
    second = login(base, user["username"], user["password"], device_id=dev)
    assert second["device_id"] == dev
    assert second["access_token"] != first["access_token"]
    assert_token_dead(base, first["access_token"])
    assert_token_works(base, second["access_token"], user["user_id"])
    ids = device_ids(base, second["access_token"])
    assert ids.count(dev) == 1, ids


def test_login_refresh_token(base, user):
    out = login(base, user["username"], user["password"], refresh_token=True)
    assert isinstance(out.get("refresh_token"), str) and out["refresh_token"], out
    assert isinstance(out.get("expires_in_ms"), int) and out["expires_in_ms"] > 0, out


def test_login_without_refresh_has_no_refresh_token(base, user):
    out = login(base, user["username"], user["password"])
    assert "refresh_token" not in out, out


def test_wrong_password(base, user):
    assert_error(login_raw(base, pw_body(user["username"], "wrong-password")), 403, "M_FORBIDDEN")


def test_wrong_password_full_id(base, user):
    assert_error(login_raw(base, pw_body(user["user_id"], "wrong-password")), 403, "M_FORBIDDEN")


def test_unknown_user(base):
    assert_error(login_raw(base, pw_body(unique_username("ghost"), "whatever")), 403, "M_FORBIDDEN")


def test_user_on_other_server(base, user):
    other = "@" + user["username"] + ":other.example.org"
    assert_error(login_raw(base, pw_body(other, user["password"])), 403, "M_FORBIDDEN")


def test_empty_password(base, user):
    assert_error(login_raw(base, pw_body(user["username"], "")), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("login_type", ["m.login.dummy", "m.login.sso", "org.example.custom", "m.login.unknown"])
def test_unknown_login_type(base, user, login_type):
    r = login_raw(base, {"type": login_type, "identifier": {"type": "m.id.user", "user": user["username"]}})
    assert_error(r, 400, "M_UNKNOWN")


@pytest.mark.parametrize(
    "body",
    [
        {"identifier": {"type": "m.id.user", "user": "someone"}, "password": "x"},  # no type
        {"type": 5, "password": "x"},
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "someone"}},  # no password
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "someone"}, "password": 5},
        {"type": "m.login.password", "identifier": "someone", "password": "x"},
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 42}, "password": "x"},
        {"type": "m.login.password", "user": ["someone"], "password": "x"},
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "someone"},
            "password": "x",
            "device_id": 7,
        },
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "someone"},
            "password": "x",
            "refresh_token": "please",
        },
    ],
)
def test_bad_shapes(base, body):
    assert_error(login_raw(base, body), 400, "M_BAD_JSON")


def test_not_json(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/login", data="{bad"), 400, "M_NOT_JSON")


def test_login_deactivated_user(base, user):
    r = uia_password(
        base, "POST", f"{CLIENT_V3}/account/deactivate", {}, user["access_token"], user["user_id"], user["password"]
    )
    assert_ok(r)
    assert_error(login_raw(base, pw_body(user["username"], user["password"])), 403, "M_USER_DEACTIVATED")


def test_login_deactivated_user_wrong_password_learns_nothing(base, user):
    """Only the right password learns that the account is deactivated; a guess gets the
    same answer as for any wrong password."""
    r = uia_password(
        base, "POST", f"{CLIENT_V3}/account/deactivate", {}, user["access_token"], user["user_id"], user["password"]
    )
    assert_ok(r)
    wrong = assert_error(login_raw(base, pw_body(user["username"], "not-the-password")), 403, "M_FORBIDDEN")
    other = assert_error(login_raw(base, pw_body(unique_username(), "not-the-password")), 403, "M_FORBIDDEN")
    assert wrong["error"] == other["error"]
    # The right password still learns it, and still gets no session.
    assert_error(login_raw(base, pw_body(user["username"], user["password"])), 403, "M_USER_DEACTIVATED")


# ---------------------------------------------------------------- m.login.token


def get_login_token(base, user):
    path = f"{CLIENT_V1}/login/get_token"
    uia = uia_start(base, "POST", path, {}, user["access_token"])
    assert uia["flows"] == [{"stages": ["m.login.password"]}], uia
    r = call(
        base,
        "POST",
        path,
        {"auth": password_auth(user["user_id"], user["password"], uia["session"])},
        token=user["access_token"],
    )
    return assert_ok(r)


def test_get_token_and_login(base, user):
    out = get_login_token(base, user)
    assert isinstance(out["login_token"], str) and out["login_token"], out
    assert isinstance(out["expires_in_ms"], int) and out["expires_in_ms"] > 0, out
    logged = assert_ok(login_raw(base, {"type": "m.login.token", "token": out["login_token"]}))
    assert logged["user_id"] == user["user_id"]
    assert logged["device_id"] != user["device_id"]
    assert_token_works(base, logged["access_token"], user["user_id"])


def test_login_token_single_use(base, user):
    out = get_login_token(base, user)
    assert_ok(login_raw(base, {"type": "m.login.token", "token": out["login_token"]}))
    assert_error(login_raw(base, {"type": "m.login.token", "token": out["login_token"]}), 403, "M_FORBIDDEN")


def test_login_token_garbage(base):
    assert_error(login_raw(base, {"type": "m.login.token", "token": "not-a-login-token"}), 403, "M_FORBIDDEN")


def test_login_token_missing_token_field(base):
    assert_error(login_raw(base, {"type": "m.login.token"}), 400, "M_BAD_JSON")


def test_get_token_requires_auth(base):
    assert_error(call(base, "POST", f"{CLIENT_V1}/login/get_token", {}), 401, "M_MISSING_TOKEN")


def test_get_token_wrong_password(base, user):
    path = f"{CLIENT_V1}/login/get_token"
    r = uia_password(base, "POST", path, {}, user["access_token"], user["user_id"], "wrong-password")
    err = assert_error(r, 401, "M_FORBIDDEN")
    assert "flows" in err and "session" in err, err
    assert "login_token" not in err


def test_get_token_other_users_password(base, user, user2):
    """UIA must authenticate the token's owner, not whoever's credentials are supplied."""
    path = f"{CLIENT_V1}/login/get_token"
    r = uia_password(base, "POST", path, {}, user["access_token"], user2["user_id"], user2["password"])
    assert r.status_code in (401, 403), r.text
    assert "login_token" not in r.json()


def test_login_with_other_users_device_id(base, user, user2):
    """Device IDs are per user: reusing another user's device ID must not touch their session."""
    out = login(base, user2["username"], user2["password"], device_id=user["device_id"])
    assert out["device_id"] == user["device_id"]
    assert out["user_id"] == user2["user_id"]
    assert_token_works(base, user["access_token"], user["user_id"])
    assert_token_works(base, out["access_token"], user2["user_id"])
    assert_token_works(base, user2["access_token"], user2["user_id"])
    # And logging that one out leaves the first user's device alone.
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=out["access_token"]))
    assert_token_works(base, user["access_token"], user["user_id"])
    assert user["device_id"] in device_ids(base, user["access_token"])


def test_login_token_with_device_id(base, user):
    out = get_login_token(base, user)
    r = login_raw(
        base,
        {
            "type": "m.login.token",
            "token": out["login_token"],
            "device_id": "TOKENDEV",
            "initial_device_display_name": "via login token",
        },
    )
    logged = assert_ok(r)
    assert logged["device_id"] == "TOKENDEV"
    d = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices/TOKENDEV", token=logged["access_token"]))
    assert d["display_name"] == "via login token"


def test_login_token_of_deactivated_user(base, user):
    out = get_login_token(base, user)
    r = uia_password(
        base, "POST", f"{CLIENT_V3}/account/deactivate", {}, user["access_token"], user["user_id"], user["password"]
    )
    assert_ok(r)
    r = login_raw(base, {"type": "m.login.token", "token": out["login_token"]})
    assert r.status_code == 403, r.text
    assert r.json()["errcode"] in ("M_FORBIDDEN", "M_USER_DEACTIVATED"), r.text


def test_relogin_keeps_existing_device_display_name(base, user):
    """Spec (POST /login): initial_device_display_name is "Ignored if device_id corresponds
    to a known device"."""
    dev = "KEEPNAME" + unique_username("").replace("-", "").upper()[:8]
    first = login(base, user["username"], user["password"], device_id=dev, initial_device_display_name="original")
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/devices/{dev}", {"display_name": "renamed"}, token=first["access_token"]))
    again = login(base, user["username"], user["password"], device_id=dev, initial_device_display_name="clobbered")
    d = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices/{dev}", token=again["access_token"]))
    assert d["display_name"] == "renamed", d


def test_login_username_case_insensitive(base, user):
    """Synapse matches the user part of a login case-insensitively (user IDs are lowercase)."""
    out = login(base, user["username"].upper(), user["password"])
    assert out["user_id"] == user["user_id"]


def test_login_token_single_use_under_concurrency(base, user):
    """Eight simultaneous logins with one m.login.token: exactly one succeeds."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    token = get_login_token(base, user)["login_token"]

    def attempt(_):
        return requests.post(f"{base}{CLIENT_V3}/login", json={"type": "m.login.token", "token": token}, timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sorted(r.status_code for r in results) == [200] + [403] * 7, [r.text for r in results]


def test_login_token_is_not_an_access_token(base, user):
    out = get_login_token(base, user)
    assert_token_dead(base, out["login_token"])
    # ... and probing with it did not consume it.
    assert_ok(login_raw(base, {"type": "m.login.token", "token": out["login_token"]}))
