"""Cross-signing, server-side key backup and dehydrated devices, done by a real client.

matrix-js-sdk with its Rust crypto (as in Element Web; tests/e2ee/js_client.mjs) drives the
server's identity endpoints the way it does for users, and the outcome is checked both in
the clients (verification state, decrypted messages) and on the server over plain HTTP:

1. Cross-signing: Bob's first device bootstraps cross-signing (keys/device_signing/upload
   without auth, MSC3967, or with m.login.password after a 401; then
   keys/signatures/upload) and secret storage (4S, account data). Alice's /keys/query shows
   Bob's master and self-signing keys (not his user-signing key), the master key signed by
   the device, the device signed by the self-signing key (ed25519, checked here). Bob's second
   device imports the cross-signing keys from 4S with the recovery key, signs itself, and
   then sees the first device as cross-signing verified (and the first sees the second).
   Then the first device resets cross-signing: replacing keys takes UIA (a 401, then the
   password), Alice sees the new keys, and the second device learns of them through /sync.
2. Key backup: Bob's first device creates a backup version, receives and sends Megolm
   messages and backs the sessions up; /room_keys/version counts them and /room_keys/keys
   holds their session IDs. Everyone stops; a new device of Bob's decrypts the old messages,
   which it was never sent keys for, from the server's backup:
   - "full": it is handed the backup key and restores the whole backup (restoreKeyBackup,
     GET /room_keys/keys);
   - "recovery": the backup was made by bootstrapSecretStorage, so its key is in 4S; the new
     device unlocks 4S with the recovery key (Element's "verify with recovery key") and
     fetches each session it is missing (GET /room_keys/keys/{roomId}/{sessionId}).
3. Dehydrated device (MSC3814): Bob's first device sets up cross-signing, 4S and a dehydrated
   device, then logs out, so Bob has no running device. Alice (js-sdk or nio) sees the
   dehydrated device (dehydrated: true, cross-signed), claims one of its one-time keys
   (checked for js-sdk) and sends an encrypted message, sharing the room key with it by
   to-device. Bob logs in a new device, gets the cross-signing and dehydration keys from 4S
   with the recovery key, rehydrates (GET .../dehydrated_device/{id}/events) and decrypts
   Alice's message; its new dehydrated device replaces the old one.

Runs against the local Worker, or any server through STRATUS_URL + STRATUS_SHARED_SECRET
(tests/e2ee/against_synapse.py tests/integration/test_e2ee_clients_identity.py runs it
against Synapse, with MSC3814 enabled).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
from signedjson.key import decode_verify_key_base64
from signedjson.sign import SignatureVerifyException, verify_signed_json

from e2ee_client_helpers import MEGOLM, JsDevice, http_login, js_available, make_device, register_by_secret, share_room
from matrix_helpers import CLIENT_V3, DEFAULT_PASSWORD, assert_ok, call, qid

SCENARIO_TIMEOUT = 360
DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


# --------------------------------------------------------------------------- helpers


def keys_query(base: str, token: str, user_id: str) -> dict:
    return assert_ok(call(base, "POST", f"{CLIENT_V3}/keys/query", {"device_keys": {user_id: []}}, token=token))


def only_key(key: dict) -> tuple[str, str]:
    """(key ID, public key) of a cross-signing key object with one ed25519 key."""
    assert len(key["keys"]) == 1, key
    (key_id, public), = key["keys"].items()
    assert key_id == f"ed25519:{public}", key
    return key_id, public


def assert_signed(obj: dict, user_id: str, key_id: str, public: str, what: str) -> None:
    """``obj`` carries a valid ed25519 signature by ``user_id``'s key ``key_id``."""
    sigs = obj.get("signatures", {}).get(user_id, {})
    assert key_id in sigs, f"{what}: no signature by {key_id}; signatures: {obj.get('signatures')}"
    alg, _, version = key_id.partition(":")
    try:
        verify_signed_json(obj, user_id, decode_verify_key_base64(alg, version, public))
    except SignatureVerifyException as e:
        raise AssertionError(f"{what}: bad signature by {key_id}: {e}; object: {obj}") from None


