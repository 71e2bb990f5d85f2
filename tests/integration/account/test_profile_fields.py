"""Custom profile fields (spec v1.16, MSC4133): PUT/GET/DELETE /profile/{userId}/{keyName}
for any namespaced key, m.tz, the 64 KiB profile limit, and the m.profile_fields capability."""

import json
import sqlite3

import pytest

from local_state import sqlite_with_table
from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user, qid, uia_password, unique_username
from rooms_helpers import create_room, get_state, room_pair

MAX_PROFILE = 65536


def fpath(user_id, key=None):
    p = f"{CLIENT_V3}/profile/{qid(user_id)}"
    return f"{p}/{qid(key)}" if key is not None else p


def put_field(base, user, key, value, token=None):
    return call(base, "PUT", fpath(user["user_id"], key), {key: value},
                token=user["access_token"] if token is None else token)


def get_field(base, user, key):
    return call(base, "GET", fpath(user["user_id"], key))


def delete_field(base, user, key, token=None):
    return call(base, "DELETE", fpath(user["user_id"], key),
                token=user["access_token"] if token is None else token)


def profile(base, user):
    return assert_ok(call(base, "GET", fpath(user["user_id"])))


def compact_size(obj) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


# ---------------------------------------------------------------- set, get, list


@pytest.mark.parametrize("value", ["they/them", {"en": "they/them", "de": ["sie"]}, 42, 1.5, True, False, ["a", 1, None], {}])
def test_custom_field_round_trip(base, user, value):
    key = "com.example.pronouns"
    assert assert_ok(put_field(base, user, key, value)) == {}
    assert assert_ok(get_field(base, user, key)) == {key: value}
    body = profile(base, user)
    assert body[key] == value, body
    assert body["displayname"] == user["username"], body


def test_overwrite_and_several_fields(base, user):
    assert_ok(put_field(base, user, "org.example.role", "admin"))
    assert_ok(put_field(base, user, "org.example.role", "owner"))
    assert_ok(put_field(base, user, "m.tz", "Europe/London"))
    assert_ok(put_field(base, user, "org.example-2.x_y", [1]))
    body = profile(base, user)
    assert body == {
        "displayname": user["username"],
        "org.example.role": "owner",
        "m.tz": "Europe/London",
        "org.example-2.x_y": [1],
    }, body


def test_m_tz(base, user):
    assert_ok(put_field(base, user, "m.tz", "America/New_York"))
    assert assert_ok(get_field(base, user, "m.tz")) == {"m.tz": "America/New_York"}
    for bad in (5, ["Europe/Paris"], {"tz": "UTC"}):
        assert_error(put_field(base, user, "m.tz", bad), 400, "M_BAD_JSON")
    assert assert_ok(get_field(base, user, "m.tz")) == {"m.tz": "America/New_York"}


