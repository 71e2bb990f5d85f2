"""Generic error handling (404/405/bad JSON/too large/missing param) and CORS."""

import json
import uuid

import pytest

from matrix_helpers import CLIENT_V1, CLIENT_V3, assert_error, assert_ok, call, qid

CORS_METHODS = {"GET", "POST", "PUT", "DELETE", "OPTIONS"}
CORS_HEADERS = {"authorization", "content-type"}


def assert_cors(r):
    h = r.headers
    assert h.get("Access-Control-Allow-Origin") == "*", (r.status_code, dict(h))
    methods = {m.strip().upper() for m in h.get("Access-Control-Allow-Methods", "").split(",")}
    assert CORS_METHODS <= methods, dict(h)
    allowed = {x.strip().lower() for x in h.get("Access-Control-Allow-Headers", "").split(",")}
    assert CORS_HEADERS <= allowed, dict(h)


# ---------------------------------------------------------------- unknown path / method


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/no_such_endpoint",
        "/_matrix/client/v3/account/whoami/extra",
        "/_matrix/client/r0/nonsense",
        "/_matrix/nothing",
        "/no/such/path",
    ],
)
def test_unknown_path_404(base, path):
    r = call(base, "GET", path)
    assert_error(r, 404, "M_UNRECOGNIZED")
    assert_cors(r)


@pytest.mark.parametrize(
    "method,path",
    [
        ("DELETE", "/_matrix/client/versions"),
        ("POST", "/_matrix/client/versions"),
        ("GET", f"{CLIENT_V3}/logout"),
        ("PUT", f"{CLIENT_V3}/login"),
        ("POST", f"{CLIENT_V3}/account/whoami"),
        ("DELETE", "/_matrix/key/v2/server"),
    ],
)
def test_wrong_method_405(base, method, path):
    r = call(base, method, path)
    assert_error(r, 405, "M_UNRECOGNIZED")
    assert_cors(r)


# ---------------------------------------------------------------- body errors


@pytest.mark.parametrize(
    "path",
    [f"{CLIENT_V3}/login", f"{CLIENT_V3}/register", f"{CLIENT_V3}/refresh"],
)
def test_not_json(base, path):
    r = call(base, "POST", path, data="{bad")
    assert_error(r, 400, "M_NOT_JSON")
    assert_cors(r)


def test_not_json_authenticated_endpoint(base, user):
    r = call(
        base,
        "PUT",
        f"{CLIENT_V3}/profile/{qid(user['user_id'])}/displayname",
        data="{displayname: nope",
        token=user["access_token"],
    )
    assert_error(r, 400, "M_NOT_JSON")


@pytest.mark.parametrize("payload", ["[]", "[1, 2]", '"a string"', "42", "null", "true"])
def test_json_not_an_object(base, payload):
    r = call(base, "POST", f"{CLIENT_V3}/login", data=payload)
    assert_error(r, 400, "M_BAD_JSON")


def test_body_too_large(base):
    big = {"type": "m.login.password", "password": "x", "padding": "a" * (1024 * 1024 + 10)}
    r = call(base, "POST", f"{CLIENT_V3}/login", data=json.dumps(big))
    assert_error(r, 413, "M_TOO_LARGE")
    assert_cors(r)


def test_body_just_under_limit_is_not_413(base):
    # ~900 KiB: accepted for parsing; the login itself fails (wrong shape for a login).
    big = {"type": "m.login.nope", "padding": "a" * (900 * 1024)}
    r = call(base, "POST", f"{CLIENT_V3}/login", data=json.dumps(big))
    assert r.status_code != 413, r.status_code
    assert_error(r, 400, "M_UNKNOWN")


@pytest.mark.parametrize(
    "path",
    [f"{CLIENT_V3}/register/available", f"{CLIENT_V1}/register/m.login.registration_token/validity"],
)
def test_missing_query_param(base, path):
    r = call(base, "GET", path)
    assert_error(r, 400, "M_MISSING_PARAM")
    assert_cors(r)


