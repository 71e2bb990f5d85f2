"""End-to-end encryption across servers (spec: server-server-api "End-to-End Encryption",
"Device Management"; client-server-api "Tracking the device list for a user", `/keys/query`,
`/keys/claim`): a Stratus user's keys as Synapse and a second Stratus see them, remote users'
keys through a Stratus user's `/keys/query` and `/keys/claim` (with `failures` for a server
that cannot be reached), one-time keys handed out once whoever claims them, and remote device
lists kept by `m.device_list_update` (a gap makes Stratus fetch the whole list again)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from e2ee_helpers import CrossSigning, Signer, device_keys, one_time_keys, signing_upload
from fed_helpers import HS, StandIn, User, api, joined_pair, ok, register_user, wait_until
from matrix_helpers import CLIENT_V3, DEFAULT_PASSWORD, call, login

# A server name nothing listens on: its users' keys must land in `failures`.
UNREACHABLE = "127.0.0.1:1"


def device_of(u: User) -> str:
    return ok(api(u, "GET", f"{CLIENT_V3}/account/whoami"), f"whoami {u}")["device_id"]


def upload_keys(u: User, device_id: str | None = None, token: str | None = None, otks: int = 0) -> tuple[dict, Signer]:
    """Signed device keys (and `otks` one-time keys) for one of the user's devices."""
    device_id = device_id or device_of(u)
    dk, signer = device_keys(u.user_id, device_id)
    body: dict = {"device_keys": dk}
    if otks:
        body["one_time_keys"] = one_time_keys(otks, u.user_id, signer)
    ok(call(u.hs.base, "POST", f"{CLIENT_V3}/keys/upload", body, token=token or u.token), f"keys/upload by {u}")
    return dk, signer


def new_device(u: User, otks: int = 0) -> tuple[str, str, dict]:
    """A second login of the user with keys uploaded: (device_id, token, device keys)."""
    localpart = u.user_id[1:].split(":", 1)[0]
    body = login(u.hs.base, localpart, DEFAULT_PASSWORD)
    dk, _ = upload_keys(u, body["device_id"], body["access_token"], otks)
    return body["device_id"], body["access_token"], dk


def query(u: User, users: dict, timeout_ms: int | None = None) -> dict:
    body: dict = {"device_keys": users}
    if timeout_ms is not None:
        body["timeout"] = timeout_ms
    return ok(api(u, "POST", f"{CLIENT_V3}/keys/query", body), f"keys/query by {u} for {list(users)}")


def claim(u: User, wanted: dict, timeout_ms: int | None = None) -> dict:
    body: dict = {"one_time_keys": wanted}
    if timeout_ms is not None:
        body["timeout"] = timeout_ms
    return ok(api(u, "POST", f"{CLIENT_V3}/keys/claim", body), f"keys/claim by {u}")


def signed_part(k: dict) -> dict:
    return {x: y for x, y in k.items() if x not in ("signatures", "unsigned")}


