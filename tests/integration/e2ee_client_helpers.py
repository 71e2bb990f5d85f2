"""Two real E2EE clients behind one small async interface, for e2ee/test_e2ee_clients.py.

- ``NioDevice``: matrix-nio[e2e] (Olm/Megolm through vodozemac), in this process, with its
  encryption store in a temporary directory.
- ``JsDevice``: matrix-js-sdk with its Rust crypto (matrix-sdk-crypto-wasm), one Node
  process per device running tests/e2ee/js_client.mjs, driven by JSON lines.

Both offer: ``login``, ``start``, ``create_room``, ``join``, ``wait_member``,
``wait_device``, ``send``, ``wait_message`` (a decrypted m.room.message with a given body)
and ``close``, plus ``user_id``, ``device_id`` and ``curve25519`` (the device's identity
key). ``wait_message`` returns a dict: event_id, sender, body, wire_type, sender_curve25519.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from nio import (
    AsyncClient,
    AsyncClientConfig,
    EncryptionError,
    ErrorResponse,
    JoinError,
    LoginResponse,
    MegolmEvent,
    RoomCreateError,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncError,
)

from matrix_helpers import DEFAULT_PASSWORD, admin_register_raw, assert_ok, login, unique_username

REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "node_modules" / ".bin" / "node"
JS_CLIENT = REPO / "tests" / "e2ee" / "js_client.mjs"

STEP_TIMEOUT = 60.0
MEGOLM = "m.megolm.v1.aes-sha2"
ENCRYPTION_STATE = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}


def register_by_secret(base: str, secret: str, prefix: str) -> str:
    """A fresh user through the shared-secret admin API (Stratus and Synapse both have it)."""
    name = unique_username(prefix)
    return assert_ok(admin_register_raw(base, secret, name, DEFAULT_PASSWORD))["user_id"]


def http_login(base: str, user_id: str) -> str:
    """A plain-HTTP login (a device without keys): for reading what the server serves."""
    return login(base, user_id)["access_token"]


def make_device(kind: str, base: str, user_id: str, tmp_path: Path, name: str) -> "JsDevice | NioDevice":
    """A js-sdk ("js") or nio device of the user, not logged in yet."""
    if kind == "js":
        return JsDevice(base, user_id, DEFAULT_PASSWORD, tmp_path / "js-logs", name)
    return NioDevice(base, user_id, DEFAULT_PASSWORD, tmp_path / f"nio-store-{name}", name)


async def share_room(alice, bob) -> str:
    """Alice's device creates an encrypted room and invites Bob, whose device `bob` joins; returns
    once Alice's client sees the join."""
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.join(room_id)
    await alice.wait_member(room_id, bob.user_id)
    return room_id


def js_available() -> str | None:
    """None if the JS client can run, else why not."""
    if not NODE.exists():
        return f"{NODE} is missing (run `npm install`)"
    if not (REPO / "node_modules" / "matrix-js-sdk").is_dir():
        return "node_modules/matrix-js-sdk is missing (run `npm install`)"
    return None


