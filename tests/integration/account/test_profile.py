"""Profiles: GET /profile/{userId}, display name and avatar URL."""

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, qid, register, set_displayname_raw, unique_username


def profile_path(user_id, field=None):
    p = f"{CLIENT_V3}/profile/{qid(user_id)}"
    return f"{p}/{field}" if field else p


def set_avatar(base, user, url, token=None):
    return call(
        base,
        "PUT",
        profile_path(user["user_id"], "avatar_url"),
        {"avatar_url": url},
        token=token if token is not None else user["access_token"],
    )


# ---------------------------------------------------------------- read


def test_new_user_profile(base, user):
    body = assert_ok(call(base, "GET", profile_path(user["user_id"])))
    assert body.get("displayname") == user["username"], body
    assert "avatar_url" not in body or body["avatar_url"] in (None, ""), body


def test_new_user_displayname(base, user):
    body = assert_ok(call(base, "GET", profile_path(user["user_id"], "displayname")))
    assert body == {"displayname": user["username"]}, body


def test_profile_needs_no_auth_but_accepts_it(base, user, user2):
    body = assert_ok(call(base, "GET", profile_path(user["user_id"]), token=user2["access_token"]))
    assert body["displayname"] == user["username"]


def test_profile_unencoded_user_id_in_path(base, user):
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/profile/{user['user_id']}"))
    assert body["displayname"] == user["username"], body


def test_empty_localpart(base, server_name):
    """An empty localpart is a (non-compliant) historical user ID that no local account can
    have: either "malformed" (400) or "no such user" (404) is acceptable; it is never found."""
    r = call(base, "GET", profile_path(f"@:{server_name}"))
    if r.status_code == 400:
        assert_error(r, 400, "M_INVALID_PARAM")
    else:
        assert_error(r, 404, "M_NOT_FOUND")


def test_unknown_user_profile(base, server_name):
    ghost = f"@{unique_username('ghost')}:{server_name}"
    assert_error(call(base, "GET", profile_path(ghost)), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", profile_path(ghost, "displayname")), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", profile_path(ghost, "avatar_url")), 404, "M_NOT_FOUND")


