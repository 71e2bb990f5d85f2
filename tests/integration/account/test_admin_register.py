"""Synapse-compatible shared-secret registration: /_synapse/admin/v1/register."""

import pytest

from matrix_helpers import (
    CLIENT_V3,
    DEFAULT_PASSWORD,
    RESERVED,
    admin_mac,
    admin_nonce,
    admin_register_raw,
    assert_error,
    assert_ok,
    assert_token_works,
    call,
    login,
    qid,
    uia_password,
    unique_username,
)

ADMIN = "/_synapse/admin/v1/register"


def assert_admin_registered(stratus, r, username):
    body = assert_ok(r)
    assert body["user_id"] == f"@{username}:{stratus.server_name}", body
    assert body["home_server"] == stratus.server_name, body
    assert isinstance(body["device_id"], str) and body["device_id"], body
    assert_token_works(stratus.base, body["access_token"], body["user_id"])
    return body


def test_nonce(base):
    n1 = admin_nonce(base)
    n2 = admin_nonce(base)
    assert n1 != n2


def test_register_user(stratus, shared_secret):
    name = unique_username("adm")
    r = admin_register_raw(stratus.base, shared_secret, name, "admin-made-pw")
    assert_admin_registered(stratus, r, name)
    assert login(stratus.base, name, "admin-made-pw")["user_id"].startswith(f"@{name}:")


def test_register_admin_flag(stratus, shared_secret):
    name = unique_username("adm")
    r = admin_register_raw(stratus.base, shared_secret, name, admin=True)
    assert_admin_registered(stratus, r, name)


def test_register_with_displayname(stratus, shared_secret):
    name = unique_username("adm")
    r = admin_register_raw(stratus.base, shared_secret, name, displayname="Shared Secret Sam")
    body = assert_admin_registered(stratus, r, name)
    prof = assert_ok(call(stratus.base, "GET", f"{CLIENT_V3}/profile/{qid(body['user_id'])}"))
    assert prof["displayname"] == "Shared Secret Sam", prof


def test_register_reserved_name(stratus, shared_secret):
    """Reserved names are refused on /register but allowed here.

    Each run consumes one reserved name; against a long-lived server the test walks
    the list until it finds one that has not been taken yet.
    """
    for name in RESERVED:
        r = admin_register_raw(stratus.base, shared_secret, name, unique_username("pw"), admin=True)
        if r.status_code == 400 and r.json().get("errcode") == "M_USER_IN_USE" and not stratus.owned:
            continue
        assert_admin_registered(stratus, r, name)
        return
    pytest.skip("every reserved name is already registered on this server")