async def wait_until(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT, alive=None):
    """Poll ``check`` (sync) until it returns something truthy; ``alive`` raises if a
    background part died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- nio


class NioDevice:
    kind = "nio"

    def __init__(self, base: str, user_id: str, password: str, store_dir: Path, name: str):
        store_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.password = password
        self.client = AsyncClient(
            base,
            user_id,
            store_path=str(store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        self.user_id = user_id
        self.device_id: str | None = None
        # room_id -> decrypted text messages seen (nio decrypts Megolm events during sync)
        self.messages: dict[str, list[RoomMessageText]] = {}
        self.undecrypted: list[MegolmEvent] = []
        self.plaintext_in_encrypted_room: list[str] = []
        self._task: asyncio.Task | None = None
        self.syncs = 0
        # The server's error answers to the sync loop's requests, for failure messages.
        self.errors: list[str] = []
        self.client.add_event_callback(self._on_text, RoomMessageText)
        self.client.add_event_callback(self._on_megolm, MegolmEvent)

    def __repr__(self) -> str:
        return f"nio {self.user_id}/{self.device_id}"

    async def _on_text(self, room, event) -> None:
        if not event.decrypted and room.encrypted:
            self.plaintext_in_encrypted_room.append(event.event_id)
        self.messages.setdefault(room.room_id, []).append(event)

    async def _on_megolm(self, room, event) -> None:
        # The room key may arrive in a later sync than the message: retried in wait_message.
        event.room_id = room.room_id
        self.undecrypted.append(event)

    def _alive(self) -> None:
        if self._task is not None and self._task.done():
            exc = self._task.exception() if not self._task.cancelled() else None
            raise AssertionError(f"{self!r}: sync loop ended: {exc!r}; server errors: {self.errors[-5:]}")

    async def _wait(self, what: str, check, timeout: float = STEP_TIMEOUT):
        try:
            return await wait_until(what, check, timeout, alive=self._alive)
        except AssertionError as e:
            if self.errors:
                raise AssertionError(f"{e}; server errors: {self.errors[-5:]}") from None
            raise

    @property
    def curve25519(self) -> str:
        return self.client.olm.account.identity_keys["curve25519"]

    async def login(self) -> None:
        r = await self.client.login(self.password, device_name=self.name)
        assert isinstance(r, LoginResponse), f"{self!r} login: {r}"
        self.device_id = r.device_id
        assert self.client.olm is not None, "nio has no Olm machine: is matrix-nio[e2e] installed?"

    async def _sync_loop(self) -> None:
        # What nio's sync_forever does, in sequence, keeping the server's error answers:
        # sync, then send queued to-device messages, upload device and one-time keys, query
        # changed users' keys, claim one-time keys for new Olm sessions.
        first = True
        while True:
            r = await self.client.sync(timeout=0 if first else 2000, full_state=first)
            if isinstance(r, SyncError):
                self._error("sync", r)
                await asyncio.sleep(1)
                continue
            first = False
            for resp in await self.client.send_to_device_messages():
                self._error("sendToDevice", resp)
            if self.client.should_upload_keys:
                self._error("keys/upload", await self.client.keys_upload())
            if self.client.should_query_keys:
                self._error("keys/query", await self.client.keys_query())
            if self.client.should_claim_keys:
                self._error("keys/claim", await self.client.keys_claim(self.client.get_users_for_key_claiming()))
            self.syncs += 1

    def _error(self, what: str, resp) -> None:
        if isinstance(resp, ErrorResponse):
            self.errors.append(f"{what}: {resp}")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sync_loop())
        await self._wait(f"{self!r}: first sync and key upload", lambda: self.syncs and not self.client.should_upload_keys)

    async def create_room(self, invite: list[str]) -> str:
        r = await self.client.room_create(
            preset=RoomPreset.private_chat, invite=invite, initial_state=[ENCRYPTION_STATE]
        )
        assert not isinstance(r, RoomCreateError), f"{self!r} createRoom: {r}"
        return r.room_id

    async def join(self, room_id: str) -> None:
        r = await self.client.join(room_id)
        assert not isinstance(r, JoinError), f"{self!r} join: {r}"
        await self._wait(f"{self!r}: {room_id} synced", lambda: room_id in self.client.rooms)

    async def wait_member(self, room_id: str, user_id: str) -> None:
        def joined():
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users and user_id not in room.invited_users

        await self._wait(f"{self!r}: {user_id} joined {room_id}", joined)

    async def wait_device(self, user_id: str, device_id: str) -> None:
        def known():
            return any(d.id == device_id for d in self.client.device_store.active_user_devices(user_id))

        await self._wait(f"{self!r}: device {user_id}/{device_id} known (keys/query after device_lists.changed)", known)

    async def send(self, room_id: str, body: str) -> str:
        def encrypted_room():
            room = self.client.rooms.get(room_id)
            return room is not None and room.encrypted

        await self._wait(f"{self!r}: {room_id} known as encrypted", encrypted_room)
        r = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
        )
        assert isinstance(r, RoomSendResponse), f"{self!r} send: {r}"
        return r.event_id

    def _retry_undecrypted(self) -> None:
        still = []
        for ev in self.undecrypted:
            try:
                dec = self.client.decrypt_event(ev)
            except EncryptionError:
                still.append(ev)
                continue
            if isinstance(dec, RoomMessageText):
                self.messages.setdefault(ev.room_id, []).append(dec)
        self.undecrypted = still

    async def wait_message(self, room_id: str, body: str, timeout: float = STEP_TIMEOUT) -> dict:
        def found():
            self._retry_undecrypted()
            for ev in self.messages.get(room_id, []):
                if ev.body == body:
                    return ev
            return None

        try:
            ev = await self._wait(f"{self!r}: decrypted {body!r} in {room_id}", found, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; undecrypted: {[(u.event_id, u.session_id) for u in self.undecrypted]}") from None
        return {
            "event_id": ev.event_id,
            "sender": ev.sender,
            "body": ev.body,
            # nio hands out a RoomMessageText with decrypted=True only for an m.room.encrypted
            # event it decrypted.
            "wire_type": "m.room.encrypted" if ev.decrypted else "m.room.message",
            "sender_curve25519": ev.sender_key if ev.decrypted else None,
        }

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.client.close()


# --------------------------------------------------------------------------- js-sdk


class JsDevice:
    kind = "js"

    def __init__(self, base: str, user_id: str, password: str, log_dir: Path, name: str):
        self.base = base
        self.user_id = user_id
        self.password = password
        self.name = name
        self.device_id: str | None = None
        self.access_token: str | None = None
        self.curve25519: str | None = None
        self.log_path = log_dir / f"{name}.stderr.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"js {self.user_id}/{self.device_id}"

    def stderr_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no stderr)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def call(self, cmd: str, timeout: float = STEP_TIMEOUT, **args) -> dict:
        if self.proc is None:
            log_dir = self.log_path.parent
            log_dir.mkdir(parents=True, exist_ok=True)
            self._stderr = open(self.log_path, "ab")
            env = dict(os.environ, NODE_NO_WARNINGS="1")
            self.proc = await asyncio.create_subprocess_exec(
                str(NODE),
                str(JS_CLIENT),
                cwd=REPO,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=self._stderr,
                limit=16 * 1024 * 1024,
            )
        msg_id = next(self._ids)
        self.proc.stdin.write((json.dumps({"id": msg_id, "cmd": cmd, "timeout": timeout, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            while True:
                line = await asyncio.wait_for(self.proc.stdout.readline(), timeout + 15)
                if not line:
                    raise AssertionError(f"{self!r}: node exited ({self.proc.returncode}) during {cmd}")
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue  # not protocol output
                if isinstance(reply, dict) and reply.get("id") == msg_id:
                    break
        except asyncio.TimeoutError:
            raise AssertionError(f"{self!r}: no answer to {cmd}\n--- stderr ---\n{self.stderr_tail()}") from None
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- stderr ---\n{self.stderr_tail()}") from None
        if not reply.get("ok"):
            raise AssertionError(f"{self!r} {cmd}: {reply.get('error')}\n--- stderr ---\n{self.stderr_tail()}")
        return reply.get("result") or {}

    async def login(self) -> None:
        r = await self.call("login", base=self.base, user=self.user_id, password=self.password)
        self.device_id = r["device_id"]
        self.access_token = r["access_token"]

    async def start(self) -> None:
        await self.call("start")
        r = await self.call("whoami")
        self.curve25519 = r["curve25519"]

    async def create_room(self, invite: list[str]) -> str:
        return (await self.call("create_room", invite=invite))["room_id"]

    async def join(self, room_id: str) -> None:
        await self.call("join", room_id=room_id)

    async def wait_member(self, room_id: str, user_id: str) -> None:
        await self.call("wait_member", room_id=room_id, user_id=user_id, membership="join")

    async def wait_device(self, user_id: str, device_id: str) -> None:
        await self.call("wait_device", user_id=user_id, device_id=device_id)

    async def send(self, room_id: str, body: str) -> str:
        return (await self.call("send", room_id=room_id, body=body))["event_id"]

    async def wait_message(self, room_id: str, body: str, timeout: float = STEP_TIMEOUT, retry: bool = False) -> dict:
        return await self.call("wait_message", timeout=timeout, room_id=room_id, body=body, retry=retry)

    async def requests(self) -> list[str]:
        return (await self.call("requests"))["requests"]

    async def exchanges(self, path_contains: str = "") -> list[dict]:
        """Recorded request/response bodies (see RECORD_BODIES in js_client.mjs)."""
        return (await self.call("exchanges", path_contains=path_contains))["exchanges"]

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            try:
                await self.call("stop", timeout=10)
            except AssertionError:
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._stderr.close()