def changed_in_sync(u: User, user_id: str, timeout: float = 20.0) -> None:
    """Waits until the user's /sync (from its current position) lists `user_id` in
    `device_lists.changed`; never calls /keys/query."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        params = {"timeout": "3000"}
        if u.since:
            params["since"] = u.since
        body = ok(call(u.hs.base, "GET", f"{CLIENT_V3}/sync", token=u.token, params=params), f"/sync of {u}")
        u.since = body["next_batch"]
        if user_id in body.get("device_lists", {}).get("changed", []):
            return
    raise AssertionError(f"{u} never saw {user_id} in device_lists.changed within {timeout:.0f} s")


def sync_now(u: User) -> None:
    params = {"timeout": "0"}
    if u.since:
        params["since"] = u.since
    u.since = ok(call(u.hs.base, "GET", f"{CLIENT_V3}/sync", token=u.token, params=params), f"/sync of {u}")["next_batch"]


def send_edus(stand_in: StandIn, dest: HS, edus: list[dict]) -> None:
    body = {"origin": stand_in.name, "origin_server_ts": int(time.time() * 1000), "pdus": [], "edus": edus}
    r = stand_in.request(dest, "PUT", f"/_matrix/federation/v1/send/{uuid.uuid4().hex}", body)
    assert r.status_code == 200, (r.status_code, r.text)


# --------------------------------------------------------------------------- our users, asked by others


def test_synapse_gets_stratus_user_keys(hs):
    stratus, synapse = hs("stratus"), hs("synapse")
    alice, bob, _ = joined_pair(stratus, synapse)
    dev = device_of(alice)
    dk, _ = upload_keys(alice, dev)
    xs = CrossSigning(alice.user_id)
    ok(signing_upload(stratus.base, alice.token, xs.upload_body()), "cross-signing upload")

    # Federation API, asked as Synapse (signed with its key).
    peer = StandIn(synapse)
    r = peer.request(stratus, "GET", f"/_matrix/federation/v1/user/devices/{quote(alice.user_id, safe='')}")
    assert r.status_code == 200, r.text
    devices = r.json()
    assert devices["user_id"] == alice.user_id and isinstance(devices["stream_id"], int), devices
    by_id = {d["device_id"]: d for d in devices["devices"]}
    assert dev in by_id and signed_part(by_id[dev]["keys"]) == signed_part(dk), devices
    assert devices["master_key"]["keys"] == xs.key(xs.master, "master")["keys"], devices
    assert devices["self_signing_key"]["keys"] == xs.key(xs.ssk, "self_signing")["keys"], devices
    assert "user_signing_key" not in devices, devices

    someone_else = f"@x:{synapse.server_name}"
    r = peer.request(stratus, "POST", "/_matrix/federation/v1/user/keys/query", {"device_keys": {alice.user_id: [], someone_else: []}})
    assert r.status_code == 200, r.text
    q = r.json()
    assert signed_part(q["device_keys"][alice.user_id][dev]) == signed_part(dk), q
    assert someone_else not in q["device_keys"], q
    assert alice.user_id in q["master_keys"] and alice.user_id in q["self_signing_keys"], q
    assert not q.get("user_signing_keys"), q

    # A user of another server is not ours to answer for.
    r = peer.request(stratus, "GET", f"/_matrix/federation/v1/user/devices/{quote(someone_else, safe='')}")
    assert r.status_code >= 400, r.text

    # Synapse's own client API, for a Synapse user.
    got = query(bob, {alice.user_id: []})
    assert not got["failures"], got
    assert signed_part(got["device_keys"][alice.user_id][dev]) == signed_part(dk), got
    assert got["master_keys"][alice.user_id]["keys"] == xs.key(xs.master, "master")["keys"], got


@pytest.mark.parametrize("remote", ["synapse", "stratus2"])
def test_stratus_user_queries_remote_keys(hs, remote):
    stratus, other = hs("stratus"), hs(remote)
    alice, bob = register_user(stratus, "a"), register_user(other, "b")
    bdev = device_of(bob)
    bdk, _ = upload_keys(bob, bdev, otks=3)
    xs = CrossSigning(bob.user_id)
    ok(signing_upload(other.base, bob.token, xs.upload_body()), "cross-signing upload")
    nobody = f"@nobody:{UNREACHABLE}"

    # No shared room: asked of the server (`/user/keys/query`).
    t0 = time.monotonic()
    got = query(alice, {bob.user_id: [], nobody: []}, timeout_ms=5000)
    assert time.monotonic() - t0 < 15, "the unreachable server held the query past its timeout"
    assert signed_part(got["device_keys"][bob.user_id][bdev]) == signed_part(bdk), got
    assert got["master_keys"][bob.user_id]["keys"] == xs.key(xs.master, "master")["keys"], got
    assert bob.user_id in got["self_signing_keys"], got
    assert UNREACHABLE in got["failures"], got
    assert other.server_name not in got["failures"], got

    # Claim across servers: a one-time key of bob's device.
    c = claim(alice, {bob.user_id: {bdev: "signed_curve25519"}, nobody: {"D": "signed_curve25519"}}, timeout_ms=5000)
    keys = c["one_time_keys"][bob.user_id][bdev]
    assert len(keys) == 1 and next(iter(keys)).startswith("signed_curve25519:"), c
    assert UNREACHABLE in c["failures"], c

    # A shared room: the list is tracked (fetched with `/user/devices`) and answered the same.
    room = ok(api(alice, "POST", f"{CLIENT_V3}/createRoom", {"preset": "public_chat"}), "createRoom")["room_id"]
    ok(call(other.base, "POST", f"{CLIENT_V3}/join/{quote(room, safe='')}", {}, token=bob.token, params={"server_name": stratus.server_name}), "join")
    wait_until(lambda: bob.user_id in ok(api(alice, "GET", f"{CLIENT_V3}/rooms/{quote(room, safe='')}/joined_members"), "members")["joined"],
               f"{bob} joined on {stratus}")
    got = query(alice, {bob.user_id: [bdev]})
    assert signed_part(got["device_keys"][bob.user_id][bdev]) == signed_part(bdk), got
    assert got["master_keys"][bob.user_id]["keys"] == xs.key(xs.master, "master")["keys"], got
    assert not got["failures"], got


def test_one_time_keys_claimed_once_across_servers(hs):
    stratus, stratus2 = hs("stratus"), hs("stratus2")
    alice = register_user(stratus, "a")
    dev = device_of(alice)
    _, signer = upload_keys(alice, dev, otks=10)
    locals_ = [register_user(stratus, "l") for _ in range(4)]
    remote_user = register_user(stratus2, "r")
    peer = StandIn(stratus2)
    want = {alice.user_id: {dev: "signed_curve25519"}}

    def by_peer(_):
        r = peer.request(stratus, "POST", "/_matrix/federation/v1/user/keys/claim", {"one_time_keys": want})
        assert r.status_code == 200, r.text
        return r.json()["one_time_keys"].get(alice.user_id, {}).get(dev)

    def by_local(i):
        return claim(locals_[i % len(locals_)], want)["one_time_keys"].get(alice.user_id, {}).get(dev)

    def by_remote_client(_):
        got = claim(remote_user, want)
        assert not got["failures"], got
        return got["one_time_keys"].get(alice.user_id, {}).get(dev)

    jobs = [(by_peer, i) for i in range(5)] + [(by_local, i) for i in range(5)] + [(by_remote_client, i) for i in range(4)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda j: j[0](j[1]), jobs))
    handed = [k for r in results if r for k in r]
    assert len(handed) == 10, f"10 one-time keys, {len(jobs)} claims: {len(handed)} handed out: {results}"
    assert len(set(handed)) == 10, f"a one-time key was handed out twice: {handed}"
    assert sum(1 for r in results if not r) == len(jobs) - 10, results
    assert signer is not None


# --------------------------------------------------------------------------- device lists across servers


@pytest.mark.parametrize("remote", ["synapse", "stratus2"])
def test_remote_new_device_shows_in_sync(hs, remote):
    stratus, other = hs("stratus"), hs(remote)
    alice, bob, _ = joined_pair(stratus, other)
    upload_keys(bob)
    sync_now(alice)
    # Bob logs in again: alice's /sync lists him as changed (she never asked for his keys).
    dev2, _, dk2 = new_device(bob)
    changed_in_sync(alice, bob.user_id)
    got = wait_until(lambda: (q := query(alice, {bob.user_id: []}))["device_keys"].get(bob.user_id, {}).get(dev2) and q,
                     f"{dev2} of {bob} in {alice}'s /keys/query")
    assert signed_part(got["device_keys"][bob.user_id][dev2]) == signed_part(dk2), got
    # Now tracked (cached): a third device comes through the update alone.
    sync_now(alice)
    dev3, _, dk3 = new_device(bob)
    changed_in_sync(alice, bob.user_id)
    got = wait_until(lambda: (q := query(alice, {bob.user_id: []}))["device_keys"].get(bob.user_id, {}).get(dev3) and q,
                     f"{dev3} of {bob} in {alice}'s /keys/query")
    assert signed_part(got["device_keys"][bob.user_id][dev3]) == signed_part(dk3), got
    # New cross-signing keys (m.signing_key_update).
    sync_now(alice)
    xs = CrossSigning(bob.user_id)
    ok(signing_upload(other.base, bob.token, xs.upload_body()), "cross-signing upload")
    changed_in_sync(alice, bob.user_id)
    wait_until(lambda: query(alice, {bob.user_id: []})["master_keys"].get(bob.user_id, {}).get("keys") == xs.key(xs.master, "master")["keys"],
               f"{bob}'s master key in {alice}'s /keys/query")


@pytest.mark.parametrize("remote", ["synapse", "stratus2"])
def test_stratus_device_changes_reach_remote(hs, remote):
    """Our `m.device_list_update`s (stream_id, prev_id) are taken by the other server: its
    user sees ours as changed, and new devices in their `/keys/query`, deleted ones gone."""
    stratus, other = hs("stratus"), hs(remote)
    alice, bob, _ = joined_pair(stratus, other)
    upload_keys(alice)
    sync_now(bob)
    assert query(bob, {alice.user_id: []})["device_keys"][alice.user_id], "alice's first device"
    for _ in range(2):
        sync_now(bob)
        dev, token, dk = new_device(alice)
        changed_in_sync(bob, alice.user_id)
        got = wait_until(lambda: (q := query(bob, {alice.user_id: []}))["device_keys"].get(alice.user_id, {}).get(dev) and q,
                         f"{dev} of {alice} in {bob}'s /keys/query")
        assert signed_part(got["device_keys"][alice.user_id][dev]) == signed_part(dk), got
    # The last one logs out: gone on the other side too.
    sync_now(bob)
    ok(call(stratus.base, "POST", f"{CLIENT_V3}/logout", {}, token=token), "logout")
    changed_in_sync(bob, alice.user_id)
    wait_until(lambda: dev not in query(bob, {alice.user_id: []})["device_keys"].get(alice.user_id, {}), f"{dev} gone from {bob}'s view")


@pytest.mark.parametrize("remote", ["stratus2", "synapse"])
def test_device_list_gap_triggers_resync(hs, remote):
    """A stand-in for the remote server sends updates about its user: one that follows the
    last stream_id applies to Stratus' cache (a device only the update knows shows up), one
    after a gap makes Stratus fetch the real list from the real server (the update's device
    never shows up, and the earlier made-up one is gone)."""
    stratus, other = hs("stratus"), hs(remote)
    alice, bob, _ = joined_pair(stratus, other)
    bdev = device_of(bob)
    upload_keys(bob, bdev)
    # Alice asks: Stratus tracks bob, and caches his list at the server's stream_id.
    assert bdev in query(alice, {bob.user_id: []})["device_keys"][bob.user_id]
    r = StandIn(stratus).request(other, "GET", f"/_matrix/federation/v1/user/devices/{quote(bob.user_id, safe='')}")
    assert r.status_code == 200, r.text
    sid = int(r.json()["stream_id"])
    stand_in = StandIn(other)

    def update(device_id: str, stream_id: int, prev: list[int]) -> dict:
        dk, _ = device_keys(bob.user_id, device_id)
        return {"edu_type": "m.device_list_update", "content": {
            "user_id": bob.user_id, "device_id": device_id, "stream_id": stream_id, "prev_id": prev, "deleted": False, "keys": dk}}

    sync_now(alice)
    send_edus(stand_in, stratus, [update("MADEUP1", sid + 1000, [sid])])
    changed_in_sync(alice, bob.user_id)
    got = query(alice, {bob.user_id: []})["device_keys"][bob.user_id]
    assert "MADEUP1" in got and bdev in got, f"the update that follows the last stream_id applies: {got}"

    sync_now(alice)
    send_edus(stand_in, stratus, [update("MADEUP2", sid + 3000, [sid + 2000])])
    changed_in_sync(alice, bob.user_id)
    got = wait_until(lambda: (g := query(alice, {bob.user_id: []})["device_keys"][bob.user_id]) and "MADEUP1" not in g and g,
                     "the resync replaced the cached list")
    assert bdev in got and "MADEUP2" not in got, got


@pytest.mark.parametrize("remote", ["synapse", "stratus2"])
def test_remote_user_leaving_every_shared_room_is_left(hs, remote):
    stratus, other = hs("stratus"), hs(remote)
    alice, bob, room = joined_pair(stratus, other)
    upload_keys(bob)
    assert query(alice, {bob.user_id: []})["device_keys"][bob.user_id]
    sync_now(alice)
    ok(call(other.base, "POST", f"{CLIENT_V3}/rooms/{quote(room, safe='')}/leave", {}, token=bob.token), "leave")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = ok(call(stratus.base, "GET", f"{CLIENT_V3}/sync", token=alice.token, params={"since": alice.since, "timeout": "3000"}), "sync")
        alice.since = body["next_batch"]
        if bob.user_id in body.get("device_lists", {}).get("left", []):
            return
    raise AssertionError(f"{bob} never in {alice}'s device_lists.left")


def test_updates_for_other_servers_users_are_ignored(hs):
    stratus, stratus2, synapse = hs("stratus"), hs("stratus2"), hs("synapse")
    alice, bob, _ = joined_pair(stratus, synapse)
    bdev = device_of(bob)
    upload_keys(bob, bdev)
    assert bdev in query(alice, {bob.user_id: []})["device_keys"][bob.user_id]
    dk, _ = device_keys(bob.user_id, "FORGED")
    edu = {"edu_type": "m.device_list_update",
           "content": {"user_id": bob.user_id, "device_id": "FORGED", "stream_id": 10**9, "prev_id": [], "deleted": False, "keys": dk}}
    send_edus(StandIn(stratus2), stratus, [edu])
    time.sleep(1)
    assert "FORGED" not in query(alice, {bob.user_id: []})["device_keys"][bob.user_id]


# --------------------------------------------------------------------------- real clients, across servers


async def _send_checked(sender, receivers, room_id: str, text: str) -> None:
    eid = await sender.send(room_id, text)
    for r in receivers:
        got = await r.wait_message(room_id, text)
        assert got["event_id"] == eid and got["body"] == text and got["sender"] == sender.user_id, got
        assert got["wire_type"] == "m.room.encrypted", got
        assert got["sender_curve25519"] == sender.curve25519, (got, repr(sender))


async def _fed_scenario(alice_hs: HS, bob_hs: HS, tmp_path, alice_kind: str, bob1_kind: str, bob2_kind: str) -> None:
    import os
    import ssl

    from e2ee_client_helpers import make_device, register_by_secret

    def device(kind: str, hs: HS, user_id: str, name: str):
        d = make_device(kind, hs.base, user_id, tmp_path, name)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE")
        if kind == "nio" and bundle:
            # aiohttp's default SSL context is made at import: nio gets one with the session's CA.
            d.client.ssl = ssl.create_default_context(cafile=bundle)
        return d

    alice_id = register_by_secret(alice_hs.base, alice_hs.shared_secret, "alice")
    bob_id = register_by_secret(bob_hs.base, bob_hs.shared_secret, "bob")
    alice = device(alice_kind, alice_hs, alice_id, "alice")
    bob1 = device(bob1_kind, bob_hs, bob_id, "bob1")
    bob2 = device(bob2_kind, bob_hs, bob_id, "bob2")
    devices = [alice, bob1, bob2]
    tag = uuid.uuid4().hex[:8]
    try:
        for d in (alice, bob1):
            await d.login()
            await d.start()
        # The remote invitee is in createRoom's `invite`, as a client starting a chat does.
        room_id = await alice.create_room(invite=[bob_id])
        await bob1.join(room_id)
        await alice.wait_member(room_id, bob_id)
        await alice.wait_device(bob_id, bob1.device_id)
        await bob1.wait_device(alice_id, alice.device_id)

        await _send_checked(alice, [bob1], room_id, f"hello Bob across servers, from Alice ({alice.kind}) {tag}")
        await _send_checked(bob1, [alice], room_id, f"hi Alice across servers, from Bob ({bob1.kind}) {tag}")

        # Bob's second device: Alice's server learns of it by m.device_list_update.
        await bob2.login()
        await bob2.start()
        await bob2.wait_member(room_id, alice_id)
        await alice.wait_device(bob_id, bob2.device_id)
        await _send_checked(alice, [bob1, bob2], room_id, f"to both of Bob's devices, from Alice ({alice.kind}) {tag}")
        await bob2.wait_device(alice_id, alice.device_id)
        await _send_checked(bob2, [alice, bob1], room_id, f"from Bob's second device ({bob2.kind}) {tag}")
    finally:
        for d in devices:
            await d.close()
        for d in devices:
            if getattr(d, "log_path", None) is not None and d.log_path.exists():
                print(f"--- {d.name} ({d!r}) stderr ---\n{d.stderr_tail(30)}")


@pytest.mark.parametrize(
    "alice_on,bob_on,kinds",
    [
        pytest.param("stratus", "synapse", ("nio", "js", "js"), id="stratus-nio_synapse-js"),
        pytest.param("synapse", "stratus", ("nio", "js", "nio"), id="synapse-nio_stratus-js"),
        pytest.param("stratus", "stratus2", ("js", "nio", "js"), id="stratus-js_stratus2-nio"),
    ],
)
def test_encrypted_room_across_servers(hs, tmp_path, monkeypatch, alice_on, bob_on, kinds):
    import asyncio
    import os

    from e2ee_client_helpers import js_available

    missing = js_available()
    if missing:
        pytest.fail(missing)
    # The servers first: the session's CA bundle exists once they do.
    alice_hs, bob_hs = hs(alice_on), hs(bob_on)
    # The clients reach the Stratus instances over TLS with the session's CA (Node reads it
    # from here; nio is given an SSL context).
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if bundle:
        monkeypatch.setenv("NODE_EXTRA_CA_CERTS", bundle)
    asyncio.run(asyncio.wait_for(_fed_scenario(alice_hs, bob_hs, tmp_path, *kinds), 300))
