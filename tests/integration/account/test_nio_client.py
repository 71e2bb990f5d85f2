"""End-to-end flows with a real Matrix client library (matrix-nio, no e2e)."""

import asyncio

import pytest

from nio import (
    AsyncClient,
    DevicesResponse,
    LoginError,
    LoginInfoResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    WhoamiError,
    WhoamiResponse,
)

from nio.responses import RegisterErrorResponse

from matrix_helpers import assert_token_dead, assert_token_works, unique_username

PASSWORD = "nio-test-password-1"


async def _full_flow(base, server_name):
    name = unique_username("nio")
    expected_user_id = f"@{name}:{server_name}"
    reg_client = AsyncClient(base, name)
    client = AsyncClient(base, name)
    checker = AsyncClient(base)
    try:
        info = await client.login_info()
        assert isinstance(info, LoginInfoResponse), info
        assert "m.login.password" in info.flows, info.flows

        reg = await reg_client.register(name, PASSWORD, device_name="nio-register")
        assert isinstance(reg, RegisterResponse), reg
        assert reg.user_id == expected_user_id, reg
        assert reg.access_token and reg.device_id, reg

        # A fresh client: reg_client now carries an access token (Synapse would read a
        # token on /register as an appservice's).
        again = await checker.register(name, PASSWORD)
        assert isinstance(again, RegisterErrorResponse), again
        assert again.status_code == "M_USER_IN_USE", again

        bad = await client.login("not-the-password", device_name="nio")
        assert isinstance(bad, LoginError), bad
        assert bad.status_code == "M_FORBIDDEN", bad

        login = await client.login(PASSWORD, device_name="nio-login")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == expected_user_id, login
        assert login.device_id != reg.device_id
        assert client.access_token == login.access_token

        who = await client.whoami()
        assert isinstance(who, WhoamiResponse), who
        assert who.user_id == expected_user_id and who.device_id == login.device_id, who
        assert who.is_guest is False, who

        initial = await client.get_displayname(expected_user_id)
        assert isinstance(initial, ProfileGetDisplayNameResponse), initial
        assert initial.displayname == name, initial

        set_resp = await client.set_displayname("Nio Tester ✓")
        assert isinstance(set_resp, ProfileSetDisplayNameResponse), set_resp
        got = await client.get_displayname(expected_user_id)
        assert isinstance(got, ProfileGetDisplayNameResponse), got
        assert got.displayname == "Nio Tester ✓", got
        # Unauthenticated client sees the same.
        got2 = await checker.get_displayname(expected_user_id)
        assert isinstance(got2, ProfileGetDisplayNameResponse), got2
        assert got2.displayname == "Nio Tester ✓", got2

        devs = await client.devices()
        assert isinstance(devs, DevicesResponse), devs
        by_id = {d.id: d for d in devs.devices}
        assert set(by_id) == {reg.device_id, login.device_id}, by_id
        assert by_id[reg.device_id].display_name == "nio-register", by_id
        assert by_id[login.device_id].display_name == "nio-login", by_id

        old_token = client.access_token
        out = await client.logout()
        assert isinstance(out, LogoutResponse), out

        checker.access_token = old_token
        checker.user_id = expected_user_id
        dead = await checker.whoami()
        assert isinstance(dead, WhoamiError), dead
        assert dead.status_code == "M_UNKNOWN_TOKEN", dead
        assert dead.soft_logout is False, dead

        return reg, login
    finally:
        await reg_client.close()
        await client.close()
        await checker.close()


def test_nio_full_flow(stratus):
    reg, login = asyncio.run(_full_flow(stratus.base, stratus.server_name))
    # Cross-check with plain HTTP: the logged-out token is dead, the registration one lives.
    assert_token_dead(stratus.base, login.access_token)
    assert_token_works(stratus.base, reg.access_token, reg.user_id)


async def _logout_all(base):
    name = unique_username("nio")
    a = AsyncClient(base, name)
    b = AsyncClient(base, name)
    try:
        reg = await a.register(name, PASSWORD)
        assert isinstance(reg, RegisterResponse), reg
        lb = await b.login(PASSWORD)
        assert isinstance(lb, LoginResponse), lb
        out = await b.logout(all_devices=True)
        assert isinstance(out, LogoutResponse), out
        return reg.access_token, lb.access_token
    finally:
        await a.close()
        await b.close()


def test_nio_logout_all(stratus):
    t1, t2 = asyncio.run(_logout_all(stratus.base))
    assert_token_dead(stratus.base, t1)
    assert_token_dead(stratus.base, t2)


async def _register_with_token(base, server_name):
    name = unique_username("niotok")
    client = AsyncClient(base, name)
    try:
        resp = await client.register_with_token(name, PASSWORD, "tok1", device_name="nio-token")
        assert isinstance(resp, RegisterResponse), resp
        assert resp.user_id == f"@{name}:{server_name}", resp
        who = await client.whoami()
        assert isinstance(who, WhoamiResponse), who
        assert who.user_id == resp.user_id
    finally:
        await client.close()


def test_nio_register_with_token(stratus_factory):
    """nio's register_with_token drives Synapse's token flow (token stage, then dummy)."""
    server = stratus_factory({"REGISTRATION_MODE": "token", "REGISTRATION_TOKENS": "tok1,tok2"})
    asyncio.run(_register_with_token(server.base, server.server_name))