def event_session_id(base: str, token: str, room_id: str, event_id: str) -> str:
    ev = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room_id)}/event/{qid(event_id)}", token=token))
    assert ev["type"] == "m.room.encrypted" and ev["content"].get("algorithm") == MEGOLM, ev
    return ev["content"]["session_id"]


def check_decrypted(got: dict, event_id: str, body: str, sender_id: str) -> None:
    assert got["event_id"] == event_id, (got, event_id)
    assert got["body"] == body, got
    assert got["sender"] == sender_id, got
    assert got["wire_type"] == "m.room.encrypted", got


async def poll(what: str, check, timeout: float = 90.0, every: float = 1.0):
    """Polls a (blocking, quick) ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = await asyncio.to_thread(check)
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(every)


async def assert_no_signature_failures(dev: JsDevice) -> int:
    """Every keys/signatures/upload the device made succeeded with empty ``failures``."""
    ex = await dev.exchanges("/keys/signatures/upload")
    for e in ex:
        assert e["status"] == 200, f"{dev!r}: keys/signatures/upload -> {e}"
        failures = json.loads(e["response"]).get("failures", {})
        assert failures == {}, f"{dev!r}: keys/signatures/upload failures: {failures}; request: {e['request']}"
    return len(ex)


def account_data(base: str, token: str, user_id: str, type_: str) -> dict:
    return assert_ok(call(base, "GET", f"{CLIENT_V3}/user/{qid(user_id)}/account_data/{type_}", token=token))


async def close_dev(d) -> None:
    dump = os.environ.get("E2EE_DUMP_DIR")
    if dump and isinstance(d, JsDevice) and d.proc is not None and d.proc.returncode is None:
        # Debugging aid: the js device's requests and recorded bodies, to compare servers.
        try:
            out = {"requests": await d.requests(), "exchanges": await d.exchanges()}
        except AssertionError as e:
            out = {"error": str(e)}
        test = os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0].split("::")[-1]
        Path(dump).mkdir(parents=True, exist_ok=True)
        (Path(dump) / f"{test}-{d.name}.json".replace("/", "_")).write_text(json.dumps(out, indent=1))
    await d.close()


async def close_all(devices) -> None:
    for d in devices:
        await close_dev(d)
    for d in devices:
        if isinstance(d, JsDevice) and d.log_path.exists():
            print(f"--- {d.name} ({d!r}) stderr ---\n{d.stderr_tail(30)}")


def run(coro) -> None:
    missing = js_available()
    if missing:
        pytest.fail(missing)
    asyncio.run(asyncio.wait_for(coro, SCENARIO_TIMEOUT))


# --------------------------------------------------------------------------- 1. cross-signing


def alice_and_bob(base: str, secret: str) -> tuple[str, str, str]:
    """Two fresh users, and a plain-HTTP token of Alice's for reading what the server holds."""
    alice_id = register_by_secret(base, secret, "alice")
    bob_id = register_by_secret(base, secret, "bob")
    return alice_id, bob_id, http_login(base, alice_id)


