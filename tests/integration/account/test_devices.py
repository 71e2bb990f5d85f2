"""Device management: list, get, rename, delete, bulk delete."""

import time

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
    password_auth,
    uia_password,
    uia_start,
)

DEVICES = f"{CLIENT_V3}/devices"


def test_list_devices(base, user):
    body = assert_ok(call(base, "GET", DEVICES, token=user["access_token"]))
    devs = body["devices"]
    assert [d["device_id"] for d in devs] == [user["device_id"]], body
    d = devs[0]
    # Registered without initial_device_display_name: no name, so the key is absent
    # (client_device.yaml: "Absent if no name has been set"), never null.
    assert "display_name" not in d and None not in d.values(), d
    assert isinstance(d["last_seen_ts"], int), d
    now_ms = time.time() * 1000
    assert now_ms - 10 * 60 * 1000 < d["last_seen_ts"] <= now_ms + 60 * 1000, d
    assert isinstance(d["last_seen_ip"], str) and d["last_seen_ip"], d


def test_list_devices_several(base, user):
    s2 = login(base, user["username"], user["password"], initial_device_display_name="second")
    s3 = login(base, user["username"], user["password"], initial_device_display_name="third")
    body = assert_ok(call(base, "GET", DEVICES, token=s3["access_token"]))
    by_id = {d["device_id"]: d for d in body["devices"]}
    assert set(by_id) == {user["device_id"], s2["device_id"], s3["device_id"]}, body
    assert by_id[s2["device_id"]]["display_name"] == "second"
    assert by_id[s3["device_id"]]["display_name"] == "third"


def test_devices_are_per_user(base, user, user2):
    assert user2["device_id"] not in device_ids(base, user["access_token"])
    assert user["device_id"] not in device_ids(base, user2["access_token"])


def test_list_devices_requires_auth(base):
    assert_error(call(base, "GET", DEVICES), 401, "M_MISSING_TOKEN")


def test_get_device(base, user):
    d = assert_ok(call(base, "GET", f"{DEVICES}/{user['device_id']}", token=user["access_token"]))
    assert d["device_id"] == user["device_id"]
    assert "display_name" not in d and None not in d.values(), d
    assert isinstance(d["last_seen_ts"], int)


def test_get_unknown_device(base, user):
    r = call(base, "GET", f"{DEVICES}/NOSUCHDEVICE", token=user["access_token"])
    assert_error(r, 404, "M_NOT_FOUND")


def test_get_other_users_device(base, user, user2):
    r = call(base, "GET", f"{DEVICES}/{user2['device_id']}", token=user["access_token"])
    assert_error(r, 404, "M_NOT_FOUND")


def test_rename_device(base, user):
    path = f"{DEVICES}/{user['device_id']}"
    assert assert_ok(call(base, "PUT", path, {"display_name": "Renamed ✓"}, token=user["access_token"])) == {}
    d = assert_ok(call(base, "GET", path, token=user["access_token"]))
    assert d["display_name"] == "Renamed ✓", d


def test_rename_other_device_of_same_user(base, user):
    s2 = login(base, user["username"], user["password"])
    path = f"{DEVICES}/{s2['device_id']}"
    assert_ok(call(base, "PUT", path, {"display_name": "from the first session"}, token=user["access_token"]))
    d = assert_ok(call(base, "GET", path, token=s2["access_token"]))
    assert d["display_name"] == "from the first session"


def test_rename_unknown_device(base, user):
    r = call(base, "PUT", f"{DEVICES}/NOSUCHDEVICE", {"display_name": "x"}, token=user["access_token"])
    assert_error(r, 404, "M_NOT_FOUND")


def test_rename_other_users_device(base, user, user2):
    r = call(base, "PUT", f"{DEVICES}/{user2['device_id']}", {"display_name": "pwned"}, token=user["access_token"])
    assert_error(r, 404, "M_NOT_FOUND")
    d = assert_ok(call(base, "GET", f"{DEVICES}/{user2['device_id']}", token=user2["access_token"]))
    assert d.get("display_name") != "pwned"


def test_rename_bad_type(base, user):
    r = call(base, "PUT", f"{DEVICES}/{user['device_id']}", {"display_name": 12}, token=user["access_token"])
    assert_error(r, 400, "M_BAD_JSON")


def test_rename_not_json(base, user):
    r = call(base, "PUT", f"{DEVICES}/{user['device_id']}", data="{bad", token=user["access_token"])
    assert_error(r, 400, "M_NOT_JSON")


