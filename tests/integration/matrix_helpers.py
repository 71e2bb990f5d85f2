"""Small HTTP helpers shared by the Stratus integration tests.

Tests import these directly (``from matrix_helpers import register, ...``); the
fixtures that start servers live in conftest.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import quote

import requests

DEFAULT_PASSWORD = "correct horse battery staple"
HTTP_TIMEOUT = 30

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"

# Localparts that /register refuses with M_EXCLUSIVE (the admin API may still use them).
RESERVED = [
    "admin",
    "administrator",
    "root",
    "system",
    "server",
    "matrix",
    "support",
    "abuse",
    "postmaster",
    "hostmaster",
    "webmaster",
    "security",
    "noreply",
    "stratus",
]

_session = requests.Session()


def unique_username(prefix: str = "u") -> str:
    """A fresh, valid, lowercase localpart; unique per call and per run."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def qid(user_id: str) -> str:
    """Percent-encode a user ID (or any path segment) for use in a URL path."""
    return quote(user_id, safe="")


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    params: dict | None = None,
    headers: dict | None = None,
    data: bytes | str | None = None,
) -> requests.Response:
    """One HTTP request. ``body`` is JSON-encoded; ``data`` is sent raw."""
    hdrs: dict[str, str] = {}
    if token is not None:
        hdrs.update(auth(token))
    if body is not None:
        data = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    elif data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    if headers:
        hdrs.update(headers)
    return _session.request(
        method, base + path, data=data, headers=hdrs, params=params, timeout=HTTP_TIMEOUT
    )


def describe(r: requests.Response) -> str:
    return f"{r.request.method} {r.request.path_url} -> {r.status_code} {r.text[:800]!r}"