async def cross_signing_scenario(base: str, secret: str, tmp_path) -> None:
    alice_id, bob_id, alice_token = alice_and_bob(base, secret)
    bob1 = JsDevice(base, bob_id, DEFAULT_PASSWORD, tmp_path / "js-logs", "bob1")
    bob2 = JsDevice(base, bob_id, DEFAULT_PASSWORD, tmp_path / "js-logs", "bob2")
    try:
        await bob1.login()
        await bob1.start()
        cs = await bob1.call("bootstrap_cross_signing")
        print("bob1 bootstrapCrossSigning:", cs)
        assert cs["ready"] and not cs["had_keys"], cs
        assert cs["master"] and cs["self_signing"] and cs["user_signing"], cs
        # The first upload needs no UIA on a server with MSC3967 (Stratus, recent Synapse);
        # otherwise the callback's password retry must have gone through.
        assert cs["uia_attempts"] in (["no auth"], ["no auth", "m.login.password"]), cs
        signing = await bob1.exchanges("/keys/device_signing/upload")
        assert signing and signing[-1]["status"] == 200, signing
        assert await assert_no_signature_failures(bob1) >= 1, "js-sdk made no keys/signatures/upload"

        # What another user sees.
        q = keys_query(base, alice_token, bob_id)
        assert bob_id in q.get("master_keys", {}), q
        assert bob_id in q.get("self_signing_keys", {}), q
        assert bob_id not in q.get("user_signing_keys", {}), f"Alice sees Bob's user-signing key: {q}"
        master, ssk = q["master_keys"][bob_id], q["self_signing_keys"][bob_id]
        assert master["usage"] == ["master"] and ssk["usage"] == ["self_signing"], (master, ssk)
        master_id, master_pub = only_key(master)
        ssk_id, ssk_pub = only_key(ssk)
        assert master_pub == cs["master"] and ssk_pub == cs["self_signing"], (q, cs)
        dev1 = q["device_keys"][bob_id][bob1.device_id]
        dev1_key_id = f"ed25519:{bob1.device_id}"
        dev1_pub = dev1["keys"][dev1_key_id]
        assert_signed(dev1, bob_id, dev1_key_id, dev1_pub, "Bob's device keys (self-signature)")
        assert_signed(dev1, bob_id, ssk_id, ssk_pub, "Bob's device keys, by his self-signing key")
        assert_signed(ssk, bob_id, master_id, master_pub, "Bob's self-signing key, by his master key")
        assert_signed(master, bob_id, dev1_key_id, dev1_pub, "Bob's master key, by his device")
        # Bob sees his own user-signing key, signed by his master key.
        q_own = keys_query(base, bob1.access_token, bob_id)
        usk = q_own.get("user_signing_keys", {}).get(bob_id)
        assert usk is not None, f"Bob does not see his own user-signing key: {q_own}"
        usk_id, usk_pub = only_key(usk)
        assert usk_pub == cs["user_signing"], (usk, cs)
        assert_signed(usk, bob_id, master_id, master_pub, "Bob's user-signing key, by his master key")

        # Secret storage: a default 4S key; the cross-signing private keys encrypted with it.
        ss = await bob1.call("bootstrap_secret_storage")
        print("bob1 bootstrapSecretStorage:", {k: v for k, v in ss.items() if k != "recovery_key"})
        assert ss["ready"], ss
        assert account_data(base, bob1.access_token, bob_id, "m.secret_storage.default_key") == {"key": ss["key_id"]}
        key_info = account_data(base, bob1.access_token, bob_id, f"m.secret_storage.key.{ss['key_id']}")
        assert key_info.get("algorithm") == "m.secret_storage.v1.aes-hmac-sha2", key_info
        for name in ("m.cross_signing.master", "m.cross_signing.self_signing", "m.cross_signing.user_signing"):
            enc = account_data(base, bob1.access_token, bob_id, name).get("encrypted", {})
            assert ss["key_id"] in enc and {"iv", "ciphertext", "mac"} <= set(enc[ss["key_id"]]), (name, enc)

        # Bob's second device: the recovery key unlocks 4S; bootstrapCrossSigning imports the
        # private keys from there (no new keys) and cross-signs this device.
        await bob2.login()
        await bob2.call("use_recovery_key", recovery_key=ss["recovery_key"])
        await bob2.start()
        cs2 = await bob2.call("bootstrap_cross_signing")
        print("bob2 bootstrapCrossSigning:", cs2)
        assert cs2["ready"] and cs2["had_keys"], cs2
        assert cs2["uia_attempts"] == [], f"bob2 uploaded new cross-signing keys instead of importing them: {cs2}"
        assert (cs2["master"], cs2["self_signing"], cs2["user_signing"]) == (cs["master"], cs["self_signing"], cs["user_signing"]), (cs, cs2)
        assert await assert_no_signature_failures(bob2) >= 1, "bob2 uploaded no signature for itself"

        q = keys_query(base, alice_token, bob_id)
        assert q["master_keys"][bob_id]["keys"] == master["keys"], q
        dev2 = q["device_keys"][bob_id][bob2.device_id]
        assert_signed(dev2, bob_id, ssk_id, ssk_pub, "Bob's second device keys, by his self-signing key")

        # The clients' verdicts: each device sees the other as verified through cross-signing.
        for viewer, other in ((bob2, bob1), (bob2, bob2), (bob1, bob2)):
            deadline = time.monotonic() + 60
            while True:
                st = await viewer.call("device_verification", user_id=bob_id, device_id=other.device_id)
                if st.get("cross_signing_verified"):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{viewer!r} does not see {other!r} as cross-signing verified: {st}")
                await asyncio.sleep(1)
            print(f"{viewer.name} sees {other.name}: {st}")
        status = await bob2.call("cross_signing_status")
        assert status["ready"] and status["status"]["publicKeysOnDevice"], status
        assert all(status["status"]["privateKeysCachedLocally"].values()), status

        # Bob resets cross-signing from his first device: replacing existing keys needs UIA,
        # which the callback completes with his password.
        reset = await bob1.call("bootstrap_cross_signing", setup_new=True)
        print("bob1 reset cross-signing:", reset)
        assert reset["ready"], reset
        assert reset["uia_attempts"] == ["no auth", "m.login.password"], f"replacing cross-signing keys without UIA: {reset}"
        assert reset["master"] != cs["master"] and reset["self_signing"] != cs["self_signing"], (cs, reset)
        signing = await bob1.exchanges("/keys/device_signing/upload")
        assert [e["status"] for e in signing[-2:]] == [401, 200], signing[-2:]
        uia = json.loads(signing[-2]["response"])
        assert {"m.login.password"} in [set(f["stages"]) for f in uia.get("flows", [])] and uia.get("session"), uia
        await assert_no_signature_failures(bob1)
        q = keys_query(base, alice_token, bob_id)
        master, ssk = q["master_keys"][bob_id], q["self_signing_keys"][bob_id]
        master_id, master_pub = only_key(master)
        ssk_id, ssk_pub = only_key(ssk)
        assert (master_pub, ssk_pub) == (reset["master"], reset["self_signing"]), (q, reset)
        dev1 = q["device_keys"][bob_id][bob1.device_id]
        assert_signed(dev1, bob_id, ssk_id, ssk_pub, "Bob's device keys, by his new self-signing key")
        assert_signed(ssk, bob_id, master_id, master_pub, "Bob's new self-signing key, by his new master key")
        assert_signed(master, bob_id, dev1_key_id, dev1_pub, "Bob's new master key, by his device")
        # His second device learns of the new keys (device_lists.changed for Bob in its /sync).
        deadline = time.monotonic() + 60
        while True:
            seen = await bob2.call("user_cross_signing_keys", user_id=bob_id)
            if seen.get("master") == reset["master"]:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"bob2 never saw Bob's new master key {reset['master']}: {seen}")
            await asyncio.sleep(1)
        assert seen["self_signing"] == reset["self_signing"], seen
    finally:
        await close_all([bob1, bob2])


