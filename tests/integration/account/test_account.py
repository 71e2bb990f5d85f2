"""whoami, logout, logout/all, password change, deactivation."""

import pytest

from matrix_helpers import (
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
    register_raw,
    uia_password,
    uia_start,
    whoami,
)

PASSWORD_PATH = f"{CLIENT_V3}/account/password"
DEACTIVATE_PATH = f"{CLIENT_V3}/account/deactivate"


def pw_login_raw(base, user, password):
    return login_raw(
        base,
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password},
    )


# ---------------------------------------------------------------- whoami


def test_whoami(base, user):
    body = assert_ok(whoami(base, user["access_token"]))
    assert body == {"user_id": user["user_id"], "device_id": user["device_id"], "is_guest": False}


def test_whoami_query_param_token(base, user):
    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", params={"access_token": user["access_token"]})
    assert assert_ok(r)["user_id"] == user["user_id"]


def test_whoami_second_device(base, user):
    other = login(base, user["username"], user["password"])
    body = assert_ok(whoami(base, other["access_token"]))
    assert body["device_id"] == other["device_id"] != user["device_id"]


def test_whoami_missing_token(base):
    assert_error(call(base, "GET", f"{CLIENT_V3}/account/whoami"), 401, "M_MISSING_TOKEN")


def test_whoami_unknown_token(base):
    assert_token_dead(base, "syt_bm9ib2R5_notreal_000000")


def test_whoami_token_of_wrong_case(base, user):
    tok = user["access_token"]
    flipped = tok.swapcase()
    if flipped == tok:
        pytest.skip("token has no letters")
    assert_token_dead(base, flipped)


# ---------------------------------------------------------------- logout


def test_logout(base, user):
    other = login(base, user["username"], user["password"])
    assert other["device_id"] in device_ids(base, user["access_token"])
    r = call(base, "POST", f"{CLIENT_V3}/logout", {}, token=other["access_token"])
    assert assert_ok(r) == {}
    assert_token_dead(base, other["access_token"])
    assert other["device_id"] not in device_ids(base, user["access_token"])
    assert_token_works(base, user["access_token"], user["user_id"])


def test_logout_without_body(base, user):
    # Many clients (nio, Element) POST /logout with no body at all.
    r = call(base, "POST", f"{CLIENT_V3}/logout", token=user["access_token"])
    assert assert_ok(r) == {}
    assert_token_dead(base, user["access_token"])


def test_logout_twice(base, user):
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=user["access_token"]))
    r = call(base, "POST", f"{CLIENT_V3}/logout", {}, token=user["access_token"])
    assert_error(r, 401, "M_UNKNOWN_TOKEN")


def test_logout_requires_auth(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/logout", {}), 401, "M_MISSING_TOKEN")


def test_logout_all(base, user, user2):
    s2 = login(base, user["username"], user["password"])
    s3 = login(base, user["username"], user["password"])
    r = call(base, "POST", f"{CLIENT_V3}/logout/all", {}, token=s2["access_token"])
    assert assert_ok(r) == {}
    for tok in (user["access_token"], s2["access_token"], s3["access_token"]):
        assert_token_dead(base, tok)
    # Other users are unaffected.
    assert_token_works(base, user2["access_token"], user2["user_id"])
    # The user can log in again and has exactly one device.
    fresh = login(base, user["username"], user["password"])
    assert device_ids(base, fresh["access_token"]) == [fresh["device_id"]]


def test_logout_all_requires_auth(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/logout/all", {}), 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------- password change


def change_password(base, user, new_password, **extra):
    body = {"new_password": new_password}
    body.update(extra)
    return uia_password(base, "POST", PASSWORD_PATH, body, user["access_token"], user["user_id"], user["password"])


def test_password_change_uia_challenge(base, user):
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "x-new-pass"}, user["access_token"])
    assert uia["flows"] == [{"stages": ["m.login.password"]}], uia
    # Nothing changed yet.
    login(base, user["username"], user["password"])


