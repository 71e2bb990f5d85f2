"""Typing (with timeouts), receipts (public, private, threaded), read markers, account
data and tags, presence."""

import time

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user, qid
from rooms_helpers import create_room, room_pair, send
from sync_helpers import joined, sync


def ephemeral(body, room, kind):
    return [e for e in joined(body, room).get("ephemeral", {}).get("events", []) if e["type"] == kind]


def typing_path(room, user_id):
    return f"{CLIENT_V3}/rooms/{qid(room)}/typing/{qid(user_id)}"


def test_typing_start_stop_and_timeout(base, user, user2):
    room = room_pair(base, user, user2)
    tok2 = user2["access_token"]
    since = sync(base, tok2)["next_batch"]
    assert_ok(call(base, "PUT", typing_path(room, user["user_id"]), {"typing": True, "timeout": 30000}, token=user["access_token"]))
    body = sync(base, tok2, since)
    assert ephemeral(body, room, "m.typing")[0]["content"]["user_ids"] == [user["user_id"]]
    since = body["next_batch"]
    assert_ok(call(base, "PUT", typing_path(room, user["user_id"]), {"typing": False}, token=user["access_token"]))
    body = sync(base, tok2, since)
    assert ephemeral(body, room, "m.typing")[0]["content"]["user_ids"] == []
    since = body["next_batch"]
    # A short timeout expires by itself, and the expiry wakes the sync.
    assert_ok(call(base, "PUT", typing_path(room, user["user_id"]), {"typing": True, "timeout": 1500}, token=user["access_token"]))
    body = sync(base, tok2, since)
    assert ephemeral(body, room, "m.typing")[0]["content"]["user_ids"] == [user["user_id"]]
    t0 = time.monotonic()
    body = sync(base, tok2, body["next_batch"], timeout=15000, set_presence="offline")
    assert time.monotonic() - t0 < 12
    assert ephemeral(body, room, "m.typing")[0]["content"]["user_ids"] == []
    # Someone else's typing, or a room one is not in: refused.
    assert_error(call(base, "PUT", typing_path(room, user["user_id"]), {"typing": True}, token=tok2), 403, "M_FORBIDDEN")
    stranger = new_user(base)
    assert_error(call(base, "PUT", typing_path(room, stranger["user_id"]), {"typing": True}, token=stranger["access_token"]), 403, "M_FORBIDDEN")


def test_receipts_public_private_threaded(base, user, user2):
    room = room_pair(base, user, user2)
    e1 = send(base, user["access_token"], room, "one")
    since1 = sync(base, user["access_token"])["next_batch"]
    since2 = sync(base, user2["access_token"])["next_batch"]
    rpath = lambda kind, e: f"{CLIENT_V3}/rooms/{qid(room)}/receipt/{kind}/{qid(e)}"
    assert_ok(call(base, "POST", rpath("m.read.private", e1), {}, token=user2["access_token"]))
    # Private: the reader sees it, the other member does not.
    mine = ephemeral(sync(base, user2["access_token"], since2), room, "m.receipt")
    assert mine and user2["user_id"] in mine[0]["content"][e1]["m.read.private"]
    assert ephemeral(sync(base, user["access_token"], since1), room, "m.receipt") == []
    assert_ok(call(base, "POST", rpath("m.read", e1), {"thread_id": "main"}, token=user2["access_token"]))
    theirs = ephemeral(sync(base, user["access_token"], since1), room, "m.receipt")
    r = theirs[0]["content"][e1]["m.read"][user2["user_id"]]
    assert r["thread_id"] == "main" and isinstance(r["ts"], int)
    assert_error(call(base, "POST", rpath("m.bogus", e1), {}, token=user2["access_token"]), 400, "M_INVALID_PARAM")
    assert_error(call(base, "POST", rpath("m.read", "$nope"), {}, token=user2["access_token"]), 404, "M_NOT_FOUND")


def test_read_markers_and_fully_read(base, user, user2):
    room = room_pair(base, user, user2)
    e1 = send(base, user["access_token"], room, "mark me")
    since = sync(base, user2["access_token"])["next_batch"]
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room)}/read_markers", {"m.fully_read": e1, "m.read": e1}, token=user2["access_token"]))
    body = sync(base, user2["access_token"], since)
    r = joined(body, room)
    assert {"type": "m.fully_read", "content": {"event_id": e1}} in r["account_data"]["events"]
    assert user2["user_id"] in ephemeral(body, room, "m.receipt")[0]["content"][e1]["m.read"]
    got = assert_ok(call(base, "GET", f"{CLIENT_V3}/user/{qid(user2['user_id'])}/rooms/{qid(room)}/account_data/m.fully_read", token=user2["access_token"]))
    assert got == {"event_id": e1}
    # m.fully_read cannot be set as plain account data.
    assert_error(call(base, "PUT", f"{CLIENT_V3}/user/{qid(user2['user_id'])}/rooms/{qid(room)}/account_data/m.fully_read", {"event_id": e1}, token=user2["access_token"]), 405, "M_BAD_JSON")


