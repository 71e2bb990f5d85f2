"""Sliding sync (MSC4186) with matrix-js-sdk's `SlidingSync`, as Element Web uses it
(tests/integration/clients/sliding_js.mjs: a `SlidingSync` handed to `startClient`, with
the Rust crypto on, so the e2ee and to_device extensions are requested too): the room list
and a live message, and an encrypted room between two js-sdk devices."""

from __future__ import annotations

import json
from pathlib import Path

from e2ee_client_helpers import register_by_secret
from matrix_helpers import DEFAULT_PASSWORD, assert_ok, call, login
from rooms_helpers import create_room, rpath, send_text

JS_SCRIPT = Path(__file__).resolve().parent / "sliding_js.mjs"


def test_js_sdk_sliding_sync_lists_rooms_and_receives_a_live_message(base, shared_secret, node, run_client):
    user_id = register_by_secret(base, shared_secret, "ssjs")
    token = login(base, user_id)["access_token"]
    rooms = [create_room(base, token, name=f"js room {i}") for i in range(3)]
    for i, room_id in enumerate(rooms):
        send_text(base, token, room_id, f"js message {i}")

    live = "live through sliding sync"
    args = {"homeserver": base, "user": user_id, "password": DEFAULT_PASSWORD, "rooms": rooms, "top": rooms[0], "body": live}
    run = run_client([node, JS_SCRIPT, json.dumps(args)])
    listed = run.expect("rooms")
    assert listed["user_id"] == user_id
    assert listed["count"] == len(rooms), listed
    by_id = {r["room_id"]: r for r in listed["rooms"]}
    assert set(by_id) == set(rooms), listed
    for i, room_id in enumerate(rooms):
        r = by_id[room_id]
        assert r["membership"] == "join" and r["name"] == f"js room {i}", r
        assert r["last_event"] == {"type": "m.room.message", "sender": user_id, "body": f"js message {i}"}, r

    run.expect("ready")
    send_text(base, token, rooms[0], live)
    got = run.expect("message")
    assert got["message"] == {"room_id": rooms[0], "type": "m.room.message", "body": live, "sender": user_id}, got
    assert got["room"]["last_event"]["body"] == live, got
    run.finish()


def test_js_sdk_sliding_sync_decrypts_in_an_encrypted_room(base, shared_secret, node, run_client):
    alice = register_by_secret(base, shared_secret, "ssja")
    bob = register_by_secret(base, shared_secret, "ssjb")
    args = {"mode": "e2ee", "homeserver": base, "alice": alice, "bob": bob, "password": DEFAULT_PASSWORD}
    run = run_client([node, JS_SCRIPT, json.dumps(args)])
    got = run.expect("decrypted")
    assert got["message"] == {"sender": alice, "body": "js sliding e2ee: a secret", "wire_type": "m.room.encrypted", "encrypted": True}, got
    run.finish()
    # The server holds only the ciphertext.
    token = login(base, bob)["access_token"]
    events = assert_ok(call(base, "GET", rpath(got["room_id"], "messages"), token=token, params={"dir": "b", "limit": 50}))["chunk"]
    sent = [e for e in events if e["sender"] == alice and e["type"] in ("m.room.message", "m.room.encrypted")]
    assert [e["type"] for e in sent] == ["m.room.encrypted"], sent