def test_password_change(base, user):
    other = login(base, user["username"], user["password"])
    assert assert_ok(change_password(base, user, "brand-new-password")) == {}
    assert_error(pw_login_raw(base, user["username"], user["password"]), 403, "M_FORBIDDEN")
    login(base, user["username"], "brand-new-password")
    # Other devices are logged out; the calling device stays.
    assert_token_dead(base, other["access_token"])
    assert_token_works(base, user["access_token"], user["user_id"])
    assert other["device_id"] not in device_ids(base, user["access_token"])


def test_password_change_keep_devices(base, user):
    other = login(base, user["username"], user["password"])
    assert assert_ok(change_password(base, user, "another-new-password", logout_devices=False)) == {}
    assert_token_works(base, other["access_token"], user["user_id"])
    assert_token_works(base, user["access_token"], user["user_id"])
    login(base, user["username"], "another-new-password")


def test_password_change_logout_devices_true(base, user):
    other = login(base, user["username"], user["password"])
    assert_ok(change_password(base, user, "third-new-password", logout_devices=True))
    assert_token_dead(base, other["access_token"])
    assert_token_works(base, user["access_token"], user["user_id"])


def test_password_change_wrong_current_password(base, user):
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "never-set"}, user["access_token"])
    body = {"new_password": "never-set", "auth": password_auth(user["user_id"], "wrong-password", uia["session"])}
    r = call(base, "POST", PASSWORD_PATH, body, token=user["access_token"])
    err = assert_error(r, 401, "M_FORBIDDEN")
    assert err.get("flows") == [{"stages": ["m.login.password"]}], err
    assert err.get("session"), err
    login(base, user["username"], user["password"])
    assert_error(pw_login_raw(base, user["username"], "never-set"), 403, "M_FORBIDDEN")


def test_password_change_other_users_credentials(base, user, user2):
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "never-set-2"}, user["access_token"])
    body = {"new_password": "never-set-2", "auth": password_auth(user2["user_id"], user2["password"], uia["session"])}
    r = call(base, "POST", PASSWORD_PATH, body, token=user["access_token"])
    assert r.status_code in (401, 403), r.text
    login(base, user["username"], user["password"])


def test_password_change_requires_auth(base):
    r = call(base, "POST", PASSWORD_PATH, {"new_password": "x"})
    assert_error(r, 401, "M_MISSING_TOKEN")


def test_password_change_bad_new_password_type(base, user):
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "ok-pass"}, user["access_token"])
    body = {"new_password": 12345, "auth": password_auth(user["user_id"], user["password"], uia["session"])}
    r = call(base, "POST", PASSWORD_PATH, body, token=user["access_token"])
    assert_error(r, 400, "M_BAD_JSON")
    login(base, user["username"], user["password"])


def test_password_change_too_long(base, user):
    # Get a session with a valid body, then send the bad one with auth: the server may
    # validate the body before or after UIA, the outcome must be the same.
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "ok-pass"}, user["access_token"])
    body = {"new_password": "p" * 513, "auth": password_auth(user["user_id"], user["password"], uia["session"])}
    r = call(base, "POST", PASSWORD_PATH, body, token=user["access_token"])
    assert_error(r, 400, "M_INVALID_PARAM")
    login(base, user["username"], user["password"])


def test_password_change_not_json(base, user):
    r = call(base, "POST", PASSWORD_PATH, data="{bad", token=user["access_token"])
    assert_error(r, 400, "M_NOT_JSON")


# ---------------------------------------------------------------- deactivation


def deactivate(base, user, **extra):
    return uia_password(base, "POST", DEACTIVATE_PATH, dict(extra), user["access_token"], user["user_id"], user["password"])


def test_deactivate(base, user):
    other = login(base, user["username"], user["password"])
    assert assert_ok(deactivate(base, user)) == {"id_server_unbind_result": "no-support"}
    assert_token_dead(base, user["access_token"])
    assert_token_dead(base, other["access_token"])
    assert_error(pw_login_raw(base, user["username"], user["password"]), 403, "M_USER_DEACTIVATED")
    # The name stays taken.
    r = call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": user["username"]})
    assert_error(r, 400, "M_USER_IN_USE")
    r = register_raw(
        base, {"username": user["username"], "password": "new-owner-pass", "auth": {"type": "m.login.dummy"}}
    )
    assert_error(r, 400, "M_USER_IN_USE")


