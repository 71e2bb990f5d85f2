"""POST /register (open, token and closed modes), /register/available, token validity."""

import re

import pytest

from matrix_helpers import (
    CLIENT_V1,
    CLIENT_V3,
    DEFAULT_PASSWORD,
    RESERVED,
    assert_error,
    assert_error_free_uia,
    assert_ok,
    assert_token_works,
    call,
    describe,
    json_of,
    login,
    register,
    register_raw,
    unique_username,
)


LOCALPART_RE = re.compile(r"^[a-z0-9._=\-/+]+$")


def reg_once(base, body):
    """A one-shot registration attempt with dummy auth and no session."""
    body = dict(body)
    body.setdefault("auth", {"type": "m.login.dummy"})
    return register_raw(base, body)


def available(base, username):
    return call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": username})


# ---------------------------------------------------------------- open mode: the UIA dance


def test_first_call_returns_dummy_flow(base):
    r = register_raw(base, {"username": unique_username(), "password": DEFAULT_PASSWORD})
    body = assert_error_free_uia(r)
    assert body["flows"] == [{"stages": ["m.login.dummy"]}], body
    assert body["params"] == {}, body


@pytest.mark.parametrize(
    "probe",
    [{"initial_device_display_name": "Element Web"}, {}, {"username": "PLACEHOLDER"}],
)
def test_flows_probe_needs_no_password(base, server_name, probe):
    """Element's registration form first POSTs without `auth` or `password` to learn the
    flows; it must get the 401, as from Synapse, not a 400 for the missing password."""
    name = unique_username()
    probe = {k: (name if v == "PLACEHOLDER" else v) for k, v in probe.items()}
    body = assert_error_free_uia(register_raw(base, probe))
    assert body["flows"] == [{"stages": ["m.login.dummy"]}], body
    # Element then completes the stage in the same session, now with the password.
    r = register_raw(
        base,
        {
            "username": name,
            "password": DEFAULT_PASSWORD,
            "initial_device_display_name": "Element Web",
            "auth": {"type": "m.login.dummy", "session": body["session"]},
        },
    )
    out = assert_ok(r)
    assert out["user_id"] == f"@{name}:{server_name}", out
    assert_token_works(base, out["access_token"], out["user_id"])