def test_js_sdk_cross_signing(base, shared_secret, tmp_path):
    run(cross_signing_scenario(base, shared_secret, tmp_path))


# --------------------------------------------------------------------------- 2. key backup


async def key_backup_scenario(base: str, secret: str, tmp_path, restore: str) -> None:
    """``restore``: "full" -- the new device is handed the backup key and restores the whole
    backup (GET /room_keys/keys); "recovery" -- the backup key is in 4S, the new device unlocks it
    with the recovery key (as Element's "verify with recovery key") and fetches each missing
    session as it meets it (GET /room_keys/keys/{roomId}/{sessionId})."""
    alice_id, bob_id, alice_token = alice_and_bob(base, secret)
    logs = tmp_path / "js-logs"
    alice = JsDevice(base, alice_id, DEFAULT_PASSWORD, logs, "alice")
    bob1 = JsDevice(base, bob_id, DEFAULT_PASSWORD, logs, "bob1")
    bob2 = JsDevice(base, bob_id, DEFAULT_PASSWORD, logs, "bob2")
    tag = uuid.uuid4().hex[:8]
    try:
        for d in (alice, bob1):
            await d.login()
            await d.start()
        if restore == "full":
            kb = await bob1.call("reset_key_backup")
            print("bob1 resetKeyBackup:", kb)
            version = kb["version"]
            assert version and kb["algorithm"] == BACKUP_ALGORITHM and kb["active"] == version, kb
        else:
            cs = await bob1.call("bootstrap_cross_signing")
            assert cs["ready"], cs
            ss = await bob1.call("bootstrap_secret_storage", new_key_backup=True)
            assert ss["ready"], ss
            version = (await bob1.call("backup_status"))["active_version"]
            assert version, "bootstrapSecretStorage(setupNewKeyBackup) made no active backup"
            enc = account_data(base, bob1.access_token, bob_id, "m.megolm_backup.v1").get("encrypted", {})
            assert ss["key_id"] in enc, f"the backup key is not in 4S: {enc}"
        info = assert_ok(call(base, "GET", f"{CLIENT_V3}/room_keys/version", token=bob1.access_token))
        assert info["version"] == version and info["algorithm"] == BACKUP_ALGORITHM, info
        assert isinstance(info["auth_data"].get("public_key"), str), info
        # js-sdk signs the backup with the device key.
        assert f"ed25519:{bob1.device_id}" in info["auth_data"].get("signatures", {}).get(bob_id, {}), info

        room_id = await share_room(alice, bob1)
        await alice.wait_device(bob_id, bob1.device_id)

        sent = []  # (event_id, body, sender)
        text = f"backed up: from Alice {tag}"
        eid = await alice.send(room_id, text)
        check_decrypted(await bob1.wait_message(room_id, text), eid, text, alice_id)
        sent.append((eid, text, alice_id))
        await bob1.wait_device(alice_id, alice.device_id)
        text = f"backed up: from Bob's first device {tag}"
        eid = await bob1.send(room_id, text)
        check_decrypted(await alice.wait_message(room_id, text), eid, text, bob_id)
        sent.append((eid, text, bob_id))
        sessions = {event_session_id(base, alice_token, room_id, e) for e, _, _ in sent}
        assert len(sessions) == 2, sessions  # Alice's and Bob's own outbound sessions

        # js-sdk backs the sessions up (after a random delay of up to 10 s).
        def backed_up():
            r = call(base, "GET", f"{CLIENT_V3}/room_keys/keys", token=bob1.access_token, params={"version": version})
            if r.status_code != 200:
                return AssertionError(f"room_keys/keys -> {r.status_code} {r.text}")
            have = r.json().get("rooms", {}).get(room_id, {}).get("sessions", {})
            return have if sessions <= set(have) else None

        have = await poll(f"sessions {sorted(sessions)} in backup {version}", backed_up)
        for sid in sessions:
            s = have[sid]
            assert {"first_message_index", "forwarded_count", "is_verified", "session_data"} <= set(s), s
            assert {"ephemeral", "ciphertext", "mac"} <= set(s["session_data"]), s
        info = assert_ok(call(base, "GET", f"{CLIENT_V3}/room_keys/version/{version}", token=bob1.access_token))
        assert info["count"] >= len(sessions) and isinstance(info["etag"], str), info
        status = await bob1.call("backup_status")
        print("bob1 backup status:", status, "server:", {k: info[k] for k in ("version", "count", "etag")})
        assert await assert_backup_uploads_ok(bob1)

        key = await bob1.call("get_backup_key")
        assert key["version"] == version, key
        # Nobody who holds the keys is running from now on: the new device can only get
        # them from the server-side backup.
        await close_dev(alice)
        await close_dev(bob1)

        await bob2.login()
        if restore == "full":
            await bob2.start()
            await bob2.call("store_backup_key", key_b64=key["key_b64"], version=version)
            restored = await bob2.call("restore_backup")
            print("bob2 restoreKeyBackup:", restored)
            assert restored["imported"] >= len(sessions) and restored["total"] >= len(sessions), restored
        else:
            await bob2.call("use_recovery_key", recovery_key=ss["recovery_key"])
            await bob2.start()
            cs2 = await bob2.call("bootstrap_cross_signing")
            assert cs2["ready"] and cs2["had_keys"] and cs2["uia_attempts"] == [], cs2
            await bob2.call("load_backup_key_from_secret_storage")
            check = await bob2.call("check_key_backup")
            print("bob2 checkKeyBackupAndEnable:", check)
            assert check["version"] == version and check["active_version"] == version, check
            assert check["matches_decryption_key"] and check["trusted"], check
        for eid, body, sender in sent:
            check_decrypted(await bob2.wait_message(room_id, body), eid, body, sender)
        reqs = await bob2.requests()
        full = [r for r in reqs if r.startswith("GET /_matrix/client/v3/room_keys/keys ")]
        per_session = {
            unquote(r.split()[1].rsplit("/", 1)[-1])  # session IDs are base64: "/" is encoded
            for r in reqs
            if r.startswith("GET /_matrix/client/v3/room_keys/keys/") and r.endswith(" 200")
        }
        if restore == "full":
            assert full and all(r.endswith(" 200") for r in full), reqs
        else:
            assert not full, reqs
            assert sessions <= per_session, f"sessions {sorted(sessions)} not fetched one by one: {reqs}"
    finally:
        await close_all([alice, bob1, bob2])


