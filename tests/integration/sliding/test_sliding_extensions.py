"""Sliding sync extensions (MSC4186 at the unstable endpoint, with MSC3885 to-device, MSC3884
e2ee, MSC3959 account data, MSC3960 receipts, MSC3961 typing) in the shapes matrix-rust-sdk
and matrix-js-sdk send: delivery, acknowledgement, scoping to lists and subscriptions, and
the long-poll woken by what the extensions carry."""

from __future__ import annotations

import uuid
from typing import Any

from e2ee_helpers import one_time_keys, setup_device
from matrix_helpers import CLIENT_V3, assert_ok, call, login, new_user, qid
from rooms_helpers import create_room, room_pair, send
from sliding_helpers import BackgroundSliding, room_list, sliding


def ss(base: str, token: str, body: dict, pos: str | None = None, timeout: int = 0) -> dict:
    return sliding(base, token, body, pos=pos, timeout=timeout, conn_id=None)


def ext(body: dict, name: str) -> Any:
    return body.get("extensions", {}).get(name)


def to_device_body(since: str | None = None) -> dict:
    td: dict[str, Any] = {"enabled": True, "limit": 100}
    if since is not None:
        td["since"] = since
    return {"conn_id": "td", "extensions": {"to_device": td}}


def send_to_device(base: str, sender: dict, target: dict, content: dict, device: str | None = None) -> None:
    msgs = {target["user_id"]: {device or target["device_id"]: content}}
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/sendToDevice/m.test/{uuid.uuid4().hex}", {"messages": msgs}, token=sender["access_token"]))


def typing(base: str, u: dict, room: str, on: bool = True) -> None:
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room)}/typing/{qid(u['user_id'])}", {"typing": on, "timeout": 30000}, token=u["access_token"]))


def receipt(base: str, u: dict, room: str, event_id: str, kind: str = "m.read") -> None:
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room)}/receipt/{kind}/{qid(event_id)}", {}, token=u["access_token"]))


def room_account_data(base: str, u: dict, room: str, kind: str, content: dict) -> None:
    path = f"{CLIENT_V3}/user/{qid(u['user_id'])}/rooms/{qid(room)}/account_data/{kind}"
    assert_ok(call(base, "PUT", path, content, token=u["access_token"]))


def global_account_data(base: str, u: dict, kind: str, content: dict) -> None:
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/user/{qid(u['user_id'])}/account_data/{kind}", content, token=u["access_token"]))


def test_to_device_acknowledged_only_when_confirmed(base, user, user2):
    tok = user2["access_token"]
    first = ss(base, tok, to_device_body())
    since = ext(first, "to_device")["next_batch"]
    assert ext(first, "to_device")["events"] == []
    send_to_device(base, user, user2, {"n": 1})
    send_to_device(base, user, user2, {"n": 2})
    got = ss(base, tok, to_device_body(since), pos=first["pos"])
    td = ext(got, "to_device")
    assert [(e["sender"], e["type"], e["content"]) for e in td["events"]] == [(user["user_id"], "m.test", {"n": 1}), (user["user_id"], "m.test", {"n": 2})]
    # The response was lost: the retry with the same `since` gets the same messages.
    again = ss(base, tok, to_device_body(since), pos=first["pos"])
    assert [e["content"] for e in ext(again, "to_device")["events"]] == [{"n": 1}, {"n": 2}]
    assert ext(again, "to_device")["next_batch"] == td["next_batch"]
    # Confirming with the new `since` (on the retry's `pos`: a retry replaces the answer it
    # repeats) acknowledges them; later messages still come.
    send_to_device(base, user, user2, {"n": 3})
    after = ss(base, tok, to_device_body(td["next_batch"]), pos=again["pos"])
    assert [e["content"] for e in ext(after, "to_device")["events"]] == [{"n": 3}]
    last = ss(base, tok, to_device_body(ext(after, "to_device")["next_batch"]), pos=after["pos"])
    assert ext(last, "to_device")["events"] == []
    # Another device's queue is its own; a disabled extension is absent.
    other = login(base, user2["user_id"])
    send_to_device(base, user, user2, {"n": 4}, device=other["device_id"])
    assert [e["content"] for e in ext(ss(base, other["access_token"], to_device_body()), "to_device")["events"]] == [{"n": 4}]
    assert ext(ss(base, tok, {"conn_id": "off", "extensions": {"to_device": {"enabled": False}}}), "to_device") is None