def test_rename_requires_auth(base, user):
    r = call(base, "PUT", f"{DEVICES}/{user['device_id']}", {"display_name": "x"})
    assert_error(r, 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------- delete


def test_delete_device(base, user):
    s2 = login(base, user["username"], user["password"])
    path = f"{DEVICES}/{s2['device_id']}"
    uia = uia_start(base, "DELETE", path, {}, user["access_token"])
    assert uia["flows"] == [{"stages": ["m.login.password"]}], uia
    # The challenge alone deletes nothing.
    assert_token_works(base, s2["access_token"], user["user_id"])
    r = call(
        base,
        "DELETE",
        path,
        {"auth": password_auth(user["user_id"], user["password"], uia["session"])},
        token=user["access_token"],
    )
    assert assert_ok(r) == {}
    assert_token_dead(base, s2["access_token"])
    assert s2["device_id"] not in device_ids(base, user["access_token"])
    assert_error(call(base, "GET", path, token=user["access_token"]), 404, "M_NOT_FOUND")


def test_delete_own_current_device(base, user):
    s2 = login(base, user["username"], user["password"])
    r = uia_password(
        base,
        "DELETE",
        f"{DEVICES}/{user['device_id']}",
        {},
        user["access_token"],
        user["user_id"],
        user["password"],
    )
    assert_ok(r)
    assert_token_dead(base, user["access_token"])
    assert device_ids(base, s2["access_token"]) == [s2["device_id"]]


def test_delete_device_wrong_password(base, user):
    s2 = login(base, user["username"], user["password"])
    path = f"{DEVICES}/{s2['device_id']}"
    r = uia_password(base, "DELETE", path, {}, user["access_token"], user["user_id"], "wrong-password")
    assert_error(r, 401, "M_FORBIDDEN")
    assert_token_works(base, s2["access_token"], user["user_id"])


def test_delete_device_requires_auth(base, user):
    r = call(base, "DELETE", f"{DEVICES}/{user['device_id']}", {})
    assert_error(r, 401, "M_MISSING_TOKEN")


def test_delete_other_users_device_does_not_delete(base, user, user2):
    r = call(base, "DELETE", f"{DEVICES}/{user2['device_id']}", {}, token=user["access_token"])
    if r.status_code == 401:
        body = r.json()
        r = call(
            base,
            "DELETE",
            f"{DEVICES}/{user2['device_id']}",
            {"auth": password_auth(user["user_id"], user["password"], body.get("session"))},
            token=user["access_token"],
        )
    assert r.status_code in (200, 404), r.text
    assert_token_works(base, user2["access_token"], user2["user_id"])


def test_delete_devices_bulk(base, user):
    s2 = login(base, user["username"], user["password"])
    s3 = login(base, user["username"], user["password"])
    body = {"devices": [s2["device_id"], s3["device_id"]]}
    r = uia_password(base, "POST", f"{CLIENT_V3}/delete_devices", body, user["access_token"], user["user_id"], user["password"])
    assert assert_ok(r) == {}
    assert_token_dead(base, s2["access_token"])
    assert_token_dead(base, s3["access_token"])
    assert_token_works(base, user["access_token"], user["user_id"])
    assert device_ids(base, user["access_token"]) == [user["device_id"]]


def test_delete_devices_uia_challenge_first(base, user):
    s2 = login(base, user["username"], user["password"])
    uia = uia_start(base, "POST", f"{CLIENT_V3}/delete_devices", {"devices": [s2["device_id"]]}, user["access_token"])
    assert uia["flows"] == [{"stages": ["m.login.password"]}], uia
    assert_token_works(base, s2["access_token"], user["user_id"])


def test_delete_devices_ignores_other_users_devices(base, user, user2):
    body = {"devices": [user2["device_id"]]}
    r = uia_password(base, "POST", f"{CLIENT_V3}/delete_devices", body, user["access_token"], user["user_id"], user["password"])
    assert r.status_code in (200, 404), r.text
    assert_token_works(base, user2["access_token"], user2["user_id"])


@pytest.mark.parametrize("body", [{}, {"devices": "DEVICE"}, {"devices": [1, 2]}])
def test_delete_devices_bad_body(base, user, body):
    uia = uia_start(base, "POST", f"{CLIENT_V3}/delete_devices", {"devices": []}, user["access_token"])
    b = dict(body)
    b["auth"] = password_auth(user["user_id"], user["password"], uia["session"])
    r = call(base, "POST", f"{CLIENT_V3}/delete_devices", b, token=user["access_token"])
    assert_error(r, 400, "M_BAD_JSON")
    assert_token_works(base, user["access_token"], user["user_id"])
