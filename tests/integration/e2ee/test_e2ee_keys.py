"""Key management API (spec: client-server-api, "Key management API"): device keys, one-time
and fallback keys, atomic claims, queries, device-list changes in /sync and /keys/changes,
and keys going away with their device."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from e2ee_helpers import claim, device_keys, one_time_keys, query, setup_device, upload
from matrix_helpers import CLIENT_V3, DEFAULT_PASSWORD, assert_error, assert_ok, call, login, new_user, uia_password
from rooms_helpers import create_room, invite, join, leave
from sync_helpers import BackgroundSync, sync


def test_device_keys_are_verified_stored_and_queried(base, user, user2):
    dk, _ = device_keys(user["user_id"], user["device_id"])
    body = assert_ok(upload(base, user["access_token"], {"device_keys": dk}))
    assert body["one_time_key_counts"]["signed_curve25519"] == 0
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/devices/{user['device_id']}", {"display_name": "Laptop"}, token=user["access_token"]))
    q = query(base, user2["access_token"], {user["user_id"]: []})
    got = q["device_keys"][user["user_id"]][user["device_id"]]
    assert got["keys"] == dk["keys"] and got["signatures"] == dk["signatures"]
    assert got["unsigned"]["device_display_name"] == "Laptop"
    # Asking for one device; asking for an unknown device.
    q = query(base, user2["access_token"], {user["user_id"]: ["NOPE"]})
    assert q["device_keys"][user["user_id"]] == {}


def test_bad_device_keys_are_refused_and_nothing_is_stored(base, user, user2):
    dk, signer = device_keys(user["user_id"], user["device_id"])
    tampered = dict(dk, keys=dict(dk["keys"], **{f"curve25519:{user['device_id']}": "x" * 43}))
    assert_error(upload(base, user["access_token"], {"device_keys": tampered}), 400, "M_INVALID_PARAM")
    other_device, _ = device_keys(user["user_id"], "SOMEONEELSE")
    assert_error(upload(base, user["access_token"], {"device_keys": other_device}), 400, "M_INVALID_PARAM")
    other_user, _ = device_keys(user2["user_id"], user["device_id"])
    assert_error(upload(base, user["access_token"], {"device_keys": other_user}), 400, "M_INVALID_PARAM")
    unsigned = {k: v for k, v in dk.items() if k != "signatures"}
    assert_error(upload(base, user["access_token"], {"device_keys": unsigned}), 400, "M_INVALID_PARAM")
    assert query(base, user2["access_token"], {user["user_id"]: []})["device_keys"][user["user_id"]] == {}
    # Malformed bodies.
    assert_error(upload(base, user["access_token"], {"one_time_keys": {"nocolon": "k"}}), 400, "M_BAD_JSON")
    assert_error(upload(base, user["access_token"], {"one_time_keys": []}), 400, "M_BAD_JSON")
    assert_error(call(base, "POST", f"{CLIENT_V3}/keys/query", {"device_keys": []}, token=user["access_token"]), 400, "M_BAD_JSON")
    assert_error(claim(base, user["access_token"], {user["user_id"]: "x"}), 400, "M_BAD_JSON")
    assert_error(call(base, "POST", f"{CLIENT_V3}/keys/upload", {}), 401, "M_MISSING_TOKEN")


def test_one_time_keys_count_and_conflicts(base, user):
    signer = setup_device(base, user)
    keys = one_time_keys(5, user["user_id"], signer)
    body = assert_ok(upload(base, user["access_token"], {"one_time_keys": keys}))
    assert body["one_time_key_counts"]["signed_curve25519"] == 5
    # The same keys again (a retried request) change nothing.
    body = assert_ok(upload(base, user["access_token"], {"one_time_keys": keys}))
    assert body["one_time_key_counts"]["signed_curve25519"] == 5
    # A known key ID with another key is refused, and nothing of that request is stored.
    key_id = next(iter(keys))
    clash = {key_id: {"key": "different"}, "signed_curve25519:fresh": {"key": "k"}}
    assert_error(upload(base, user["access_token"], {"one_time_keys": clash}), 400, "M_INVALID_PARAM")
    body = assert_ok(upload(base, user["access_token"], {}))
    assert body["one_time_key_counts"]["signed_curve25519"] == 5
    s = sync(base, user["access_token"])
    assert s["device_one_time_keys_count"]["signed_curve25519"] == 5
    assert s["device_unused_fallback_key_types"] == []


def test_claim_hands_out_each_key_once_then_the_fallback(base, user, user2):
    signer = setup_device(base, user)
    otks = one_time_keys(2, user["user_id"], signer)
    fallback = one_time_keys(1, user["user_id"], signer, fallback=True)
    assert_ok(upload(base, user["access_token"], {"one_time_keys": otks, "fallback_keys": fallback}))
    assert sync(base, user["access_token"])["device_unused_fallback_key_types"] == ["signed_curve25519"]
    want = {user["user_id"]: {user["device_id"]: "signed_curve25519"}}
    got = []
    for _ in range(2):
        r = assert_ok(claim(base, user2["access_token"], want))
        got.append(r["one_time_keys"][user["user_id"]][user["device_id"]])
    assert sorted(k for g in got for k in g) == sorted(otks)
    assert [g[next(iter(g))] for g in got] == [otks[next(iter(g))] for g in got]
    # None left: the fallback key, every time, and it is reported as used.
    for _ in range(2):
        r = assert_ok(claim(base, user2["access_token"], want))
        assert r["one_time_keys"][user["user_id"]][user["device_id"]] == fallback
    s = sync(base, user["access_token"])
    assert s["device_one_time_keys_count"]["signed_curve25519"] == 0
    assert s["device_unused_fallback_key_types"] == []
    # Re-uploading the same fallback key keeps it used; a new one is unused.
    assert_ok(upload(base, user["access_token"], {"fallback_keys": fallback}))
    assert sync(base, user["access_token"])["device_unused_fallback_key_types"] == []
    assert_ok(upload(base, user["access_token"], {"fallback_keys": one_time_keys(1, user["user_id"], signer, fallback=True)}))
    assert sync(base, user["access_token"])["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # Unknown devices and algorithms give nothing; remote servers are failures.
    r = assert_ok(claim(base, user2["access_token"], {user["user_id"]: {"NOPE": "signed_curve25519", user["device_id"]: "other_alg"}}))
    assert r["one_time_keys"] == {}
    r = assert_ok(claim(base, user2["access_token"], {"@x:remote.invalid": {"D": "signed_curve25519"}}))
    assert "remote.invalid" in r["failures"]


def test_concurrent_claims_never_hand_out_a_key_twice(base, user):
    n = 20
    signer = setup_device(base, user)
    otks = one_time_keys(n, user["user_id"], signer)
    fallback = one_time_keys(1, user["user_id"], signer, fallback=True)
    assert_ok(upload(base, user["access_token"], {"one_time_keys": otks, "fallback_keys": fallback}))
    claimers = [new_user(base, "claimer") for _ in range(4)]
    want = {user["user_id"]: {user["device_id"]: "signed_curve25519"}}

    def one(i: int) -> dict:
        r = assert_ok(claim(base, claimers[i % len(claimers)]["access_token"], want))
        return r["one_time_keys"][user["user_id"]][user["device_id"]]

    with ThreadPoolExecutor(max_workers=2 * n) as pool:
        results = list(pool.map(one, range(2 * n)))
    handed = [k for r in results for k in r]
    fallback_id = next(iter(fallback))
    one_time = [k for k in handed if k != fallback_id]
    assert len(one_time) == len(set(one_time)) == n, "a one-time key was handed out twice"
    assert set(one_time) == set(otks)
    assert handed.count(fallback_id) == n
    assert sync(base, user["access_token"])["device_one_time_keys_count"]["signed_curve25519"] == 0


def test_query_reports_unreachable_servers_and_unknown_users(base, user):
    q = query(base, user["access_token"], {"@a:remote.invalid": [], "@nobody-here:" + user["user_id"].split(":", 1)[1]: []})
    assert "remote.invalid" in q["failures"]
    assert list(q["device_keys"].values()) == [{}]


def test_device_list_changes_reach_room_members(base, user, user2):
    alice, bob = user, user2
    carol = new_user(base, "carol")
    stranger = new_user(base, "stranger")
    room = create_room(base, alice["access_token"])
    invite(base, alice["access_token"], room, bob["user_id"])
    join(base, bob["access_token"], room)
    since = sync(base, alice["access_token"])["next_batch"]

    # Bob's new keys wake Alice's waiting sync and are reported; a stranger's are not.
    waiting = BackgroundSync(base, alice["access_token"], since, timeout=20000)
    setup_device(base, stranger)
    setup_device(base, bob)
    body, elapsed = waiting.result()
    assert bob["user_id"] in body["device_lists"]["changed"], body["device_lists"]
    assert stranger["user_id"] not in body["device_lists"]["changed"]
    assert elapsed < 15
    changes = assert_ok(call(base, "GET", f"{CLIENT_V3}/keys/changes", token=alice["access_token"], params={"from": since, "to": body["next_batch"]}))
    assert bob["user_id"] in changes["changed"] and stranger["user_id"] not in changes["changed"]

    # Carol joins: Alice now shares a room with her.
    since = body["next_batch"]
    invite(base, alice["access_token"], room, carol["user_id"])
    join(base, carol["access_token"], room)
    body = sync(base, alice["access_token"], since)
    assert carol["user_id"] in body["device_lists"]["changed"]

    # Bob leaves the only shared room: he is in `left`.
    since = body["next_batch"]
    leave(base, bob["access_token"], room)
    body = sync(base, alice["access_token"], since)
    assert bob["user_id"] in body["device_lists"]["left"], body["device_lists"]
    assert bob["user_id"] not in body["device_lists"]["changed"]
    changes = assert_ok(call(base, "GET", f"{CLIENT_V3}/keys/changes", token=alice["access_token"], params={"from": since, "to": body["next_batch"]}))
    assert bob["user_id"] in changes["left"]

    # Bob's key changes no longer reach Alice.
    since = body["next_batch"]
    setup_device(base, bob)
    body = sync(base, alice["access_token"], since)
    assert bob["user_id"] not in body["device_lists"]["changed"]

    assert_error(call(base, "GET", f"{CLIENT_V3}/keys/changes", token=alice["access_token"], params={"from": since}), 400, "M_MISSING_PARAM")
    assert_error(call(base, "GET", f"{CLIENT_V3}/keys/changes", token=alice["access_token"], params={"from": "x", "to": "y"}), 400, "M_INVALID_PARAM")


def test_deleting_a_device_removes_its_keys_and_tells_others(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"])
    invite(base, alice["access_token"], room, bob["user_id"])
    join(base, bob["access_token"], room)
    second = login(base, bob["user_id"])
    bob2 = {"user_id": bob["user_id"], "device_id": second["device_id"], "access_token": second["access_token"]}
    setup_device(base, bob, otks=3)
    setup_device(base, bob2, otks=2)
    q = query(base, alice["access_token"], {bob["user_id"]: []})
    assert bob2["device_id"] in q["device_keys"][bob["user_id"]]
    since = sync(base, alice["access_token"])["next_batch"]

    r = uia_password(base, "DELETE", f"{CLIENT_V3}/devices/{bob2['device_id']}", {}, bob["access_token"], bob["user_id"], DEFAULT_PASSWORD)
    assert_ok(r)
    q = query(base, alice["access_token"], {bob["user_id"]: []})
    assert bob2["device_id"] not in q["device_keys"][bob["user_id"]]
    assert bob["device_id"] in q["device_keys"][bob["user_id"]]
    r = assert_ok(claim(base, alice["access_token"], {bob["user_id"]: {bob2["device_id"]: "signed_curve25519"}}))
    assert r["one_time_keys"] == {}
    body = sync(base, alice["access_token"], since)
    assert bob["user_id"] in body["device_lists"]["changed"]

    # Logging out removes the device's keys too.
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=bob["access_token"]))
    q = query(base, alice["access_token"], {bob["user_id"]: []})
    assert bob["device_id"] not in q["device_keys"][bob["user_id"]]