async def assert_backup_uploads_ok(dev: JsDevice) -> bool:
    puts = [e for e in await dev.exchanges("/room_keys/keys") if e["method"] == "PUT"]
    assert puts, f"{dev!r} made no PUT /room_keys/keys"
    for e in puts:
        assert e["status"] == 200, f"{dev!r}: {e}"
        body = json.loads(e["response"])
        assert isinstance(body.get("etag"), str) and isinstance(body.get("count"), int), e
    return True


@pytest.mark.parametrize("restore", ["full", "recovery"])
def test_js_sdk_key_backup_restore(base, shared_secret, tmp_path, restore):
    run(key_backup_scenario(base, shared_secret, tmp_path, restore))


# --------------------------------------------------------------------------- 3. dehydrated device


async def dehydration_scenario(base: str, secret: str, tmp_path, alice_kind: str) -> None:
    alice_id, bob_id, alice_token = alice_and_bob(base, secret)
    logs = tmp_path / "js-logs"
    alice = make_device(alice_kind, base, alice_id, tmp_path, "alice")
    bob1 = JsDevice(base, bob_id, DEFAULT_PASSWORD, logs, "bob1")
    bob2 = JsDevice(base, bob_id, DEFAULT_PASSWORD, logs, "bob2")
    tag = uuid.uuid4().hex[:8]
    try:
        for d in (alice, bob1):
            await d.login()
            await d.start()
        room_id = await share_room(alice, bob1)

        # Bob's first device: cross-signing, 4S, a dehydrated device.
        assert (await bob1.call("dehydration_supported"))["supported"], "js-sdk finds no MSC3814 support on the server"
        cs = await bob1.call("bootstrap_cross_signing")
        assert cs["ready"], cs
        ss = await bob1.call("bootstrap_secret_storage")
        assert ss["ready"], ss
        dh = await bob1.call("start_dehydration", create_new_key=True)
        print("bob1 startDehydration:", dh)
        names = [e["event"] for e in dh["events"]]
        assert "dehydration.DehydratedDeviceUploaded" in names and "dehydration.RehydrationError" not in names, dh
        got = assert_ok(call(base, "GET", DEHYDRATED, token=bob1.access_token))
        dehydrated_id = got["device_id"]
        assert dehydrated_id != bob1.device_id and got["device_data"].get("algorithm"), got
        # The 4S copy of the dehydration key.
        enc = account_data(base, bob1.access_token, bob_id, "org.matrix.msc3814").get("encrypted", {})
        assert ss["key_id"] in enc, enc

        # Bob logs his only running device out.
        await bob1.call("logout")
        q = keys_query(base, alice_token, bob_id)
        devices = q["device_keys"].get(bob_id, {})
        assert bob1.device_id not in devices, f"logged-out device still listed: {sorted(devices)}"
        assert dehydrated_id in devices, f"dehydrated device {dehydrated_id} gone after logout: {q}"
        dk = devices[dehydrated_id]
        assert dk.get("dehydrated") is True, dk
        ssk_id, ssk_pub = only_key(q["self_signing_keys"][bob_id])
        assert_signed(dk, bob_id, ssk_id, ssk_pub, "the dehydrated device's keys, by Bob's self-signing key")

        # Alice sends with only the dehydrated device to share the room key with.
        await alice.wait_device(bob_id, dehydrated_id)
        text = f"for Bob's dehydrated device, from Alice ({alice.kind}) {tag}"
        eid = await alice.send(room_id, text)
        session_id = event_session_id(base, alice_token, room_id, eid)
        if isinstance(alice, JsDevice):
            to_dehydrated = [
                e for e in await alice.exchanges("/sendToDevice/m.room.encrypted")
                if e["status"] == 200 and dehydrated_id in json.loads(e["request"] or "{}").get("messages", {}).get(bob_id, {})
            ]
            assert to_dehydrated, f"Alice sent no m.room.encrypted to {dehydrated_id}: {await alice.exchanges('/sendToDevice/')}"
            # The Olm session to it started from one of the one-time keys the dehydrated
            # device was uploaded with.
            claims = [json.loads(e["response"]) for e in await alice.exchanges("/keys/claim") if e["status"] == 200]
            claimed = [c["one_time_keys"][bob_id][dehydrated_id] for c in claims if dehydrated_id in c.get("one_time_keys", {}).get(bob_id, {})]
            assert claimed and all(k.startswith("signed_curve25519:") for c in claimed for k in c), claims

        # Bob's new device: recovery key -> 4S -> cross-signing keys and dehydration key;
        # rehydration gets the room key from the dehydrated device's to-device messages.
        await bob2.login()
        await bob2.call("use_recovery_key", recovery_key=ss["recovery_key"])
        await bob2.start()
        cs2 = await bob2.call("bootstrap_cross_signing")
        assert cs2["ready"] and cs2["had_keys"] and cs2["uia_attempts"] == [], cs2
        dh2 = await bob2.call("start_dehydration", timeout=90)
        print("bob2 startDehydration:", dh2)
        names = [e["event"] for e in dh2["events"]]
        assert "dehydration.RehydrationError" not in names, f"rehydration failed: {dh2}; exchanges: {await bob2.exchanges(DEHYDRATED)}"
        assert "dehydration.RehydrationCompleted" in names, dh2
        progress = [e["args"] for e in dh2["events"] if e["event"] == "dehydration.RehydrationProgress"]
        assert progress and int(progress[-1][0]) >= 1, f"no room key came with the dehydrated device: {dh2}"
        # retry: should the SDK not retry the event once the rehydrated keys are in, the
        # harness does (a client-side matter; the server's part is done by then).
        got = await bob2.wait_message(room_id, text, retry=True)
        print("bob2 decrypted after rehydration, manual retries:", got["manual_retries"])
        check_decrypted(got, eid, text, alice_id)
        assert got["wire_content"]["session_id"] == session_id, got
        # startDehydration made a new dehydrated device in place of the used one.
        new = assert_ok(call(base, "GET", DEHYDRATED, token=bob2.access_token))
        assert new["device_id"] not in (dehydrated_id, bob2.device_id), (new, dehydrated_id)
        devices = keys_query(base, alice_token, bob_id)["device_keys"].get(bob_id, {})
        assert dehydrated_id not in devices, f"the replaced dehydrated device {dehydrated_id} is still listed: {sorted(devices)}"
        assert devices.get(new["device_id"], {}).get("dehydrated") is True, devices
    finally:
        await close_all([alice, bob1, bob2])


@pytest.mark.parametrize("alice_kind", ["js", "nio"])
def test_js_sdk_dehydrated_device(base, shared_secret, tmp_path, alice_kind):
    run(dehydration_scenario(base, shared_secret, tmp_path, alice_kind))