def test_stage_without_password_keeps_the_session(base):
    name = unique_username()
    session = assert_error_free_uia(register_raw(base, {}))["session"]
    r = register_raw(base, {"username": name, "auth": {"type": "m.login.dummy", "session": session}})
    assert_error(r, 400, "M_MISSING_PARAM")
    assert_ok(available(base, name))
    # The refused attempt did not use the session up.
    r = register_raw(
        base,
        {"username": name, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy", "session": session}},
    )
    assert_ok(r)


def test_empty_body_is_not_json(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/register", data=""), 400, "M_NOT_JSON")


def test_register_with_session(base, server_name):
    name = unique_username()
    out = register(base, name)
    assert out["user_id"] == f"@{name}:{server_name}", out
    assert isinstance(out["access_token"], str) and out["access_token"], out
    assert isinstance(out["device_id"], str) and out["device_id"], out
    assert "refresh_token" not in out, out
    assert_token_works(base, out["access_token"], out["user_id"])


def test_register_dummy_without_session(base, server_name):
    name = unique_username()
    out = assert_ok(reg_once(base, {"username": name, "password": DEFAULT_PASSWORD}))
    assert out["user_id"] == f"@{name}:{server_name}", out
    assert_token_works(base, out["access_token"], out["user_id"])


def test_registered_user_can_log_in(base):
    name = unique_username()
    out = register(base, name, "s3cret-pass")
    logged = login(base, name, "s3cret-pass")
    assert logged["user_id"] == out["user_id"]
    assert logged["device_id"] != out["device_id"]


def test_username_is_lowercased(base, server_name):
    name = unique_username("MiXeD")
    out = register(base, name)
    assert out["user_id"] == f"@{name.lower()}:{server_name}", out
    login(base, name.lower())


def test_allowed_punctuation(base, server_name):
    name = "a.b_c=d-e/f+g" + unique_username("x")
    out = register(base, name)
    assert out["user_id"] == f"@{name}:{server_name}", out


def test_generated_username(base, server_name):
    out = register(base, generate=True)
    user_id = out["user_id"]
    assert user_id.endswith(":" + server_name), out
    localpart = user_id[1:].rsplit(":" + server_name, 1)[0]
    assert LOCALPART_RE.match(localpart), out
    assert not localpart.startswith("_"), out
    assert_token_works(base, out["access_token"], user_id)
    # Two generated users differ.
    out2 = register(base, generate=True)
    assert out2["user_id"] != user_id


def test_device_id_and_display_name_honoured(base):
    dev = "DEV" + unique_username("").replace("-", "").upper()
    out = register(base, device_id=dev, initial_device_display_name="Test phone")
    assert out["device_id"] == dev, out
    d = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices/{dev}", token=out["access_token"]))
    assert d["device_id"] == dev
    assert d["display_name"] == "Test phone", d


def test_refresh_token_requested(base):
    out = register(base, refresh_token=True)
    assert isinstance(out.get("refresh_token"), str) and out["refresh_token"], out
    assert isinstance(out.get("expires_in_ms"), int) and out["expires_in_ms"] > 0, out
    assert_token_works(base, out["access_token"], out["user_id"])


def test_inhibit_login(base):
    name = unique_username()
    out = register(base, name, inhibit_login=True)
    assert "user_id" in out
    assert "access_token" not in out, out
    assert "device_id" not in out, out
    # The account exists and can log in.
    login(base, name)


def test_password_512_chars_ok(base):
    name = unique_username()
    pw = "p" * 512
    register(base, name, pw)
    login(base, name, pw)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "username",
    [
        "has space",
        "_leading_underscore",
        "ünïcödé",
        "colon:inside",
        "at@sign",
        "hash#tag",
        "semi;colon",
        "bang!",
        "quote\"",
        "tab\tname",
        "a" * 300,
    ],
)
def test_invalid_username(base, username):
    r = reg_once(base, {"username": username, "password": DEFAULT_PASSWORD})
    assert_error(r, 400, "M_INVALID_USERNAME")


def test_user_id_length_limit(base, server_name):
    # The full user ID "@" + localpart + ":" + server_name may be at most 255 bytes.
    room = 255 - 2 - len(server_name)
    prefix = unique_username("len")
    ok_name = (prefix + "x" * room)[:room]
    too_long = (prefix + "y" * (room + 1))[: room + 1]
    assert_error(reg_once(base, {"username": too_long, "password": DEFAULT_PASSWORD}), 400, "M_INVALID_USERNAME")
    out = assert_ok(reg_once(base, {"username": ok_name, "password": DEFAULT_PASSWORD}))
    assert len(out["user_id"].encode()) == 255, out


def test_username_taken(base, user):
    r = reg_once(base, {"username": user["username"], "password": DEFAULT_PASSWORD})
    assert_error(r, 400, "M_USER_IN_USE")


def test_username_taken_case_insensitive(base, user):
    r = reg_once(base, {"username": user["username"].upper(), "password": DEFAULT_PASSWORD})
    assert_error(r, 400, "M_USER_IN_USE")


def test_taken_username_keeps_original_password(base, user):
    reg_once(base, {"username": user["username"], "password": "hijack-attempt"})
    login(base, user["username"], user["password"])


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_usernames(base, name):
    assert_error(reg_once(base, {"username": name, "password": DEFAULT_PASSWORD}), 400, "M_EXCLUSIVE")


def test_reserved_username_case_insensitive(base):
    assert_error(reg_once(base, {"username": "Admin", "password": DEFAULT_PASSWORD}), 400, "M_EXCLUSIVE")


def test_guest_registration_forbidden(base):
    r = call(
        base,
        "POST",
        f"{CLIENT_V3}/register",
        {"auth": {"type": "m.login.dummy"}},
        params={"kind": "guest"},
    )
    assert_error(r, 403, "M_GUEST_ACCESS_FORBIDDEN")


def test_kind_user_explicit(base):
    r = call(
        base,
        "POST",
        f"{CLIENT_V3}/register",
        {"username": unique_username(), "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}},
        params={"kind": "user"},
    )
    assert_ok(r)


def test_missing_password(base):
    name = unique_username()
    assert_error(reg_once(base, {"username": name}), 400, "M_MISSING_PARAM")
    # Nothing was created.
    assert_ok(available(base, name))


def test_password_too_long(base):
    name = unique_username()
    r = reg_once(base, {"username": name, "password": "p" * 513})
    assert_error(r, 400, "M_INVALID_PARAM")
    assert_ok(available(base, name))


@pytest.mark.parametrize(
    "body",
    [
        {"username": 123, "password": DEFAULT_PASSWORD},
        {"username": ["list"], "password": DEFAULT_PASSWORD},
        {"username": "x", "password": 12345},
        {"username": "x", "password": DEFAULT_PASSWORD, "device_id": 5},
        {"username": "x", "password": DEFAULT_PASSWORD, "inhibit_login": "yes"},
        {"username": "x", "password": DEFAULT_PASSWORD, "refresh_token": "yes"},
        {"username": "x", "password": DEFAULT_PASSWORD, "initial_device_display_name": {}},
        {"username": "x", "password": DEFAULT_PASSWORD, "auth": "m.login.dummy"},
    ],
)
def test_wrong_types(base, body):
    body = dict(body)
    if body.get("username") == "x":
        body["username"] = unique_username()
    r = register_raw(base, body) if "auth" in body else reg_once(base, body)
    assert_error(r, 400, "M_BAD_JSON")


def test_not_json(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/register", data="{bad"), 400, "M_NOT_JSON")


def test_array_body(base):
    assert_error(call(base, "POST", f"{CLIENT_V3}/register", data="[]"), 400, "M_BAD_JSON")


# ---------------------------------------------------------------- /register/available


def test_available_fresh(base):
    assert assert_ok(available(base, unique_username())) == {"available": True}


def test_available_taken(base, user):
    assert_error(available(base, user["username"]), 400, "M_USER_IN_USE")


def test_available_taken_uppercase(base, user):
    assert_error(available(base, user["username"].upper()), 400, "M_USER_IN_USE")


@pytest.mark.parametrize("name", ["bad name", "_under", "üni", "a:b", "x" * 300])
def test_available_invalid(base, name):
    assert_error(available(base, name), 400, "M_INVALID_USERNAME")


@pytest.mark.parametrize("name", ["admin", "root", "stratus", "Support"])
def test_available_reserved(base, name):
    assert_error(available(base, name), 400, "M_EXCLUSIVE")


def test_available_missing_param(base):
    assert_error(call(base, "GET", f"{CLIENT_V3}/register/available"), 400, "M_MISSING_PARAM")


def test_available_then_taken(base):
    name = unique_username()
    assert_ok(available(base, name))
    register(base, name)
    assert_error(available(base, name), 400, "M_USER_IN_USE")


# ---------------------------------------------------------------- token mode

TOKEN_VARS = {"REGISTRATION_MODE": "token", "REGISTRATION_TOKENS": "tok1,tok2"}
TOKEN_FLOWS = (
    [{"stages": ["m.login.registration_token"]}],
    [{"stages": ["m.login.registration_token", "m.login.dummy"]}],
)


def register_with_token(base, body, token):
    """Run the advertised token flow; returns the final response."""
    body = dict(body)
    uia = assert_error_free_uia(register_raw(base, body))
    assert uia["flows"] in TOKEN_FLOWS, uia
    stages = uia["flows"][0]["stages"]
    r = None
    for stage in stages:
        if stage == "m.login.registration_token":
            body["auth"] = {"type": stage, "token": token, "session": uia["session"]}
        else:
            body["auth"] = {"type": stage, "session": uia["session"]}
        r = register_raw(base, body)
        if r.status_code != 401:
            break
        assert stage in (json_of(r).get("completed") or []), describe(r)
    return r


@pytest.fixture(scope="module")
def token_server(stratus_factory):
    return stratus_factory(TOKEN_VARS)


def test_token_mode_flows(token_server):
    r = register_raw(token_server.base, {"username": unique_username(), "password": DEFAULT_PASSWORD})
    body = assert_error_free_uia(r)
    # The contract: a single stage. Synapse advertises [registration_token, dummy]; both
    # satisfy the spec, and the tests below follow whatever stages are advertised.
    assert body["flows"] in TOKEN_FLOWS, body


@pytest.mark.parametrize("tok", ["tok1", "tok2"])
def test_token_mode_register(token_server, tok):
    base = token_server.base
    name = unique_username()
    out = assert_ok(register_with_token(base, {"username": name, "password": DEFAULT_PASSWORD}, tok))
    assert out["user_id"] == f"@{name}:{token_server.server_name}", out
    assert_token_works(base, out["access_token"], out["user_id"])


def test_token_mode_wrong_token(token_server):
    base = token_server.base
    name = unique_username()
    body = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_error_free_uia(register_raw(base, body))
    body["auth"] = {"type": "m.login.registration_token", "token": "tok3", "session": uia["session"]}
    r = register_raw(base, body)
    # Contract: M_FORBIDDEN (the spec's UIA example). Synapse says M_UNAUTHORIZED here.
    err = assert_error(r, 401, "M_FORBIDDEN")
    assert err.get("flows") in TOKEN_FLOWS, err
    assert isinstance(err.get("session"), str), err
    assert "m.login.registration_token" not in err.get("completed", []), err
    assert_ok(available(base, name))


def test_token_mode_dummy_is_not_enough(token_server):
    base = token_server.base
    name = unique_username()
    body = {"username": name, "password": DEFAULT_PASSWORD}
    uia = assert_error_free_uia(register_raw(base, body))
    body["auth"] = {"type": "m.login.dummy", "session": uia["session"]}
    r = register_raw(base, body)
    assert r.status_code == 401, describe(r)
    assert "access_token" not in json_of(r)
    assert_ok(available(base, name))


def test_token_validity(token_server):
    path = f"{CLIENT_V1}/register/m.login.registration_token/validity"
    assert assert_ok(call(token_server.base, "GET", path, params={"token": "tok1"})) == {"valid": True}
    assert assert_ok(call(token_server.base, "GET", path, params={"token": "tok2"})) == {"valid": True}
    assert assert_ok(call(token_server.base, "GET", path, params={"token": "nope"})) == {"valid": False}
    assert assert_ok(call(token_server.base, "GET", path, params={"token": "TOK1"})) == {"valid": False}


def test_token_validity_missing_param(token_server):
    path = f"{CLIENT_V1}/register/m.login.registration_token/validity"
    assert_error(call(token_server.base, "GET", path), 400, "M_MISSING_PARAM")


# ---------------------------------------------------------------- closed mode


@pytest.fixture(scope="module")
def closed_server(stratus_factory):
    return stratus_factory({"REGISTRATION_MODE": "closed"})


def test_closed_mode_register_forbidden(closed_server):
    r = register_raw(closed_server.base, {"username": unique_username(), "password": DEFAULT_PASSWORD})
    assert_error(r, 403, "M_FORBIDDEN")
    r = reg_once(closed_server.base, {"username": unique_username(), "password": DEFAULT_PASSWORD})
    assert_error(r, 403, "M_FORBIDDEN")


def test_closed_mode_still_serves_login_flows(closed_server):
    body = assert_ok(call(closed_server.base, "GET", f"{CLIENT_V3}/login"))
    assert {"type": "m.login.password"} in [{"type": f["type"]} for f in body["flows"]]


# ---------------------------------------------------------------- races


def test_concurrent_registration_same_name(base):
    """Five simultaneous registrations of one name: exactly one wins, the rest get M_USER_IN_USE."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    name = unique_username("race")

    def attempt(i):
        return requests.post(
            f"{base}{CLIENT_V3}/register",
            json={"username": name, "password": f"pw-{i}", "auth": {"type": "m.login.dummy"}},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(attempt, range(5)))
    ok = [r for r in results if r.status_code == 200]
    assert len(ok) == 1, [describe(r) for r in results]
    for r in results:
        if r.status_code != 200:
            assert_error(r, 400, "M_USER_IN_USE")
    winner = results.index(ok[0])
    login(base, name, f"pw-{winner}")