# ---------------------------------------------------------------- CORS


def test_cors_on_success(base):
    r = call(base, "GET", "/_matrix/client/versions", headers={"Origin": "https://app.example"})
    assert r.status_code == 200
    assert_cors(r)


def test_cors_on_auth_error(base):
    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", headers={"Origin": "https://app.example"})
    assert_error(r, 401, "M_MISSING_TOKEN")
    assert_cors(r)


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/versions",
        f"{CLIENT_V3}/login",
        f"{CLIENT_V3}/account/whoami",
        f"{CLIENT_V3}/profile/%40someone%3Aexample.org/displayname",
        "/_matrix/client/v3/totally/unknown",
        "/.well-known/matrix/client",
    ],
)
def test_options_preflight(base, path):
    r = call(
        base,
        "OPTIONS",
        path,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code in (200, 204), (r.status_code, r.text)
    assert_cors(r)


def test_options_needs_no_auth(base):
    r = call(base, "OPTIONS", f"{CLIENT_V3}/devices")
    assert r.status_code in (200, 204), (r.status_code, r.text)
    assert_cors(r)


# ---------------------------------------------------------------- auth errors


def test_missing_token(base):
    assert_error(call(base, "GET", f"{CLIENT_V3}/account/whoami"), 401, "M_MISSING_TOKEN")


def test_unknown_token_header(base):
    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", token="not-a-token")
    body = assert_error(r, 401, "M_UNKNOWN_TOKEN")
    assert body.get("soft_logout") is False, body
    assert_cors(r)


def test_unknown_token_query(base):
    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", params={"access_token": "not-a-token"})
    body = assert_error(r, 401, "M_UNKNOWN_TOKEN")
    assert body.get("soft_logout") is False, body


def test_error_bodies_are_json(base):
    r = call(base, "GET", "/_matrix/client/v3/definitely/not/here")
    assert r.headers.get("Content-Type", "").startswith("application/json"), dict(r.headers)


# ---------------------------------------------------------------- hostile headers and bodies


@pytest.mark.parametrize(
    "value",
    [
        # workerd turns a byte that is not UTF-8 into U+FFFD (3 bytes in the Worker's
        # string): byte 7 then falls inside a character, which a `h[..7]` slice panicked on.
        b"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9",
        b"bearer\xe9",
        "Bear\u00e9\u00e9\u00e9 token".encode(),  # UTF-8 bytes on the wire
        "Beare\u20acr token".encode(),
        b"Bearer",
        b"Bearer ",
        b"Basic dXNlcjpwYXNz",
    ],
)
def test_malformed_authorization_header_is_an_error_not_a_crash(base, value):
    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", headers={"Authorization": value})
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.json()["errcode"] in ("M_MISSING_TOKEN", "M_UNKNOWN_TOKEN"), r.text
    # The isolate is still serving.
    assert call(base, "GET", "/_matrix/client/versions").status_code == 200


def test_bearer_is_case_insensitive_and_trimmed(base, user):
    r = call(base, "GET", f"{CLIENT_V3}/account/whoami", headers={"Authorization": f"bearer   {user['access_token']} "})
    assert assert_ok(r)["user_id"] == user["user_id"]


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", f"{CLIENT_V3}/createRoom"),
        ("POST", f"{CLIENT_V3}/user/USER/filter"),
        ("PUT", f"{CLIENT_V3}/user/USER/account_data/org.example.x"),
        ("POST", f"{CLIENT_V3}/keys/upload"),
        ("POST", f"{CLIENT_V3}/keys/query"),
        ("PUT", f"{CLIENT_V3}/profile/USER/displayname"),
        ("PUT", f"{CLIENT_V3}/sendToDevice/m.test/TXN"),
    ],
)
def test_empty_body_where_one_is_required(base, user, method, path):
    path = path.replace("USER", qid(user["user_id"])).replace("TXN", uuid.uuid4().hex)
    r = call(base, method, path, data="", token=user["access_token"])
    assert_error(r, 400, "M_NOT_JSON")
