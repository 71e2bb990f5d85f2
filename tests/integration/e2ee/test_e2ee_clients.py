"""End-to-end encryption between two independent real clients.

matrix-nio[e2e] (Python, Olm/Megolm through vodozemac) and matrix-js-sdk with its Rust
crypto (matrix-sdk-crypto-wasm, as in Element Web) create an encrypted room, exchange
messages and decrypt them, and one user has two devices that both decrypt. No device is
verified: the senders encrypt for unverified devices, as clients do by default.

Each scenario, for Alice (one device) and Bob (two devices, the second logging in later):
  1. Alice creates a private room with m.room.encryption (m.megolm.v1.aes-sha2), invites
     Bob; Bob's first device joins.
  2. Alice sends; Bob's first device decrypts. Bob's first device replies; Alice decrypts.
  3. Bob logs in a second device. Alice learns of it (device_lists.changed in her /sync,
     then /keys/query), sends again: both of Bob's devices decrypt.
  4. Bob's second device sends: Alice and Bob's first device decrypt.
Every message is checked on the wire too: the server holds an m.room.encrypted event
(Megolm ciphertext, no plaintext body) under the event ID the receivers decrypted, and the
receivers attribute the Megolm session to the sending device's Curve25519 key.

Runs against the local Worker, or any server through STRATUS_URL + STRATUS_SHARED_SECRET
(users are registered through the shared-secret admin API, which Synapse has too).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from e2ee_client_helpers import (
    MEGOLM,
    JsDevice,
    NioDevice,
    http_login,
    js_available,
    make_device,
    register_by_secret,
    share_room,
)
from matrix_helpers import CLIENT_V3, assert_ok, call, qid

SCENARIO_TIMEOUT = 300


def assert_on_wire(base: str, token: str, room_id: str, event_id: str, body: str) -> None:
    """What the server stores and serves is Megolm ciphertext, not the message."""
    ev = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room_id)}/event/{qid(event_id)}", token=token))
    assert ev["type"] == "m.room.encrypted", ev
    content = ev["content"]
    assert content.get("algorithm") == MEGOLM, ev
    assert isinstance(content.get("ciphertext"), str) and content["ciphertext"], ev
    assert isinstance(content.get("session_id"), str) and content["session_id"], ev
    assert "body" not in content and body not in str(ev), ev


def check_decrypted(got: dict, event_id: str, body: str, sender) -> None:
    assert got["event_id"] == event_id, (got, event_id)
    assert got["body"] == body, got
    assert got["sender"] == sender.user_id, got
    assert got["wire_type"] == "m.room.encrypted", got
    # The Megolm session came, Olm-encrypted, from the sending device.
    assert got["sender_curve25519"] == sender.curve25519, (got, repr(sender))


async def send_checked(base: str, reader: str, room_id: str, sender, receivers, text: str) -> None:
    """`sender` sends `text`: the server holds only ciphertext, and every receiver decrypts it."""
    eid = await sender.send(room_id, text)
    assert_on_wire(base, reader, room_id, eid, text)
    for r in receivers:
        check_decrypted(await r.wait_message(room_id, text), eid, text, sender)


async def scenario(base: str, secret: str, tmp_path, alice_kind: str, bob1_kind: str, bob2_kind: str) -> None:
    alice_id = register_by_secret(base, secret, "alice")
    bob_id = register_by_secret(base, secret, "bob")
    alice = make_device(alice_kind, base, alice_id, tmp_path, "alice")
    bob1 = make_device(bob1_kind, base, bob_id, tmp_path, "bob1")
    bob2 = make_device(bob2_kind, base, bob_id, tmp_path, "bob2")
    devices = [alice, bob1, bob2]
    tag = uuid.uuid4().hex[:8]
    # A plain-HTTP login of Alice's, to read events as the server serves them.
    reader = http_login(base, alice_id)
    try:
        for d in (alice, bob1):
            await d.login()
            await d.start()

        room_id = await share_room(alice, bob1)
        await alice.wait_device(bob_id, bob1.device_id)

        # Alice -> Bob (one device)
        await send_checked(base, reader, room_id, alice, [bob1], f"hello Bob, from Alice ({alice.kind}) {tag}")

        # Bob -> Alice
        await send_checked(base, reader, room_id, bob1, [alice], f"hi Alice, from Bob's first device ({bob1.kind}) {tag}")

        # Bob's second device logs in; the senders must learn of it before they send.
        await bob2.login()
        await bob2.start()
        assert bob2.device_id != bob1.device_id
        await bob2.wait_member(room_id, alice_id)
        await alice.wait_device(bob_id, bob2.device_id)

        await send_checked(base, reader, room_id, alice, [bob1, bob2], f"to both of Bob's devices, from Alice ({alice.kind}) {tag}")

        await bob2.wait_device(alice_id, alice.device_id)
        await bob2.wait_device(bob_id, bob1.device_id)
        await send_checked(base, reader, room_id, bob2, [alice, bob1], f"from Bob's second device ({bob2.kind}) {tag}")

        for d in devices:
            if isinstance(d, NioDevice):
                assert not d.plaintext_in_encrypted_room, d.plaintext_in_encrypted_room
            if isinstance(d, JsDevice):
                reqs = await d.requests()
                print(f"{d!r} requests:\n  " + "\n  ".join(reqs))
    finally:
        for d in devices:
            await d.close()
        for d in devices:
            if isinstance(d, JsDevice) and d.log_path.exists():
                print(f"--- {d.name} ({d!r}) stderr ---\n{d.stderr_tail(30)}")


@pytest.mark.parametrize(
    "alice_kind,bob1_kind,bob2_kind",
    [
        pytest.param("nio", "js", "js", id="alice-nio_bob-js-js"),
        pytest.param("js", "nio", "nio", id="alice-js_bob-nio-nio"),
        pytest.param("nio", "js", "nio", id="alice-nio_bob-js-nio"),
    ],
)
def test_e2ee_between_nio_and_js_sdk(base, shared_secret, tmp_path, alice_kind, bob1_kind, bob2_kind):
    missing = js_available()
    if missing:
        pytest.fail(missing)
    asyncio.run(
        asyncio.wait_for(
            scenario(base, shared_secret, tmp_path, alice_kind, bob1_kind, bob2_kind), SCENARIO_TIMEOUT
        )
    )