# Note: "@:example.org" is left out: the spec (appendices, historical user IDs) says servers
# MUST accept user IDs with an empty localpart, so "malformed" is arguable; see
# test_empty_localpart.
@pytest.mark.parametrize("bad", ["notauserid", "@nocolon", "alice:example.org", "#room:example.org", "!room:example.org"])
def test_malformed_user_id(base, bad):
    assert_error(call(base, "GET", profile_path(bad)), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------- display name


def test_set_displayname(base, user):
    assert assert_ok(set_displayname_raw(base, user, "Alice Liddell ✨")) == {}
    assert assert_ok(call(base, "GET", profile_path(user["user_id"], "displayname"))) == {
        "displayname": "Alice Liddell ✨"
    }
    assert assert_ok(call(base, "GET", profile_path(user["user_id"])))["displayname"] == "Alice Liddell ✨"


def test_set_displayname_256_ok(base, user):
    name = "d" * 256
    assert_ok(set_displayname_raw(base, user, name))
    assert assert_ok(call(base, "GET", profile_path(user["user_id"], "displayname")))["displayname"] == name


def test_set_displayname_too_long(base, user):
    assert_error(set_displayname_raw(base, user, "d" * 257), 400, "M_INVALID_PARAM")
    assert assert_ok(call(base, "GET", profile_path(user["user_id"], "displayname")))["displayname"] == user["username"]


def test_set_displayname_other_user(base, user, user2):
    r = set_displayname_raw(base, user2, "impostor", token=user["access_token"])
    assert_error(r, 403, "M_FORBIDDEN")
    assert assert_ok(call(base, "GET", profile_path(user2["user_id"], "displayname")))["displayname"] == user2["username"]


def test_set_displayname_requires_auth(base, user):
    r = call(base, "PUT", profile_path(user["user_id"], "displayname"), {"displayname": "x"})
    assert_error(r, 401, "M_MISSING_TOKEN")


def test_set_displayname_bad_token(base, user):
    r = set_displayname_raw(base, user, "x", token="bogus-token")
    assert_error(r, 401, "M_UNKNOWN_TOKEN")


# An empty body is M_MISSING_PARAM since v1.16 (test_profile_fields.py::test_missing_key_in_body).
@pytest.mark.parametrize("body", [{"displayname": 5}, {"displayname": ["a"]}, {"displayname": {"a": 1}}])
def test_set_displayname_bad_body(base, user, body):
    r = call(base, "PUT", profile_path(user["user_id"], "displayname"), body, token=user["access_token"])
    assert_error(r, 400, "M_BAD_JSON")


def test_set_displayname_not_json(base, user):
    r = call(base, "PUT", profile_path(user["user_id"], "displayname"), data="{bad", token=user["access_token"])
    assert_error(r, 400, "M_NOT_JSON")


def test_set_displayname_for_unknown_user(base, user, server_name):
    ghost = {"user_id": f"@{unique_username('ghost')}:{server_name}"}
    assert_error(set_displayname_raw(base, ghost, "x", token=user["access_token"]), 403, "M_FORBIDDEN")


# ---------------------------------------------------------------- avatar


def test_set_avatar_url(base, user):
    url = "mxc://example.org/SEiOMMtRFSwzSHYrXZiJwmuP"
    assert assert_ok(set_avatar(base, user, url)) == {}
    assert assert_ok(call(base, "GET", profile_path(user["user_id"], "avatar_url"))) == {"avatar_url": url}
    body = assert_ok(call(base, "GET", profile_path(user["user_id"])))
    assert body["avatar_url"] == url
    assert body["displayname"] == user["username"], body


def test_clear_avatar_url(base, user):
    assert_ok(set_avatar(base, user, "mxc://example.org/abc"))
    assert_ok(set_avatar(base, user, ""))
    body = assert_ok(call(base, "GET", profile_path(user["user_id"])))
    assert body.get("avatar_url") in (None, ""), body


@pytest.mark.parametrize(
    "url", ["https://example.org/a.png", "http://example.org/x", "not a url", "mxc:/missing-slash", "MXC//x"]
)
def test_set_avatar_url_not_mxc(base, user, url):
    assert_error(set_avatar(base, user, url), 400, "M_INVALID_PARAM")
    body = assert_ok(call(base, "GET", profile_path(user["user_id"])))
    assert body.get("avatar_url") in (None, ""), body


def test_set_avatar_other_user(base, user, user2):
    assert_error(set_avatar(base, user2, "mxc://example.org/x", token=user["access_token"]), 403, "M_FORBIDDEN")


def test_set_avatar_requires_auth(base, user):
    r = call(base, "PUT", profile_path(user["user_id"], "avatar_url"), {"avatar_url": "mxc://a/b"})
    assert_error(r, 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("body", [{"avatar_url": 3}, {"avatar_url": ["mxc://a/b"]}])
def test_set_avatar_bad_body(base, user, body):
    r = call(base, "PUT", profile_path(user["user_id"], "avatar_url"), body, token=user["access_token"])
    assert_error(r, 400, "M_BAD_JSON")


def test_profile_of_user_with_slash_in_localpart(base):
    """'/' is legal in a localpart; percent-encoded as %2F it must not split the path."""
    name = "slash/" + unique_username("p")
    u = register(base, name)
    body = assert_ok(call(base, "GET", profile_path(u["user_id"], "displayname")))
    assert body == {"displayname": name}, body
    assert_ok(call(base, "PUT", profile_path(u["user_id"], "displayname"), {"displayname": "S"}, token=u["access_token"]))
    assert assert_ok(call(base, "GET", profile_path(u["user_id"])))["displayname"] == "S"
