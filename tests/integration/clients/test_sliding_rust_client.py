"""Sliding sync (MSC4186) with matrix-sdk + matrix-sdk-ui, the engine inside Element X
(tests/sliding_client: `SyncService` running `RoomListService` and the encryption sync).

The client logs in with a password and syncs only through
`/_matrix/client/unstable/org.matrix.simplified_msc3575/sync`; the test arranges rooms and
messages over plain HTTP and checks what the SDK's room list and timelines show."""

from __future__ import annotations

import time

from e2ee_client_helpers import register_by_secret
from matrix_helpers import DEFAULT_PASSWORD, assert_ok, call, login
from rooms_helpers import create_room, invite, join, membership_of, rpath, send_text


def _token(base: str, user_id: str) -> str:
    return login(base, user_id)["access_token"]


def _table(rooms: list[dict]) -> str:
    """One line a room, for failure messages."""
    return "\n".join(f"{r['room_id']} {r['state']} name={r['name']!r} stamp={r['recency_stamp']} latest={r['latest_event']}" for r in rooms)


def test_room_list_in_recency_order_and_a_new_message_moves_its_room_to_the_top(base, shared_secret, sliding_client, run_client):
    user_id = register_by_secret(base, shared_secret, "ssrl")
    token = _token(base, user_id)
    # More rooms than RoomListService's first window (0-19), so the list grows in a second
    # request. Names run against recency, so a list sorted by name (or by nothing) fails.
    # Three other users create them (Synapse limits room creation per user), the user joins.
    creators = [_token(base, register_by_secret(base, shared_secret, "ssrc")) for _ in range(3)]
    rooms = []
    for i in range(24):
        room_id = create_room(base, creators[i % 3], name=f"room {i:02d}", preset="public_chat")
        join(base, token, room_id)
        rooms.append(room_id)
    bodies = {}
    for i, room_id in enumerate(rooms):
        bodies[room_id] = f"last message in room {i:02d}"
        send_text(base, token, room_id, bodies[room_id])
        time.sleep(0.01)  # distinct origin_server_ts: the SDK orders rooms by them
    expected = list(reversed(rooms))  # the most recent first

    oldest = rooms[0]
    fresh = "a new message in the oldest room"
    run = run_client([sliding_client, "room-list", "--homeserver", base, "--user", user_id, "--password", DEFAULT_PASSWORD,
                      "--expect", str(len(rooms)), "--top", oldest, "--body", fresh])
    listed = run.expect("rooms")["rooms"]
    assert [r["room_id"] for r in listed] == expected, "expected " + " ".join(expected) + "\n" + _table(listed)
    for r, i in zip(listed, reversed(range(len(rooms)))):
        assert r["state"] == "Joined" and r["joined_count"] == 2, r
        assert r["name"] == f"room {i:02d}", r
        assert r["latest_event"]["kind"] == "remote" and r["latest_event"]["body"] == bodies[r["room_id"]], r
        assert r["latest_event"]["sender"] == user_id, r
    # The server's bump stamps agree with the order (the SDK's fallback when it has no event).
    stamps = [r["recency_stamp"] for r in listed]
    assert all(isinstance(s, int) for s in stamps), listed
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps), stamps

    run.expect("ready")
    send_text(base, token, oldest, fresh)
    moved = run.expect("top")["rooms"]
    assert [r["room_id"] for r in moved] == [oldest] + expected[:-1], _table(moved)
    top = moved[0]
    assert top["latest_event"]["body"] == fresh, top
    assert top["recency_stamp"] > listed[0]["recency_stamp"], (top, listed[0])
    run.finish()


def test_an_invite_shows_in_the_room_list_and_is_accepted(base, shared_secret, sliding_client, run_client):
    alice = register_by_secret(base, shared_secret, "ssia")
    bob = register_by_secret(base, shared_secret, "ssib")
    alice_token = _token(base, alice)
    bob_token = _token(base, bob)
    create_room(base, bob_token, name="bob's own room")
    room_id = create_room(base, alice_token, name="alice invites")
    send_text(base, alice_token, room_id, "before the invite")

    run = run_client([sliding_client, "accept-invite", "--homeserver", base, "--user", bob, "--password", DEFAULT_PASSWORD,
                      "--room", room_id])
    # Sent while the client starts: the invite reaches it either in its first response or live.
    invite(base, alice_token, room_id, bob)
    invited = run.expect("invited")["room"]
    assert invited["room_id"] == room_id and invited["state"] == "Invited", invited
    assert invited["name"] == "alice invites", invited
    assert invited["latest_event"] == {"kind": "invite", "inviter": alice}, invited

    joined = run.expect("joined")["room"]
    assert joined["room_id"] == room_id and joined["state"] == "Joined", joined
    assert joined["name"] == "alice invites" and joined["joined_count"] == 2, joined
    run.finish()
    assert membership_of(base, alice_token, room_id, bob) == "join"


def test_encrypted_room_decrypts_and_a_second_device_shows_its_verification_state(base, shared_secret, sliding_client,
                                                                                 run_client):
    alice = register_by_secret(base, shared_secret, "ssea")
    bob = register_by_secret(base, shared_secret, "sseb")
    run = run_client([sliding_client, "e2ee", "--homeserver", base, "--alice", alice, "--alice-password", DEFAULT_PASSWORD,
                      "--bob", bob, "--bob-password", DEFAULT_PASSWORD])
    started = run.expect("logged_in")
    bob_device = started["bob_device"]

    # Alice's Megolm key reached Bob's device as to-device (the to_device extension), after
    # Alice's client learnt Bob's device keys (the e2ee extension and /keys/query).
    first = run.expect("decrypted")
    assert first["message"]["body"] == "sliding e2ee: first secret", first
    assert first["message"]["sender"] == alice and first["message"]["encrypted"] is True, first
    assert first["room_encrypted"] is True, first

    # Bob's second device: announced to Bob's first device and to Alice through
    # device_lists.changed; not cross-signed yet, while the first one is.
    seen = run.expect("new_device")
    for who in ("by_bob", "by_alice"):
        assert seen[who]["cross_signed_by_owner"] is False and seen[who]["verified"] is False, seen
        assert bob_device in seen[who]["devices_known"], seen
    assert seen["first_device_by_alice"]["cross_signed_by_owner"] is True, seen
    second_device = seen["by_bob"]["device_id"]
    assert second_device != bob_device

    # Bob's first device signs the second: Alice's client hears of it (device_lists.changed
    # again) and sees it cross-signed by its owner; Bob's own device sees it verified.
    verified = run.expect("device_verified")
    assert verified["by_alice"]["device_id"] == second_device and verified["by_alice"]["cross_signed_by_owner"] is True, verified
    assert verified["by_bob"]["verified"] is True, verified

    again = run.expect("decrypted_again")
    assert again["device"] == second_device, again
    assert again["message"]["body"] == "sliding e2ee: second secret" and again["message"]["encrypted"] is True, again
    assert again["first_device"]["body"] == "sliding e2ee: second secret", again
    run.finish()

    # The server holds only Megolm ciphertext for both messages.
    token = _token(base, alice)
    rooms = assert_ok(call(base, "GET", "/_matrix/client/v3/joined_rooms", token=token))["joined_rooms"]
    assert len(rooms) == 1, rooms
    events = assert_ok(call(base, "GET", rpath(rooms[0], "messages"), token=token, params={"dir": "b", "limit": 50}))["chunk"]
    sent = [e for e in events if e["sender"] == alice and e["type"] in ("m.room.message", "m.room.encrypted")]
    assert [e["type"] for e in sent] == ["m.room.encrypted"] * 2, sent
