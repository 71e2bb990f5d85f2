"""Failed-login rate limiting, per account and per client address."""

import pytest

from matrix_helpers import assert_error, assert_ok, describe, login, login_raw, new_user, whoami


def pw_login(base, user, password):
    return login_raw(
        base,
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password},
    )


def assert_limited(r):
    body = assert_error(r, 429, "M_LIMIT_EXCEEDED")
    assert r.headers.get("Access-Control-Allow-Origin") == "*", dict(r.headers)
    retry = body.get("retry_after_ms")
    assert isinstance(retry, int) and not isinstance(retry, bool), describe(r)
    assert retry > 0, describe(r)
    return body


def test_account_lockout_after_repeated_failures(base):
    """Default LOGIN_FAILURES_ACCOUNT_MAX is 5: the 6th or 7th bad attempt is refused with 429."""
    u = new_user(base, prefix="rl")
    limited_at = None
    for attempt in range(1, 8):
        r = pw_login(base, u["username"], f"wrong-{attempt}")
        if r.status_code == 429:
            limited_at = attempt
            assert_limited(r)
            break
        assert_error(r, 403, "M_FORBIDDEN")
    assert limited_at in (6, 7), f"no 429 after {attempt} failed logins"
    # Now even the right password is refused...
    assert_limited(pw_login(base, u["username"], u["password"]))
    # ... also via the full user ID ...
    assert_limited(pw_login(base, u["user_id"], u["password"]))
    # ... but the existing session is untouched and other accounts are unaffected.
    assert_ok(whoami(base, u["access_token"]))
    other = new_user(base, prefix="rl")
    login(base, other["username"], other["password"])


def test_successful_logins_do_not_count(base):
    u = new_user(base, prefix="rl")
    for _ in range(8):
        login(base, u["username"], u["password"])


def test_few_failures_do_not_lock(base):
    u = new_user(base, prefix="rl")
    for attempt in range(3):
        assert_error(pw_login(base, u["username"], f"wrong-{attempt}"), 403, "M_FORBIDDEN")
    login(base, u["username"], u["password"])


IP_VARS = {"LOGIN_FAILURES_IP_MAX": "4"}


@pytest.fixture(scope="module")
def ip_server(stratus_factory):
    return stratus_factory(IP_VARS)


def test_ip_lockout(ip_server):
    """With LOGIN_FAILURES_IP_MAX=4, failures spread over several accounts trip the address limit."""
    base = ip_server.base
    victims = [new_user(base, prefix="ip") for _ in range(6)]
    bystander = new_user(base, prefix="ip")
    limited_at = None
    for attempt, v in enumerate(victims, start=1):
        r = pw_login(base, v["username"], "wrong-password")
        if r.status_code == 429:
            limited_at = attempt
            assert_limited(r)
            break
        assert_error(r, 403, "M_FORBIDDEN")
    assert limited_at in (5, 6), f"no 429 after {attempt} failed logins from one address"
    # Every login from this address is refused now, even a correct one for an untouched account.
    assert_limited(pw_login(base, bystander["username"], bystander["password"]))
    # Existing sessions keep working.
    assert_ok(whoami(base, bystander["access_token"]))


def test_forwarded_for_header_does_not_bypass_ip_limit(ip_server):
    """After the address limit trips, a client-supplied X-Forwarded-For must not reset it.

    The loop trips the limit itself (test_ip_lockout may already have tripped it).
    """
    base = ip_server.base
    u = new_user(base, prefix="ip")
    for _ in range(6):
        r = pw_login(base, u["username"], "wrong")
        if r.status_code == 429:
            break
    r = login_raw(
        base,
        {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": u["username"]}, "password": u["password"]},
    )
    assert_limited(r)
    import requests

    spoofed = requests.post(
        f"{base}/_matrix/client/v3/login",
        json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": u["username"]}, "password": u["password"]},
        headers={"X-Forwarded-For": "203.0.113.77", "X-Real-IP": "203.0.113.77"},
        timeout=30,
    )
    assert_limited(spoofed)


WINDOW_VARS = {"LOGIN_FAILURES_ACCOUNT_MAX": "2", "LOGIN_FAILURES_WINDOW_SECS": "3"}


def test_lockout_expires_after_window(stratus_factory):
    import time

    server = stratus_factory(WINDOW_VARS)
    base = server.base
    u = new_user(base, prefix="win")
    limited = None
    for attempt in range(1, 5):
        r = pw_login(base, u["username"], "wrong")
        if r.status_code == 429:
            limited = assert_limited(r)
            break
        assert_error(r, 403, "M_FORBIDDEN")
    assert limited is not None and attempt in (3, 4), attempt
    assert limited["retry_after_ms"] <= 3000, limited
    assert_limited(pw_login(base, u["username"], u["password"]))
    time.sleep(limited["retry_after_ms"] / 1000 + 0.5)
    login(base, u["username"], u["password"])


def test_parallel_guesses_cannot_pass_the_limit_together(base):
    """Each attempt is counted before its password is checked, so 20 simultaneous wrong
    passwords for one account (limit 5) get at most 5 answers of 403; the rest are 429."""
    from concurrent.futures import ThreadPoolExecutor

    u = new_user(base, prefix="rlp")
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda i: pw_login(base, u["username"], f"guess-{i}").status_code, range(20)))
    assert set(codes) <= {403, 429}, codes
    assert codes.count(403) <= 5, codes
    assert codes.count(429) >= 15, codes
