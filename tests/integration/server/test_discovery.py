"""Server discovery: /versions, .well-known, /capabilities."""

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call


def test_versions(base):
    body = assert_ok(call(base, "GET", "/_matrix/client/versions"))
    assert isinstance(body.get("versions"), list)
    assert all(isinstance(v, str) for v in body["versions"])
    assert "v1.11" in body["versions"], body
    # Every version whose required behaviour is implemented, up to the spec in shared/.
    for v in ["v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19"]:
        assert v in body["versions"], (v, body)
    assert isinstance(body.get("unstable_features"), dict), body
    assert all(isinstance(v, bool) for v in body["unstable_features"].values()), body


def test_versions_is_json(base):
    r = call(base, "GET", "/_matrix/client/versions")
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers


def test_well_known_client(stratus):
    body = assert_ok(call(stratus.base, "GET", "/.well-known/matrix/client"))
    hs = body.get("m.homeserver")
    assert isinstance(hs, dict), body
    base_url = hs.get("base_url")
    assert isinstance(base_url, str), body
    if stratus.owned:
        assert base_url.rstrip("/") == stratus.vars["PUBLIC_BASEURL"].rstrip("/"), body
    else:
        assert base_url.startswith("http"), body


def test_well_known_server(stratus):
    body = assert_ok(call(stratus.base, "GET", "/.well-known/matrix/server"))
    assert body == {"m.server": stratus.server_name}, body


def test_well_known_server_has_port(stratus):
    if not stratus.owned:
        pytest.skip("port known only for a locally started server")
    body = assert_ok(call(stratus.base, "GET", "/.well-known/matrix/server"))
    assert body["m.server"].endswith(":" + stratus.base.rsplit(":", 1)[1]), body


def test_capabilities(base, user):
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/capabilities", token=user["access_token"]))
    caps = body.get("capabilities")
    assert isinstance(caps, dict), body
    assert caps["m.change_password"]["enabled"] is True, caps
    rv = caps["m.room_versions"]
    assert rv["default"] == "12", rv
    # ruma implements state resolution v2 only: versions 1 and 2 are not offered, and 3-5
    # (best effort in ruma) are "unstable".
    for v in range(6, 13):
        assert rv["available"].get(str(v)) == "stable", rv
    for v in range(3, 6):
        assert rv["available"].get(str(v)) == "unstable", rv
    assert "1" not in rv["available"] and "2" not in rv["available"], rv
    assert caps["m.set_displayname"]["enabled"] is True, caps
    assert caps["m.set_avatar_url"]["enabled"] is True, caps
    assert caps["m.3pid_changes"]["enabled"] is False, caps
    assert caps["m.get_login_token"]["enabled"] is True, caps


def test_capabilities_requires_auth(base):
    assert_error(call(base, "GET", f"{CLIENT_V3}/capabilities"), 401, "M_MISSING_TOKEN")


def test_capabilities_bad_token(base):
    body = assert_error(
        call(base, "GET", f"{CLIENT_V3}/capabilities", token="syt_not_a_real_token"),
        401,
        "M_UNKNOWN_TOKEN",
    )
    assert body.get("soft_logout") is False, body