def test_null_value_rejected(base, user):
    """The spec lets servers reject null (clients should DELETE); Synapse does."""
    assert_error(put_field(base, user, "com.example.x", None), 400, "M_INVALID_PARAM")
    assert_error(get_field(base, user, "com.example.x"), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("key", ["com.example.x", "displayname", "avatar_url", "m.tz"])
def test_missing_key_in_body(base, user, key):
    r = call(base, "PUT", fpath(user["user_id"], key), {"something.else": "x"}, token=user["access_token"])
    assert_error(r, 400, "M_MISSING_PARAM")
    r = call(base, "PUT", fpath(user["user_id"], key), {}, token=user["access_token"])
    assert_error(r, 400, "M_MISSING_PARAM")


def test_unset_field_and_unknown_user(base, user, server_name):
    assert_error(get_field(base, user, "com.example.never"), 404, "M_NOT_FOUND")
    ghost = {"user_id": f"@{unique_username('ghost')}:{server_name}"}
    assert_error(get_field(base, ghost, "com.example.x"), 404, "M_NOT_FOUND")


def test_not_json(base, user):
    r = call(base, "PUT", fpath(user["user_id"], "com.example.x"), data="{nope", token=user["access_token"])
    assert_error(r, 400, "M_NOT_JSON")


# ---------------------------------------------------------------- key names


@pytest.mark.parametrize("key", ["Com.example", "1abc", "_abc", "com.exa mple", "com.example!", "é.x", "COM"])
def test_bad_key_names(base, user, key):
    assert_error(put_field(base, user, key, "x"), 400, "M_INVALID_PARAM")
    assert_error(get_field(base, user, key), 400, "M_INVALID_PARAM")
    assert_error(delete_field(base, user, key), 400, "M_INVALID_PARAM")


def test_key_length_limit(base, user):
    ok = "com.example." + "k" * (255 - len("com.example."))
    assert len(ok) == 255
    assert_ok(put_field(base, user, ok, "v"))
    assert assert_ok(get_field(base, user, ok)) == {ok: "v"}
    too_long = ok + "k"
    assert_error(put_field(base, user, too_long, "v"), 400, "M_KEY_TOO_LARGE")
    assert_error(get_field(base, user, too_long), 400, "M_KEY_TOO_LARGE")
    assert_error(delete_field(base, user, too_long), 400, "M_KEY_TOO_LARGE")


# ---------------------------------------------------------------- size limit


def test_profile_size_limit_is_exact(base):
    u = new_user(base, "big")
    key = "com.example.blob"
    current = profile(base, u)
    # Fill the profile to exactly 64 KiB of compact JSON: accepted.
    fill = MAX_PROFILE - compact_size({**current, key: ""})
    assert_ok(put_field(base, u, key, "é" * (fill // 2) + "x" * (fill % 2)))
    assert compact_size(profile(base, u)) == MAX_PROFILE
    # One byte more (replacing the field: its old value does not count twice): refused.
    r = put_field(base, u, key, "é" * (fill // 2) + "x" * (fill % 2) + "y")
    assert_error(r, 400, "M_PROFILE_TOO_LARGE")
    # Any new field is refused too, and nothing changed.
    assert_error(put_field(base, u, "com.example.more", 1), 400, "M_PROFILE_TOO_LARGE")
    assert_error(get_field(base, u, "com.example.more"), 404, "M_NOT_FOUND")
    assert compact_size(profile(base, u)) == MAX_PROFILE
    # A longer display name would take it over as well.
    r = call(base, "PUT", fpath(u["user_id"], "displayname"), {"displayname": u["username"] + "!"},
             token=u["access_token"])
    assert_error(r, 400, "M_PROFILE_TOO_LARGE")
    # Freeing space makes room again.
    assert_ok(delete_field(base, u, key))
    assert_ok(put_field(base, u, "com.example.more", 1))


def test_oversized_single_value(base, user):
    assert_error(put_field(base, user, "com.example.huge", "x" * (MAX_PROFILE + 10)), 400, "M_PROFILE_TOO_LARGE")
    assert_error(get_field(base, user, "com.example.huge"), 404, "M_NOT_FOUND")


# ---------------------------------------------------------------- delete


def test_delete_custom_field(base, user):
    assert_ok(put_field(base, user, "com.example.x", {"a": 1}))
    assert assert_ok(delete_field(base, user, "com.example.x")) == {}
    assert_error(get_field(base, user, "com.example.x"), 404, "M_NOT_FOUND")
    assert "com.example.x" not in profile(base, user)
    # Deleting what is not there succeeds.
    assert assert_ok(delete_field(base, user, "com.example.x")) == {}
    assert assert_ok(delete_field(base, user, "m.tz")) == {}


def test_delete_displayname_and_avatar_updates_rooms(base):
    u = new_user(base, "del")
    room = create_room(base, u["access_token"])
    assert_ok(put_field(base, u, "avatar_url", "mxc://example.org/abc"))
    member = get_state(base, u["access_token"], room, "m.room.member", u["user_id"])
    assert member["displayname"] == u["username"] and member["avatar_url"] == "mxc://example.org/abc"
    assert_ok(delete_field(base, u, "displayname"))
    assert_error(get_field(base, u, "displayname"), 404, "M_NOT_FOUND")
    assert_ok(delete_field(base, u, "avatar_url"))
    assert_error(get_field(base, u, "avatar_url"), 404, "M_NOT_FOUND")
    assert profile(base, u) == {}
    member = get_state(base, u["access_token"], room, "m.room.member", u["user_id"])
    assert member["membership"] == "join"
    assert "displayname" not in member and "avatar_url" not in member, member


def test_custom_field_does_not_touch_member_events(base, user2):
    u = new_user(base, "quiet")
    room = room_pair(base, u, user2)
    before = get_state(base, u["access_token"], room, "m.room.member", u["user_id"])
    assert_ok(put_field(base, u, "m.tz", "Asia/Tokyo"))
    after = get_state(base, u["access_token"], room, "m.room.member", u["user_id"])
    assert after == before
    assert "m.tz" not in after


# ---------------------------------------------------------------- permissions


def test_only_own_profile(base, user, user2):
    assert_ok(put_field(base, user2, "com.example.x", "mine"))
    r = put_field(base, user2, "com.example.x", "yours", token=user["access_token"])
    assert_error(r, 403, "M_FORBIDDEN")
    assert_error(delete_field(base, user2, "com.example.x", token=user["access_token"]), 403, "M_FORBIDDEN")
    assert_error(delete_field(base, user2, "displayname", token=user["access_token"]), 403, "M_FORBIDDEN")
    assert assert_ok(get_field(base, user2, "com.example.x")) == {"com.example.x": "mine"}
    assert profile(base, user2)["displayname"] == user2["username"]


def test_writes_need_auth(base, user):
    r = call(base, "PUT", fpath(user["user_id"], "com.example.x"), {"com.example.x": 1})
    assert_error(r, 401, "M_MISSING_TOKEN")
    assert_error(call(base, "DELETE", fpath(user["user_id"], "com.example.x")), 401, "M_MISSING_TOKEN")


def test_capability(base, user):
    caps = assert_ok(call(base, "GET", f"{CLIENT_V3}/capabilities", token=user["access_token"]))["capabilities"]
    assert caps["m.profile_fields"] == {"enabled": True}, caps
    # The deprecated capabilities stay, enabled (spec v1.16).
    assert caps["m.set_displayname"]["enabled"] is True
    assert caps["m.set_avatar_url"]["enabled"] is True


# ---------------------------------------------------------------- deactivation


def profile_field_rows(stratus, user_id) -> int | None:
    """Rows of the user in the local D1 database's profile_fields table; None when the
    server is not one we started."""
    dbs = sqlite_with_table(stratus, "profile_fields")
    if not dbs:
        return None
    total = 0
    for db in dbs:
        con = sqlite3.connect(db)
        try:
            total += con.execute("SELECT COUNT(*) FROM profile_fields WHERE user_id = ?", (user_id,)).fetchone()[0]
        finally:
            con.close()
    return total


def test_deactivation_clears_custom_fields(stratus):
    base = stratus.base
    u = new_user(base, "gone")
    assert_ok(put_field(base, u, "m.tz", "Europe/Berlin"))
    assert_ok(put_field(base, u, "com.example.x", {"k": "v"}))
    assert profile_field_rows(stratus, u["user_id"]) in (2, None)
    r = uia_password(base, "POST", f"{CLIENT_V3}/account/deactivate", {}, u["access_token"], u["user_id"], u["password"])
    assert_ok(r)
    assert_error(get_field(base, u, "m.tz"), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", fpath(u["user_id"])), 404, "M_NOT_FOUND")
    rows = profile_field_rows(stratus, u["user_id"])
    if rows is None:
        pytest.skip("not our server: the stored rows cannot be inspected")
    assert rows == 0
