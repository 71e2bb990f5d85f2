"""Real clients on two servers (issue: Federation II, "Proof"): matrix-nio users on different
homeservers start a chat the way clients do (`createRoom` with the remote user invited), see
each other type and read (typing notices and read receipts crossing as EDUs), and one
downloads the other's avatar through its own server (federation media); and one verifies
the other's device (SAS over to-device messages across servers). The encrypted side
of the same scenario is test_e2ee_fed.py::test_encrypted_room_across_servers.

Runs Stratus↔Synapse both ways and Stratus→Stratus2.
"""

from __future__ import annotations

import asyncio
import io
import os
import ssl
import struct
import zlib

import pytest
from nio import (
    AsyncClient,
    DownloadResponse,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    ProfileGetAvatarResponse,
    ReceiptEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    TypingNoticeEvent,
    UploadResponse,
)

from nio.crypto import SasState

from e2ee_client_helpers import register_by_secret
from fed_helpers import HS
from matrix_helpers import DEFAULT_PASSWORD

STEP = 30.0


def png(width: int = 4, height: int = 4) -> bytes:
    """A small valid PNG (an avatar)."""
    rows = b"".join(b"\x00" + b"".join(bytes([(x * 40) % 256, (y * 60) % 256, 128]) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class Client:
    """A nio client syncing in the background, keeping the ephemeral events it saw."""

    def __init__(self, hs: HS, user_id: str):
        self.client = AsyncClient(hs.base, user_id)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE")
        if bundle:
            self.client.ssl = ssl.create_default_context(cafile=bundle)
        self.user_id = user_id
        self.typing: list[tuple[str, list[str]]] = []
        self.receipts: list[tuple[str, ReceiptEvent]] = []
        self.messages: set[str] = set()
        self.client.add_event_callback(self._on_message, RoomMessageText)
        self.client.add_ephemeral_callback(self._on_typing, TypingNoticeEvent)
        self.client.add_ephemeral_callback(self._on_receipt, ReceiptEvent)
        self._task: asyncio.Task | None = None

    async def _on_typing(self, room, event) -> None:
        self.typing.append((room.room_id, list(event.users)))

    async def _on_message(self, room, event) -> None:
        self.messages.add(event.event_id)

    async def _on_receipt(self, room, event) -> None:
        self.receipts.append((room.room_id, event))

    async def start(self) -> None:
        r = await self.client.login(DEFAULT_PASSWORD, device_name="fed-client")
        assert isinstance(r, LoginResponse), f"{self.user_id} login: {r}"
        await self.client.sync(timeout=0, full_state=True)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=2000))

    async def wait(self, what: str, check) -> None:
        deadline = asyncio.get_running_loop().time() + STEP
        while not check():
            if self._task is not None and self._task.done():
                raise AssertionError(f"{self.user_id}: sync loop ended: {self._task.exception()!r}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.user_id}: timed out after {STEP:.0f} s waiting for {what}")
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.close()