def test_wrong_mac(base, shared_secret):
    name = unique_username("adm")
    assert_error(admin_register_raw(base, "not-the-secret", name), 403, "M_FORBIDDEN")
    assert_ok(call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": name}))


def test_mac_for_other_admin_flag(base, shared_secret):
    """The mac covers the admin flag: a notadmin mac can't be replayed with admin=true."""
    name = unique_username("adm")
    nonce = admin_nonce(base)
    body = {
        "nonce": nonce,
        "username": name,
        "password": DEFAULT_PASSWORD,
        "admin": True,
        "mac": admin_mac(shared_secret, nonce, name, DEFAULT_PASSWORD, False),
    }
    assert_error(call(base, "POST", ADMIN, body), 403, "M_FORBIDDEN")


def test_mac_for_other_password(base, shared_secret):
    name = unique_username("adm")
    nonce = admin_nonce(base)
    body = {
        "nonce": nonce,
        "username": name,
        "password": "a-different-password",
        "admin": False,
        "mac": admin_mac(shared_secret, nonce, name, DEFAULT_PASSWORD, False),
    }
    assert_error(call(base, "POST", ADMIN, body), 403, "M_FORBIDDEN")


def test_reused_nonce(stratus, shared_secret):
    nonce = admin_nonce(stratus.base)
    name = unique_username("adm")
    assert_admin_registered(stratus, admin_register_raw(stratus.base, shared_secret, name, nonce=nonce), name)
    r = admin_register_raw(stratus.base, shared_secret, unique_username("adm"), nonce=nonce)
    assert_error(r, 400, "M_UNKNOWN")


def test_unknown_nonce(base, shared_secret):
    r = admin_register_raw(base, shared_secret, unique_username("adm"), nonce="made-up-nonce-1234567890")
    assert_error(r, 400, "M_UNKNOWN")


def test_taken_username(base, shared_secret, user):
    r = admin_register_raw(base, shared_secret, user["username"])
    assert_error(r, 400, "M_USER_IN_USE")


def test_invalid_username(base, shared_secret):
    r = admin_register_raw(base, shared_secret, "bad name!")
    assert_error(r, 400, "M_INVALID_USERNAME")


@pytest.mark.parametrize("missing", ["nonce", "username", "password", "mac"])
def test_missing_fields(base, shared_secret, missing):
    name = unique_username("adm")
    nonce = admin_nonce(base)
    body = {
        "nonce": nonce,
        "username": name,
        "password": DEFAULT_PASSWORD,
        "admin": False,
        "mac": admin_mac(shared_secret, nonce, name, DEFAULT_PASSWORD, False),
    }
    del body[missing]
    r = call(base, "POST", ADMIN, body)
    assert_error(r, 400, "M_BAD_JSON")
    assert_ok(call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": name}))


def test_not_json(base):
    assert_error(call(base, "POST", ADMIN, data="{bad"), 400, "M_NOT_JSON")


# ---------------------------------------------------------------- other registration modes


@pytest.mark.parametrize(
    "mode_vars",
    [{"REGISTRATION_MODE": "closed"}, {"REGISTRATION_MODE": "token", "REGISTRATION_TOKENS": "tok1,tok2"}],
    ids=["closed", "token"],
)
def test_admin_register_in_other_modes(stratus_factory, mode_vars):
    server = stratus_factory(mode_vars)
    name = unique_username("adm")
    r = admin_register_raw(server.base, server.shared_secret, name)
    assert_admin_registered(server, r, name)


def test_admin_register_reserved_in_closed_mode(stratus_factory):
    server = stratus_factory({"REGISTRATION_MODE": "closed"})
    r = admin_register_raw(server.base, server.shared_secret, "postmaster", admin=True)
    assert_admin_registered(server, r, "postmaster")


def test_admin_field_omitted(stratus, shared_secret):
    """Synapse treats a missing "admin" as false (mac over "notadmin")."""
    base = stratus.base
    name = unique_username("adm")
    nonce = admin_nonce(base)
    body = {
        "nonce": nonce,
        "username": name,
        "password": DEFAULT_PASSWORD,
        "mac": admin_mac(shared_secret, nonce, name, DEFAULT_PASSWORD, False),
    }
    assert_admin_registered(stratus, call(base, "POST", ADMIN, body), name)


def test_password_too_long(base, shared_secret):
    name = unique_username("adm")
    r = admin_register_raw(base, shared_secret, name, "p" * 513)
    assert r.status_code == 400, r.text
    assert_ok(call(base, "GET", f"{CLIENT_V3}/register/available", params={"username": name}))


def test_nonce_single_use_under_concurrency(base, shared_secret):
    """Eight simultaneous registrations with one nonce: exactly one succeeds."""
    from concurrent.futures import ThreadPoolExecutor

    nonce = admin_nonce(base)
    names = [unique_username("adm") for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: admin_register_raw(base, shared_secret, n, nonce=nonce), names))
    assert sorted(r.status_code for r in results) == [200] + [400] * 7, [r.text for r in results]
    for r in results:
        if r.status_code == 400:
            assert r.json()["errcode"] == "M_UNKNOWN", r.text


def test_deactivated_name_stays_taken(base, shared_secret, user):
    r = uia_password(
        base, "POST", f"{CLIENT_V3}/account/deactivate", {}, user["access_token"], user["user_id"], user["password"]
    )
    assert_ok(r)
    assert_error(admin_register_raw(base, shared_secret, user["username"]), 400, "M_USER_IN_USE")