def test_e2ee_counts_and_device_lists(base, user, user2):
    alice, bob = user, user2
    stranger = new_user(base, "stranger")
    room_pair(base, alice, bob)
    signer = setup_device(base, alice)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/keys/upload", {"one_time_keys": one_time_keys(5, alice["user_id"], signer)}, token=alice["access_token"]))
    assert_ok(call(base, "POST", f"{CLIENT_V3}/keys/upload", {"fallback_keys": one_time_keys(1, alice["user_id"], signer, fallback=True)}, token=alice["access_token"]))
    body = {"conn_id": "e2ee", "extensions": {"e2ee": {"enabled": True}}}
    first = ss(base, alice["access_token"], body)
    e = ext(first, "e2ee")
    assert e["device_one_time_keys_count"]["signed_curve25519"] == 5
    assert e["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # No device-list changes on a connection's first response: the client queries everyone.
    assert e["device_lists"] == {"changed": [], "left": []}

    # Bob's new device (sharing a room) is reported; a stranger's is not.
    second = login(base, bob["user_id"])
    setup_device(base, {"user_id": bob["user_id"], "device_id": second["device_id"], "access_token": second["access_token"]})
    setup_device(base, stranger)
    got = ss(base, alice["access_token"], body, pos=first["pos"])
    e = ext(got, "e2ee")
    assert bob["user_id"] in e["device_lists"]["changed"], e
    assert stranger["user_id"] not in e["device_lists"]["changed"]
    # Counts come every time, and follow claims.
    assert_ok(call(base, "POST", f"{CLIENT_V3}/keys/claim", {"one_time_keys": {alice["user_id"]: {alice["device_id"]: "signed_curve25519"}}}, token=bob["access_token"]))
    later = ss(base, alice["access_token"], body, pos=got["pos"])
    assert ext(later, "e2ee")["device_one_time_keys_count"]["signed_curve25519"] == 4
    assert bob["user_id"] not in ext(later, "e2ee")["device_lists"]["changed"]


def one_room_list(name: str = "top") -> dict:
    return {name: room_list([[0, 0]], required_state=[])}


def test_account_data_global_and_per_room(base, user):
    tok = user["access_token"]
    inside = create_room(base, tok)
    outside = create_room(base, tok)
    global_account_data(base, user, "org.example.global", {"v": 1})
    room_account_data(base, user, inside, "org.example.room", {"v": "in"})
    room_account_data(base, user, outside, "org.example.room", {"v": "out"})
    body = {
        "conn_id": "ad",
        "room_subscriptions": {inside: {"timeline_limit": 1, "required_state": []}},
        "extensions": {"account_data": {"enabled": True, "lists": [], "rooms": ["*"]}},
    }
    first = ss(base, tok, body)
    ad = ext(first, "account_data")
    kinds = {e["type"]: e["content"] for e in ad["global"]}
    assert kinds["org.example.global"] == {"v": 1}
    assert "m.push_rules" in kinds
    assert ad["rooms"] == {inside: [{"type": "org.example.room", "content": {"v": "in"}}]}

    # Incremental: only changes, and only for rooms in scope.
    room_account_data(base, user, outside, "org.example.room", {"v": "out2"})
    room_account_data(base, user, inside, "m.tag", {"tags": {"m.favourite": {"order": 0.5}}})
    global_account_data(base, user, "org.example.global", {"v": 2})
    got = ss(base, tok, body, pos=first["pos"])
    ad = ext(got, "account_data")
    assert ad["global"] == [{"type": "org.example.global", "content": {"v": 2}}]
    assert ad["rooms"] == {inside: [{"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}}]}

    # A room entering the scope gets all of its account data, not only what changed.
    wider = dict(body, room_subscriptions={**body["room_subscriptions"], outside: {"timeline_limit": 1, "required_state": []}})
    more = ss(base, tok, wider, pos=got["pos"])
    assert ext(more, "account_data")["rooms"].get(outside) == [{"type": "org.example.room", "content": {"v": "out2"}}], ext(more, "account_data")


def test_receipts_and_typing_scoped_to_lists_and_rooms(base, user, user2):
    me, them = user2, user
    elsewhere = room_pair(base, them, me)
    top = room_pair(base, them, me)
    e_else = send(base, them["access_token"], elsewhere, "elsewhere")
    e_top = send(base, them["access_token"], top, "top")  # `top` is now the most recent room
    receipt(base, them, top, e_top)
    receipt(base, them, elsewhere, e_else)
    receipt(base, me, top, e_top, "m.read.private")
    typing(base, them, elsewhere)
    body = {
        "conn_id": "eph",
        "lists": one_room_list(),
        "extensions": {"receipts": {"enabled": True, "lists": ["top"], "rooms": []}, "typing": {"enabled": True, "lists": ["top"]}},
    }
    first = ss(base, me["access_token"], body)
    assert list(first["rooms"]) == [top]
    rc = ext(first, "receipts")
    # The first response: the room's current receipts, the user's own private one included;
    # nothing of the room outside the window (its typing, its receipts).
    assert set(rc["rooms"]) == {top}, rc
    content = rc["rooms"][top]
    assert content["type"] == "m.receipt"
    assert them["user_id"] in content["content"][e_top]["m.read"]
    assert me["user_id"] in content["content"][e_top]["m.read.private"]
    assert ext(first, "typing") is None

    # `elsewhere` becomes the most recent room, so it moves into the [0, 0] window and `top`
    # out of it: typing in `top` now is not shown, and `elsewhere`, new to the client, comes
    # with who is typing there (since before the connection began) and its receipts.
    typing(base, them, top)
    e2 = send(base, me["access_token"], elsewhere, "now the most recent room")
    receipt(base, them, elsewhere, e2)
    got = ss(base, me["access_token"], body, pos=first["pos"])
    assert list(got["rooms"]) == [elsewhere], got["rooms"]
    ty = ext(got, "typing")
    assert ty["rooms"] == {elsewhere: {"type": "m.typing", "content": {"user_ids": [them["user_id"]]}}}, ty
    rc = ext(got, "receipts")
    assert set(rc["rooms"]) == {elsewhere}, rc
    assert them["user_id"] in rc["rooms"][elsewhere]["content"][e2]["m.read"]

    # Scoped to a subscription by room ID instead: only that room.
    sub = {
        "conn_id": "sub",
        "room_subscriptions": {top: {"timeline_limit": 1, "required_state": []}},
        "extensions": {"typing": {"enabled": True, "lists": [], "rooms": [top]}, "receipts": {"enabled": True, "lists": [], "rooms": [elsewhere]}},
    }
    s = ss(base, me["access_token"], sub)
    assert set(ext(s, "typing")["rooms"]) == {top}
    # `elsewhere` is named but not subscribed: not in the response, so no receipts.
    assert ext(s, "receipts") is None
    # Typing stops: an already-sent room is told.
    typing(base, them, top, on=False)
    s2 = ss(base, me["access_token"], sub, pos=s["pos"])
    assert ext(s2, "typing")["rooms"][top]["content"]["user_ids"] == []


def test_long_poll_woken_by_to_device_and_typing(base, user, user2):
    me, them = user2, user
    room = room_pair(base, them, me)
    send(base, them["access_token"], room, "hello")
    body = {
        "conn_id": "poll",
        "lists": one_room_list(),
        "extensions": {"to_device": {"enabled": True}, "typing": {"enabled": True}},
    }
    first = ss(base, me["access_token"], body)
    since = ext(first, "to_device")["next_batch"]
    body["extensions"]["to_device"]["since"] = since
    # Nothing new: a short poll answers without extensions content.
    idle = ss(base, me["access_token"], body, pos=first["pos"], timeout=500)
    assert ext(idle, "to_device")["events"] == [] and not (ext(idle, "typing") or {}).get("rooms")

    waiting = BackgroundSliding(base, me["access_token"], body, idle["pos"], conn_id="poll")
    send_to_device(base, them, me, {"wake": 1})
    got, _ = waiting.result()
    assert [e["content"] for e in ext(got, "to_device")["events"]] == [{"wake": 1}]

    body["extensions"]["to_device"]["since"] = ext(got, "to_device")["next_batch"]
    waiting = BackgroundSliding(base, me["access_token"], body, got["pos"], conn_id="poll")
    typing(base, them, room)
    got, _ = waiting.result()
    assert ext(got, "typing")["rooms"][room]["content"]["user_ids"] == [them["user_id"]]
    assert ext(got, "to_device")["events"] == []