async def scenario(alice_hs: HS, bob_hs: HS) -> None:
    alice = Client(alice_hs, register_by_secret(alice_hs.base, alice_hs.shared_secret, "alice"))
    bob = Client(bob_hs, register_by_secret(bob_hs.base, bob_hs.shared_secret, "bob"))
    try:
        await alice.start()
        await bob.start()
        # A chat started as clients start one: the remote user in createRoom's invite.
        r = await alice.client.room_create(preset=RoomPreset.trusted_private_chat, is_direct=True, invite=[bob.user_id])
        assert isinstance(r, RoomCreateResponse), f"createRoom: {r}"
        room = r.room_id
        await bob.wait("the invite", lambda: room in bob.client.invited_rooms)
        j = await bob.client.join(room)
        assert isinstance(j, JoinResponse), f"join: {j}"
        await alice.wait("Bob's join", lambda: room in alice.client.rooms and bob.user_id in alice.client.rooms[room].users)

        # Typing crosses: Alice types, Bob's client sees it; she stops, it clears.
        await alice.client.room_typing(room, typing_state=True, timeout=20000)
        await bob.wait("Alice typing", lambda: any(rid == room and alice.user_id in users for rid, users in bob.typing))
        await alice.client.room_typing(room, typing_state=False)
        await bob.wait("Alice no longer typing", lambda: bob.typing and bob.typing[-1] == (room, []))

        # A read receipt crosses: Bob writes, Alice reads it.
        s = await bob.client.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "did you read this?"})
        assert isinstance(s, RoomSendResponse), f"send: {s}"
        await alice.wait("Bob's message", lambda: s.event_id in alice.messages)
        await alice.client.update_receipt_marker(room, s.event_id)

        def read_by_alice() -> bool:
            for rid, ev in bob.receipts:
                for rec in ev.receipts:
                    if rid == room and rec.event_id == s.event_id and rec.user_id == alice.user_id and rec.receipt_type == "m.read":
                        return True
            return False

        await bob.wait("Alice's read receipt", read_by_alice)

        # Bob's avatar (media on Bob's server) downloads through Alice's server.
        image = png()
        up, _ = await bob.client.upload(io.BytesIO(image), content_type="image/png", filename="avatar.png", filesize=len(image))
        assert isinstance(up, UploadResponse), f"upload: {up}"
        await bob.client.set_avatar(up.content_uri)
        prof = await alice.client.get_avatar(bob.user_id)
        assert isinstance(prof, ProfileGetAvatarResponse) and prof.avatar_url == up.content_uri, f"Bob's avatar as Alice's server tells it: {prof}"
        d = await alice.client.download(mxc=up.content_uri)
        assert isinstance(d, DownloadResponse), f"download of {up.content_uri} through {alice_hs}: {d}"
        assert d.body == image and d.content_type.startswith("image/png"), (d.content_type, len(d.body))
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize("alice_on,bob_on", [("stratus", "synapse"), ("synapse", "stratus"), ("stratus", "stratus2")])
def test_real_clients_type_read_and_see_avatars_across_servers(hs, alice_on, bob_on):
    alice_hs, bob_hs = hs(alice_on), hs(bob_on)
    asyncio.run(asyncio.wait_for(scenario(alice_hs, bob_hs), 240))


async def verification(alice_hs: HS, bob_hs: HS, tmp_path) -> None:
    """Alice (nio) verifies Bob's device (nio) on the other server with SAS: the start, the
    accept and both keys cross as to-device messages, and both sides derive the same emoji."""
    from e2ee_client_helpers import make_device

    def device(hs: HS, user_id: str, name: str):
        d = make_device("nio", hs.base, user_id, tmp_path, name)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE")
        if bundle:
            d.client.ssl = ssl.create_default_context(cafile=bundle)
        return d

    alice = device(alice_hs, register_by_secret(alice_hs.base, alice_hs.shared_secret, "alice"), "alice")
    bob = device(bob_hs, register_by_secret(bob_hs.base, bob_hs.shared_secret, "bob"), "bob")
    try:
        for d in (alice, bob):
            await d.login()
            await d.start()
        room = await alice.create_room(invite=[bob.user_id])
        await bob._wait("the invite", lambda: room in bob.client.invited_rooms)
        await bob.join(room)
        await alice.wait_member(room, bob.user_id)
        await alice.wait_device(bob.user_id, bob.device_id)
        await bob.wait_device(alice.user_id, alice.device_id)

        target = next(d for d in alice.client.device_store.active_user_devices(bob.user_id) if d.id == bob.device_id)
        r = await alice.client.start_key_verification(target)
        assert not isinstance(r, ErrorResponse), f"start: {r}"
        await bob._wait("m.key.verification.start from the other server", lambda: bool(bob.client.key_verifications))
        tx = next(iter(bob.client.key_verifications))
        r = await bob.client.accept_key_verification(tx)
        assert not isinstance(r, ErrorResponse), f"accept: {r}"
        # The keys follow by themselves (nio answers an accept with its key, and a key with
        # its own), each a to-device message across the servers.
        a_sas = alice.client.key_verifications[tx]
        b_sas = bob.client.key_verifications[tx]
        try:
            await alice._wait("Bob's accept and key", lambda: a_sas.state == SasState.key_received)
            await bob._wait("Alice's key", lambda: b_sas.state == SasState.key_received)
        except AssertionError as e:
            raise AssertionError(f"{e}: Alice's SAS {a_sas.state} ({a_sas.cancel_reason}); Bob's {b_sas.state} ({b_sas.cancel_reason})") from None
        assert a_sas.get_emoji() == b_sas.get_emoji(), "the two sides derived different short auth strings"
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize("alice_on,bob_on", [("stratus", "synapse"), ("synapse", "stratus"), ("stratus", "stratus2")])
def test_real_clients_verify_a_device_across_servers(hs, tmp_path, alice_on, bob_on):
    alice_hs, bob_hs = hs(alice_on), hs(bob_on)
    asyncio.run(asyncio.wait_for(verification(alice_hs, bob_hs, tmp_path), 240))