def test_account_data_and_tags(base, user):
    tok, uid = user["access_token"], user["user_id"]
    room = create_room(base, tok)
    ad = f"{CLIENT_V3}/user/{qid(uid)}/account_data/org.example.prefs"
    assert_error(call(base, "GET", ad, token=tok), 404, "M_NOT_FOUND")
    since = sync(base, tok)["next_batch"]
    assert_ok(call(base, "PUT", ad, {"theme": "dark"}, token=tok))
    assert assert_ok(call(base, "GET", ad, token=tok)) == {"theme": "dark"}
    rad = f"{CLIENT_V3}/user/{qid(uid)}/rooms/{qid(room)}/account_data/org.example.room"
    assert_ok(call(base, "PUT", rad, {"x": 1}, token=tok))
    tags = f"{CLIENT_V3}/user/{qid(uid)}/rooms/{qid(room)}/tags"
    assert_ok(call(base, "PUT", f"{tags}/m.favourite", {"order": 0.5}, token=tok))
    assert_ok(call(base, "PUT", f"{tags}/u.work", {}, token=tok))
    assert assert_ok(call(base, "GET", tags, token=tok)) == {"tags": {"m.favourite": {"order": 0.5}, "u.work": {}}}
    assert_ok(call(base, "DELETE", f"{tags}/u.work", token=tok))
    body = sync(base, tok, since)
    assert {"type": "org.example.prefs", "content": {"theme": "dark"}} in body["account_data"]["events"]
    radata = joined(body, room)["account_data"]["events"]
    assert {"type": "org.example.room", "content": {"x": 1}} in radata
    assert {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}} in radata
    other = new_user(base)
    assert_error(call(base, "GET", ad, token=other["access_token"]), 403, "M_FORBIDDEN")


def test_server_managed_account_data_is_405(base, user):
    """Spec: `PUT /account_data/{type}` answers 405 `M_BAD_JSON` for types the server
    manages through their own APIs."""
    tok, uid = user["access_token"], user["user_id"]
    room = create_room(base, tok)
    for kind in ["m.fully_read", "m.push_rules"]:
        r = call(base, "PUT", f"{CLIENT_V3}/user/{qid(uid)}/account_data/{kind}", {"event_id": "$x"}, token=tok)
        assert_error(r, 405, "M_BAD_JSON")
        r = call(base, "PUT", f"{CLIENT_V3}/user/{qid(uid)}/rooms/{qid(room)}/account_data/{kind}", {"event_id": "$x"}, token=tok)
        assert_error(r, 405, "M_BAD_JSON")


def test_account_data_empty_body_is_not_json(base, user):
    tok, uid = user["access_token"], user["user_id"]
    r = call(base, "PUT", f"{CLIENT_V3}/user/{qid(uid)}/account_data/org.example.empty", data="", token=tok)
    assert_error(r, 400, "M_NOT_JSON")
    assert_error(call(base, "GET", f"{CLIENT_V3}/user/{qid(uid)}/account_data/org.example.empty", token=tok), 404, "M_NOT_FOUND")


def test_presence_set_get_and_visibility(base, user, user2):
    room_pair(base, user, user2)
    p1 = f"{CLIENT_V3}/presence/{qid(user['user_id'])}/status"
    assert_ok(call(base, "PUT", p1, {"presence": "online", "status_msg": "hello"}, token=user["access_token"]))
    got = assert_ok(call(base, "GET", p1, token=user2["access_token"]))
    assert got["presence"] == "online" and got["status_msg"] == "hello" and got["currently_active"] is True
    stranger = new_user(base)
    assert_error(call(base, "GET", p1, token=stranger["access_token"]), 403, "M_FORBIDDEN")
    assert_error(call(base, "PUT", p1, {"presence": "online"}, token=user2["access_token"]), 403, "M_FORBIDDEN")
    assert_error(call(base, "PUT", p1, {"presence": "bogus"}, token=user["access_token"]), 400, "M_INVALID_PARAM")
    body = sync(base, user2["access_token"], set_presence="offline")
    assert any(e["sender"] == user["user_id"] and e["content"]["status_msg"] == "hello" for e in body["presence"]["events"])
    body = sync(base, stranger["access_token"], set_presence="offline")
    assert not any(e["sender"] == user["user_id"] for e in body["presence"]["events"])