def json_of(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError as e:  # pragma: no cover - failure path
        raise AssertionError(f"response is not JSON: {describe(r)}") from e


def assert_ok(r: requests.Response, status: int = 200) -> Any:
    assert r.status_code == status, describe(r)
    return json_of(r)


def assert_error(r: requests.Response, status: int, errcode: str | tuple[str, ...]) -> dict:
    assert r.status_code == status, describe(r)
    body = json_of(r)
    assert isinstance(body, dict), describe(r)
    codes = (errcode,) if isinstance(errcode, str) else errcode
    assert body.get("errcode") in codes, describe(r)
    assert isinstance(body.get("error"), str), describe(r)
    return body


def assert_forbidden(r: requests.Response) -> dict:
    return assert_error(r, 403, "M_FORBIDDEN")


def assert_unknown_token(r: requests.Response, soft_logout: bool = False) -> dict:
    body = assert_error(r, 401, "M_UNKNOWN_TOKEN")
    assert body.get("soft_logout") is soft_logout, describe(r)
    return body


# --------------------------------------------------------------------------- register


def register_raw(base: str, body: dict) -> requests.Response:
    return call(base, "POST", f"{CLIENT_V3}/register", body)


def register_via_token(base: str, token: str, prefix: str) -> requests.Response:
    """Registers a new `prefix…` user through the advertised flow, giving `token` at the
    `m.login.registration_token` stage; stops at the first stage not completed. Returns the
    last response (200 when registered)."""
    body = {"username": unique_username(prefix), "password": DEFAULT_PASSWORD}
    first = register_raw(base, body)
    session = first.json()["session"]
    r = first
    for stage in first.json()["flows"][0]["stages"]:
        a = {"type": stage, "session": session}
        if stage == "m.login.registration_token":
            a["token"] = token
        r = register_raw(base, {**body, "auth": a})
        if r.status_code != 401 or stage not in (r.json().get("completed") or []):
            break
    return r


def register(
    base: str,
    username: str | None = None,
    password: str | None = DEFAULT_PASSWORD,
    **kw: Any,
) -> dict:
    """Full UIA dance with m.login.dummy; returns the 200 JSON body.

    ``username=None`` picks a fresh unique name; ``generate=True`` sends no
    username at all so the server generates one. Extra keyword arguments go
    into the request body (device_id, refresh_token, inhibit_login, ...).
    """
    generate = kw.pop("generate", False)
    body: dict[str, Any] = dict(kw)
    if not generate:
        body["username"] = username if username is not None else unique_username()
    if password is not None:
        body["password"] = password
    r = register_raw(base, body)
    uia = assert_error_free_uia(r)
    body["auth"] = {"type": "m.login.dummy", "session": uia["session"]}
    r = register_raw(base, body)
    out = assert_ok(r)
    return out


def assert_error_free_uia(r: requests.Response) -> dict:
    """The first step of a UIA exchange: 401 with flows and a session."""
    assert r.status_code == 401, describe(r)
    body = json_of(r)
    assert isinstance(body.get("flows"), list) and body["flows"], describe(r)
    assert isinstance(body.get("session"), str) and body["session"], describe(r)
    assert "errcode" not in body or body["errcode"] is None, describe(r)
    return body


def new_user(base: str, prefix: str = "u", password: str = DEFAULT_PASSWORD, **kw: Any) -> dict:
    """Register a fresh user; returns the register response plus username/password."""
    username = unique_username(prefix)
    out = register(base, username, password, **kw)
    out["username"] = username
    out["password"] = password
    return out


# --------------------------------------------------------------------------- login


def login_raw(base: str, body: dict) -> requests.Response:
    return call(base, "POST", f"{CLIENT_V3}/login", body)


def login(base: str, user: str, password: str = DEFAULT_PASSWORD, **kw: Any) -> dict:
    """Password login with an m.id.user identifier; returns the 200 JSON."""
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    body.update(kw)
    return assert_ok(login_raw(base, body))


def whoami(base: str, token: str) -> requests.Response:
    return call(base, "GET", f"{CLIENT_V3}/account/whoami", token=token)


def assert_token_works(base: str, token: str, user_id: str | None = None) -> dict:
    body = assert_ok(whoami(base, token))
    if user_id is not None:
        assert body["user_id"] == user_id, body
    return body


def assert_token_dead(base: str, token: str) -> None:
    assert_unknown_token(whoami(base, token), soft_logout=False)


# --------------------------------------------------------------------------- UIA (password)


def password_auth(user_id: str, password: str, session: str | None) -> dict:
    a = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    if session is not None:
        a["session"] = session
    return a


def uia_start(base: str, method: str, path: str, body: dict, token: str) -> dict:
    """Send the request without ``auth``; expect the m.login.password UIA challenge."""
    r = call(base, method, path, body, token=token)
    uia = assert_error_free_uia(r)
    stages = [f.get("stages") for f in uia["flows"]]
    assert ["m.login.password"] in stages, describe(r)
    return uia


def uia_password(
    base: str,
    method: str,
    path: str,
    body: dict,
    token: str,
    user_id: str,
    password: str,
) -> requests.Response:
    """Two-step UIA with m.login.password; returns the final response."""
    uia = uia_start(base, method, path, body, token)
    full = dict(body)
    full["auth"] = password_auth(user_id, password, uia["session"])
    return call(base, method, path, full, token=token)


# --------------------------------------------------------------------------- devices


def device_ids(base: str, token: str) -> list[str]:
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/devices", token=token))
    return [d["device_id"] for d in body["devices"]]


# --------------------------------------------------------------------------- profile


def set_displayname_raw(base: str, user: dict, name: Any, token: str | None = None) -> requests.Response:
    """PUT the user's display name, with the user's own token unless ``token`` is given."""
    return call(
        base,
        "PUT",
        f"{CLIENT_V3}/profile/{qid(user['user_id'])}/displayname",
        {"displayname": name},
        token=token if token is not None else user["access_token"],
    )


def set_displayname(base: str, user: dict, name: Any) -> None:
    assert_ok(set_displayname_raw(base, user, name))


# --------------------------------------------------------------------------- admin


def admin_mac(secret: str, nonce: str, username: str, password: str, admin: bool) -> str:
    msg = b"\x00".join(
        [
            nonce.encode(),
            username.encode(),
            password.encode(),
            b"admin" if admin else b"notadmin",
        ]
    )
    return hmac.new(secret.encode(), msg, hashlib.sha1).hexdigest()


def admin_nonce(base: str) -> str:
    body = assert_ok(call(base, "GET", "/_synapse/admin/v1/register"))
    assert isinstance(body.get("nonce"), str) and body["nonce"], body
    return body["nonce"]


def admin_register_raw(
    base: str,
    secret: str,
    username: str,
    password: str = DEFAULT_PASSWORD,
    admin: bool = False,
    nonce: str | None = None,
    **extra: Any,
) -> requests.Response:
    if nonce is None:
        nonce = admin_nonce(base)
    body = {
        "nonce": nonce,
        "username": username,
        "password": password,
        "admin": admin,
        "mac": admin_mac(secret, nonce, username, password, admin),
    }
    body.update(extra)
    return call(base, "POST", "/_synapse/admin/v1/register", body)


def server_name_of(user_id: str) -> str:
    assert user_id.startswith("@") and ":" in user_id, user_id
    return user_id.split(":", 1)[1]


def cost_do_calls(r) -> dict:
    """The Durable Object calls a response's ``X-Stratus-Cost`` header names (an instance with
    ``DEV_COST_HEADER=on``): ``...;do=UserSync:1,UserKeys:1;...`` -> {"UserSync": 1, "UserKeys": 1}."""
    for part in r.headers["X-Stratus-Cost"].split(";"):
        k, _, v = part.partition("=")
        if k == "do":
            return {c: int(n) for c, _, n in (x.partition(":") for x in v.split(",") if x)}
    raise AssertionError(r.headers["X-Stratus-Cost"])
