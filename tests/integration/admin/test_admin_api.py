"""The admin API over HTTP (issue 18; Synapse's docs/admin_api): who may call it, and the
endpoints synadm's test does not reach (shadow bans, event reports, server notices, media
deletion, room media quarantine, registration tokens under concurrent registrations, the
delete-status forms).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from matrix_helpers import (
    HTTP_TIMEOUT,
    admin_register_raw,
    assert_error,
    assert_ok,
    auth,
    new_user,
    qid,
    register_via_token,
    unique_username,
)
from rooms_helpers import create_room, invite, join, send_text

ADMIN = "/_synapse/admin"


@pytest.fixture(scope="module")
def admin(stratus):
    if not stratus.shared_secret:
        pytest.skip("no shared secret")
    return assert_ok(admin_register_raw(stratus.base, stratus.shared_secret, unique_username("root"), admin=True))


def a(base, method, path, token, body=None, params=None):
    return requests.request(method, base + ADMIN + path, headers=auth(token) if token else {}, json=body, params=params, timeout=HTTP_TIMEOUT)


def messages(base, token, room):
    r = requests.get(f"{base}/_matrix/client/v3/rooms/{room}/messages", headers=auth(token), params={"dir": "b", "limit": 50}, timeout=HTTP_TIMEOUT)
    return assert_ok(r)["chunk"]


def upload(base, token, data: bytes, content_type="text/plain"):
    r = requests.post(f"{base}/_matrix/media/v3/upload", data=data, headers={**auth(token), "Content-Type": content_type}, timeout=HTTP_TIMEOUT)
    return assert_ok(r)["content_uri"]


def download(base, token, mxc):
    server, media_id = mxc[len("mxc://") :].split("/", 1)
    return requests.get(f"{base}/_matrix/client/v1/media/download/{server}/{media_id}", headers=auth(token), timeout=HTTP_TIMEOUT)


ENDPOINTS = [
    ("GET", "/v1/server_version"),
    ("GET", "/v2/users"),
    ("GET", "/v2/users/@x:localhost"),
    ("PUT", "/v2/users/@x:localhost"),
    ("POST", "/v1/reset_password/@x:localhost"),
    ("GET", "/v1/rooms"),
    ("DELETE", "/v2/rooms/!x:localhost"),
    ("GET", "/v1/registration_tokens"),
    ("POST", "/v1/registration_tokens/new"),
    ("GET", "/v1/event_reports"),
    ("POST", "/v1/send_server_notice"),
    ("DELETE", "/v1/media/localhost/abc"),
    ("POST", "/v1/users/@x:localhost/shadow_ban"),
]


@pytest.mark.parametrize("method,path", ENDPOINTS)
def test_only_admins(stratus, method, path):
    base = stratus.base
    u = new_user(base, prefix="plain")
    assert_error(a(base, method, path, None, {}), 401, "M_MISSING_TOKEN")
    assert_error(a(base, method, path, u["access_token"], {}), 403, "M_FORBIDDEN")


def test_admin_flag_through_the_api(stratus, admin):
    base = stratus.base
    u = new_user(base, prefix="promote")
    assert_error(a(base, "GET", "/v1/server_version", u["access_token"]), 403, "M_FORBIDDEN")
    body = assert_ok(a(base, "PUT", f"/v2/users/{qid(u['user_id'])}", admin["access_token"], {"admin": True}))
    assert body["admin"] is True
    assert assert_ok(a(base, "GET", "/v1/server_version", u["access_token"]))["server_version"]
    assert_ok(a(base, "PUT", f"/v2/users/{qid(u['user_id'])}", admin["access_token"], {"admin": False}))
    assert_error(a(base, "GET", "/v1/server_version", u["access_token"]), 403, "M_FORBIDDEN")
    # Creation answers 201, a modification 200; a user of another server is refused.
    new_id = f"@{unique_username('put')}:{stratus.server_name}"
    r = a(base, "PUT", f"/v2/users/{qid(new_id)}", admin["access_token"], {"password": "pw-123456", "admin": True})
    assert r.status_code == 201 and r.json()["admin"] is True, r.text
    assert_error(a(base, "PUT", "/v2/users/%40x%3Aelsewhere.org", admin["access_token"], {}), 400, "M_INVALID_PARAM")
    assert_error(a(base, "GET", f"/v2/users/{qid('@nobody-' + unique_username() + ':' + stratus.server_name)}", admin["access_token"]), 404, "M_NOT_FOUND")


def test_user_listing_paging(stratus, admin):
    base = stratus.base
    prefix = unique_username("page")
    ids = sorted(new_user(base, prefix=prefix)["user_id"] for _ in range(3))
    first = assert_ok(a(base, "GET", "/v2/users", admin["access_token"], params={"name": prefix, "limit": 2}))
    assert first["total"] == 3 and [u["name"] for u in first["users"]] == ids[:2] and first["next_token"] == "2", first
    second = assert_ok(a(base, "GET", "/v2/users", admin["access_token"], params={"name": prefix, "from": first["next_token"]}))
    assert [u["name"] for u in second["users"]] == ids[2:] and "next_token" not in second, second
    back = assert_ok(a(base, "GET", "/v2/users", admin["access_token"], params={"name": prefix, "dir": "b"}))
    assert [u["name"] for u in back["users"]] == ids[::-1]
    admins = assert_ok(a(base, "GET", "/v2/users", admin["access_token"], params={"name": prefix, "admins": "true"}))
    assert admins["users"] == [] and admins["total"] == 0


def test_user_rooms_devices_whois(stratus, admin):
    base = stratus.base
    u = new_user(base, prefix="who")
    room = create_room(base, u["access_token"])
    body = assert_ok(a(base, "GET", f"/v1/users/{qid(u['user_id'])}/joined_rooms", admin["access_token"]))
    assert body == {"joined_rooms": [room], "total": 1}
    devices = assert_ok(a(base, "GET", f"/v2/users/{qid(u['user_id'])}/devices", admin["access_token"]))
    assert [d["device_id"] for d in devices["devices"]] == [u["device_id"]] and devices["total"] == 1
    whois = assert_ok(a(base, "GET", f"/v1/whois/{qid(u['user_id'])}", admin["access_token"]))
    assert whois["user_id"] == u["user_id"] and u["device_id"] in whois["devices"]
    state = assert_ok(a(base, "GET", f"/v1/rooms/{room}/state", admin["access_token"]))["state"]
    assert any(e["type"] == "m.room.create" and e["event_id"].startswith("$") for e in state)


def test_shadow_ban(stratus, admin):
    base = stratus.base
    owner, banned = new_user(base, prefix="sbown"), new_user(base, prefix="sbbad")
    room = create_room(base, owner["access_token"])
    invite(base, owner["access_token"], room, banned["user_id"])
    join(base, banned["access_token"], room)
    assert_ok(a(base, "POST", f"/v1/users/{qid(banned['user_id'])}/shadow_ban", admin["access_token"], {}))
    assert assert_ok(a(base, "GET", f"/v2/users/{qid(banned['user_id'])}", admin["access_token"]))["shadow_banned"] is True
    # The send succeeds for the sender...
    ghost = send_text(base, banned["access_token"], room, "nobody hears this")
    assert ghost.startswith("$")
    # ...and reaches nobody.
    assert ghost not in [e["event_id"] for e in messages(base, owner["access_token"], room)]
    r = requests.get(f"{base}/_matrix/client/v3/rooms/{room}/event/{quote(ghost)}", headers=auth(owner["access_token"]), timeout=HTTP_TIMEOUT)
    assert_error(r, 404, "M_NOT_FOUND")
    # Lifted: sends arrive again.
    assert_ok(a(base, "DELETE", f"/v1/users/{qid(banned['user_id'])}/shadow_ban", admin["access_token"]))
    heard = send_text(base, banned["access_token"], room, "now you hear me")
    assert heard in [e["event_id"] for e in messages(base, owner["access_token"], room)]


def test_event_reports(stratus, admin):
    base = stratus.base
    owner, reporter = new_user(base, prefix="rpown"), new_user(base, prefix="rprep")
    room = create_room(base, owner["access_token"], name="Reported room")
    invite(base, owner["access_token"], room, reporter["user_id"])
    join(base, reporter["access_token"], room)
    bad = send_text(base, owner["access_token"], room, "something reportable")
    r = requests.post(
        f"{base}/_matrix/client/v3/rooms/{room}/report/{quote(bad)}", headers=auth(reporter["access_token"]), json={"reason": "spam", "score": -100}, timeout=HTTP_TIMEOUT
    )
    assert_ok(r)
    listed = assert_ok(a(base, "GET", "/v1/event_reports", admin["access_token"], params={"room_id": room}))
    assert listed["total"] == 1, listed
    rep = listed["event_reports"][0]
    assert (rep["event_id"], rep["user_id"], rep["sender"], rep["reason"], rep["name"]) == (bad, reporter["user_id"], owner["user_id"], "spam", "Reported room")
    one = assert_ok(a(base, "GET", f"/v1/event_reports/{rep['id']}", admin["access_token"]))
    assert one["event_json"]["content"]["body"] == "something reportable"
    assert_ok(a(base, "DELETE", f"/v1/event_reports/{rep['id']}", admin["access_token"]))
    assert_error(a(base, "GET", f"/v1/event_reports/{rep['id']}", admin["access_token"]), 404, "M_NOT_FOUND")


def test_server_notices(stratus, admin):
    base = stratus.base
    u = new_user(base, prefix="notice")
    content = {"msgtype": "m.text", "body": "Scheduled maintenance tonight"}
    first = assert_ok(a(base, "POST", "/v1/send_server_notice", admin["access_token"], {"user_id": u["user_id"], "content": content}))
    # The user is invited to a room by the system user, joins, and reads the notice.
    r = requests.get(f"{base}/_matrix/client/v3/sync", headers=auth(u["access_token"]), timeout=HTTP_TIMEOUT)
    invites = assert_ok(r)["rooms"]["invite"]
    assert len(invites) == 1, invites
    room = next(iter(invites))
    join(base, u["access_token"], room)
    second = assert_ok(a(base, "POST", "/v1/send_server_notice", admin["access_token"], {"user_id": u["user_id"], "content": {"msgtype": "m.text", "body": "Done"}}))
    events = {e["event_id"]: e for e in messages(base, u["access_token"], room)}
    assert events[first["event_id"]]["content"]["body"] == "Scheduled maintenance tonight"
    assert events[first["event_id"]]["sender"] == f"@_server:{stratus.server_name}"
    assert events[second["event_id"]]["content"]["body"] == "Done"
    # Only the server speaks there.
    r = requests.put(
        f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/t{time.time_ns()}", headers=auth(u["access_token"]), json={"msgtype": "m.text", "body": "hi"}, timeout=HTTP_TIMEOUT
    )
    assert_error(r, 403, "M_FORBIDDEN")


def test_media_delete_and_user_media(stratus, admin):
    base = stratus.base
    u = new_user(base, prefix="mdel")
    one = upload(base, u["access_token"], b"first " + unique_username().encode())
    two = upload(base, u["access_token"], b"second " + unique_username().encode())
    listed = assert_ok(a(base, "GET", f"/v1/users/{qid(u['user_id'])}/media", admin["access_token"]))
    assert listed["total"] == 2 and [m["media_id"] for m in listed["media"]] == [two.rsplit("/", 1)[1], one.rsplit("/", 1)[1]], listed
    server, media_id = one[len("mxc://") :].split("/", 1)
    body = assert_ok(a(base, "DELETE", f"/v1/media/{server}/{media_id}", admin["access_token"]))
    assert body == {"deleted_media": [media_id], "total": 1}
    assert_error(download(base, u["access_token"], one), 404, "M_NOT_FOUND")
    assert download(base, u["access_token"], two).status_code == 200
    assert_error(a(base, "DELETE", f"/v1/media/{server}/{media_id}", admin["access_token"]), 404, "M_NOT_FOUND")
    body = assert_ok(a(base, "DELETE", f"/v1/users/{qid(u['user_id'])}/media", admin["access_token"]))
    assert body["total"] == 1 and body["deleted_media"] == [two.rsplit("/", 1)[1]]
    assert_error(download(base, u["access_token"], two), 404, "M_NOT_FOUND")


def test_quarantine_room_media(stratus, admin):
    base = stratus.base
    owner, other = new_user(base, prefix="qrown"), new_user(base, prefix="qroth")
    room = create_room(base, owner["access_token"])
    mxc = upload(base, owner["access_token"], b"room file " + unique_username().encode())
    elsewhere = upload(base, owner["access_token"], b"not in the room " + unique_username().encode())
    r = requests.put(
        f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/q{time.time_ns()}",
        headers=auth(owner["access_token"]),
        json={"msgtype": "m.file", "body": "f.txt", "url": mxc},
        timeout=HTTP_TIMEOUT,
    )
    assert_ok(r)
    body = assert_ok(a(base, "POST", f"/v1/room/{room}/media/quarantine", admin["access_token"], {}))
    assert body == {"num_quarantined": 1}
    assert_error(download(base, other["access_token"], mxc), 404, "M_NOT_FOUND")
    assert download(base, other["access_token"], elsewhere).status_code == 200



@pytest.fixture(scope="module")
def token_server(stratus_factory):
    server = stratus_factory({"REGISTRATION_MODE": "token"})
    admin = assert_ok(admin_register_raw(server.base, server.shared_secret, unique_username("root"), admin=True))
    return server, admin


def test_registration_token_uses_hold_under_concurrency(token_server):
    server, admin = token_server
    base, tok = server.base, unique_username("conc").replace("-", "")
    assert_ok(a(base, "POST", "/v1/registration_tokens/new", admin["access_token"], {"token": tok, "uses_allowed": 3}))
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: register_via_token(base, tok, "conc"), range(10)))
    ok = [r for r in results if r.status_code == 200]
    assert len(ok) == 3, [r.status_code for r in results]
    t = assert_ok(a(base, "GET", f"/v1/registration_tokens/{tok}", admin["access_token"]))
    assert (t["completed"], t["pending"]) == (3, 0), t
    assert assert_ok(requests.get(f"{base}/_matrix/client/v1/register/m.login.registration_token/validity", params={"token": tok}, timeout=HTTP_TIMEOUT)) == {"valid": False}


def test_registration_token_fields(token_server):
    server, admin = token_server
    base, tok = server.base, admin["access_token"]
    made = assert_ok(a(base, "POST", "/v1/registration_tokens/new", tok, {"length": 20}))
    assert len(made["token"]) == 20 and made["uses_allowed"] is None
    validity = f"{base}/_matrix/client/v1/register/m.login.registration_token/validity"
    assert assert_ok(requests.get(validity, params={"token": made["token"]}, timeout=HTTP_TIMEOUT)) == {"valid": True}
    assert_error(a(base, "POST", "/v1/registration_tokens/new", tok, {"token": made["token"]}), 400, "M_INVALID_PARAM")
    assert_error(a(base, "POST", "/v1/registration_tokens/new", tok, {"expiry_time": 1000}), 400, "M_INVALID_PARAM")
    assert_error(a(base, "POST", "/v1/registration_tokens/new", tok, {"uses_allowed": -1}), 400, "M_INVALID_PARAM")
    assert_error(a(base, "POST", "/v1/registration_tokens/new", tok, {"token": "bad token!"}), 400, "M_INVALID_PARAM")
    # An expiry in the near future: valid now, refused once passed.
    soon = int(time.time() * 1000) + 3000
    body = assert_ok(a(base, "PUT", f"/v1/registration_tokens/{made['token']}", tok, {"expiry_time": soon}))
    assert body["expiry_time"] == soon
    time.sleep(3.5)
    assert assert_ok(requests.get(validity, params={"token": made["token"]}, timeout=HTTP_TIMEOUT)) == {"valid": False}
    assert register_via_token(base, made["token"], "conc").status_code == 401
    listed = assert_ok(a(base, "GET", "/v1/registration_tokens", tok, params={"valid": "false"}))
    assert made["token"] in [t["token"] for t in listed["registration_tokens"]]
    assert_error(a(base, "PUT", "/v1/registration_tokens/nosuchtoken", tok, {"uses_allowed": 1}), 404, "M_NOT_FOUND")


def test_delete_without_purge_and_status_by_room(stratus, admin):
    base = stratus.base
    owner, member = new_user(base, prefix="npown"), new_user(base, prefix="npmem")
    room = create_room(base, owner["access_token"])
    invite(base, owner["access_token"], room, member["user_id"])
    join(base, member["access_token"], room)
    body = assert_ok(a(base, "DELETE", f"/v2/rooms/{room}", admin["access_token"], {"purge": False}))
    results = []
    for _ in range(40):
        results = assert_ok(a(base, "GET", f"/v2/rooms/{room}/delete_status", admin["access_token"]))["results"]
        if results and results[0]["status"] in ("complete", "failed"):
            break
        time.sleep(0.5)
    assert results[0]["delete_id"] == body["delete_id"] and results[0]["status"] == "complete", results
    # Everyone left; the room's history is still there (no purge) and it is not blocked.
    for u in (owner, member):
        r = requests.get(f"{base}/_matrix/client/v3/joined_rooms", headers=auth(u["access_token"]), timeout=HTTP_TIMEOUT)
        assert room not in assert_ok(r)["joined_rooms"]
    details = assert_ok(a(base, "GET", f"/v1/rooms/{room}", admin["access_token"]))
    assert details["joined_members"] == 0
    assert_error(a(base, "GET", "/v2/rooms/delete_status/nope", admin["access_token"]), 404, "M_NOT_FOUND")


def test_delete_v1_purges_at_once(stratus, admin):
    base = stratus.base
    owner = new_user(base, prefix="v1own")
    room = create_room(base, owner["access_token"])
    for i in range(5):
        send_text(base, owner["access_token"], room, f"m{i}")
    body = assert_ok(a(base, "DELETE", f"/v1/rooms/{room}", admin["access_token"], {}))
    assert body["kicked_users"] == [owner["user_id"]], body
    assert_error(a(base, "GET", f"/v1/rooms/{room}", admin["access_token"]), 404, "M_NOT_FOUND")
    r = requests.get(f"{base}/_matrix/client/v3/sync", headers=auth(owner["access_token"]), timeout=HTTP_TIMEOUT)
    assert room not in assert_ok(r)["rooms"].get("join", {})
    # Not blocked: the ID is simply unknown now.
    r = requests.post(f"{base}/_matrix/client/v3/rooms/{room}/join", headers=auth(owner["access_token"]), json={}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text