def test_deactivate_uia_challenge(base, user):
    uia = uia_start(base, "POST", DEACTIVATE_PATH, {}, user["access_token"])
    assert uia["flows"] == [{"stages": ["m.login.password"]}], uia
    assert_token_works(base, user["access_token"], user["user_id"])


def test_deactivate_wrong_password(base, user):
    r = uia_password(base, "POST", DEACTIVATE_PATH, {}, user["access_token"], user["user_id"], "wrong-password")
    assert_error(r, 401, "M_FORBIDDEN")
    assert_token_works(base, user["access_token"], user["user_id"])
    login(base, user["username"], user["password"])


def test_deactivate_requires_auth(base):
    assert_error(call(base, "POST", DEACTIVATE_PATH, {}), 401, "M_MISSING_TOKEN")



def test_password_change_logout_devices_wrong_type(base, user):
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "ok-pass"}, user["access_token"])
    body = {
        "new_password": "ok-pass",
        "logout_devices": "yes",
        "auth": password_auth(user["user_id"], user["password"], uia["session"]),
    }
    assert_error(call(base, "POST", PASSWORD_PATH, body, token=user["access_token"]), 400, "M_BAD_JSON")
    login(base, user["username"], user["password"])


def test_deactivate_with_erase(base, user):
    assert assert_ok(deactivate(base, user, erase=True)) == {"id_server_unbind_result": "no-support"}
    assert_token_dead(base, user["access_token"])


def test_uia_session_not_reusable_after_completion(base, user):
    """A completed UIA session must not authorise a second, different operation."""
    s2 = login(base, user["username"], user["password"])
    s3 = login(base, user["username"], user["password"])
    path2 = f"{CLIENT_V3}/devices/{s2['device_id']}"
    uia = uia_start(base, "DELETE", path2, {}, user["access_token"])
    r = call(
        base,
        "DELETE",
        path2,
        {"auth": password_auth(user["user_id"], user["password"], uia["session"])},
        token=user["access_token"],
    )
    assert_ok(r)
    r = call(
        base,
        "DELETE",
        f"{CLIENT_V3}/devices/{s3['device_id']}",
        {"auth": {"session": uia["session"]}},
        token=user["access_token"],
    )
    assert r.status_code in (400, 401, 403), r.text
    assert_token_works(base, s3["access_token"], user["user_id"])
    r = call(base, "POST", DEACTIVATE_PATH, {"auth": {"session": uia["session"]}}, token=user["access_token"])
    assert r.status_code in (400, 401, 403), r.text
    assert_token_works(base, user["access_token"], user["user_id"])


def test_uia_other_users_session_not_usable(base, user, user2):
    """User B can't ride on a UIA session that user A completed."""
    uia = uia_start(base, "POST", PASSWORD_PATH, {"new_password": "a-new-pass"}, user["access_token"])
    body = {"new_password": "a-new-pass", "auth": password_auth(user["user_id"], user["password"], uia["session"])}
    assert_ok(call(base, "POST", PASSWORD_PATH, body, token=user["access_token"]))
    r = call(
        base,
        "POST",
        PASSWORD_PATH,
        {"new_password": "hijacked", "auth": {"session": uia["session"]}},
        token=user2["access_token"],
    )
    assert r.status_code in (400, 401, 403), r.text
    login(base, user2["username"], user2["password"])
    assert_error(pw_login_raw(base, user2["username"], "hijacked"), 403, "M_FORBIDDEN")


def test_password_change_keeps_callers_refresh_token(base, user):
    me = login(base, user["username"], user["password"], refresh_token=True)
    r = uia_password(
        base, "POST", PASSWORD_PATH, {"new_password": "rotated-pass-2"}, me["access_token"], user["user_id"], user["password"]
    )
    assert_ok(r)
    r = call(base, "POST", f"{CLIENT_V3}/refresh", {"refresh_token": me["refresh_token"]})
    body = assert_ok(r)
    assert_token_works(base, body["access_token"], user["user_id"])
    # The registration session (another device) was logged out.
    assert_token_dead(base, user["access_token"])
