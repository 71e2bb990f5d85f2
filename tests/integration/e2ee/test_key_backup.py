"""Server-side key backups (spec: client-server-api, "Server-side key backups").

Versions (create, current, get, update, delete), keys at the three levels (all, room,
session) with PUT, GET and DELETE, the keep-or-replace rule, etag and count, uploads to a
version that is not current, per-user isolation, large uploads and bad input.
"""

from __future__ import annotations

import itertools

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, qid

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
VERSION = f"{CLIENT_V3}/room_keys/version"
KEYS = f"{CLIENT_V3}/room_keys/keys"


def auth_data(tag: str = "a") -> dict:
    return {"public_key": f"pk-{tag}", "signatures": {"@x:y": {"ed25519:DEV": f"sig-{tag}"}}}


def create_version(base: str, token: str, tag: str = "a") -> str:
    body = assert_ok(call(base, "POST", VERSION, {"algorithm": ALGORITHM, "auth_data": auth_data(tag)}, token=token))
    assert isinstance(body["version"], str), body
    return body["version"]


def key(fmi: int = 0, fc: int = 0, verified: bool = False, data: str = "c") -> dict:
    return {
        "first_message_index": fmi,
        "forwarded_count": fc,
        "is_verified": verified,
        "session_data": {"ephemeral": "e", "ciphertext": data, "mac": "m"},
    }


def room_path(room: str, session: str | None = None) -> str:
    p = f"{KEYS}/{qid(room)}"
    return p if session is None else f"{p}/{qid(session)}"


def put_all(base: str, token: str, version: str, rooms: dict) -> dict:
    return assert_ok(call(base, "PUT", KEYS, {"rooms": rooms}, token=token, params={"version": version}))


def get_version(base: str, token: str, version: str | None = None) -> dict:
    path = VERSION if version is None else f"{VERSION}/{version}"
    return assert_ok(call(base, "GET", path, token=token))


def keep_rule(existing: tuple, new: tuple) -> bool:
    """The spec's rule, (is_verified, first_message_index, forwarded_count): does `new` replace?"""
    if existing[0] != new[0]:
        return new[0]
    if existing[1] != new[1]:
        return new[1] < existing[1]
    return new[2] < existing[2]


# --------------------------------------------------------------------------- versions


def test_no_backup_is_404(base, user):
    tok = user["access_token"]
    assert_error(call(base, "GET", VERSION, token=tok), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", f"{VERSION}/1", token=tok), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", KEYS, token=tok, params={"version": "1"}), 404, "M_NOT_FOUND")


def test_create_and_get_versions(base, user):
    tok = user["access_token"]
    assert create_version(base, tok, "one") == "1"
    info = get_version(base, tok)
    assert info["version"] == "1" and info["algorithm"] == ALGORITHM, info
    assert info["auth_data"] == auth_data("one"), info
    assert info["count"] == 0 and isinstance(info["etag"], str), info
    assert get_version(base, tok, "1") == info

    assert create_version(base, tok, "two") == "2"
    assert get_version(base, tok)["version"] == "2"
    assert get_version(base, tok, "2")["auth_data"] == auth_data("two")
    # The older version is still readable.
    assert get_version(base, tok, "1")["auth_data"] == auth_data("one")


def test_update_version(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    r = call(base, "PUT", f"{VERSION}/{v}", {"algorithm": ALGORITHM, "auth_data": auth_data("new")}, token=tok)
    assert assert_ok(r) == {}
    assert get_version(base, tok, v)["auth_data"] == auth_data("new")
    # A matching version in the body is fine.
    body = {"algorithm": ALGORITHM, "auth_data": auth_data("newer"), "version": v}
    assert_ok(call(base, "PUT", f"{VERSION}/{v}", body, token=tok))
    assert get_version(base, tok)["auth_data"] == auth_data("newer")


def test_update_version_errors(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    path = f"{VERSION}/{v}"
    r = call(base, "PUT", path, {"algorithm": "m.other", "auth_data": auth_data()}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")
    r = call(base, "PUT", path, {"algorithm": ALGORITHM, "auth_data": auth_data(), "version": "7"}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")
    r = call(base, "PUT", path, {"algorithm": ALGORITHM, "auth_data": auth_data(), "version": 1}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")
    assert_error(call(base, "PUT", path, {"algorithm": ALGORITHM}, token=tok), 400, "M_BAD_JSON")
    assert_error(call(base, "PUT", path, {"auth_data": auth_data()}, token=tok), 400, "M_BAD_JSON")
    for missing in ["99", "abc"]:
        r = call(base, "PUT", f"{VERSION}/{missing}", {"algorithm": ALGORITHM, "auth_data": auth_data()}, token=tok)
        assert_error(r, 404, "M_NOT_FOUND")
    assert get_version(base, tok)["auth_data"] == auth_data()


def test_delete_version(base, user):
    tok = user["access_token"]
    v1 = create_version(base, tok, "one")
    v2 = create_version(base, tok, "two")
    put_all(base, tok, v2, {"!r:x": {"sessions": {"s": key()}}})
    assert assert_ok(call(base, "DELETE", f"{VERSION}/{v2}", token=tok)) == {}
    # Deleting it again succeeds; it is gone for reads and its keys with it.
    assert assert_ok(call(base, "DELETE", f"{VERSION}/{v2}", token=tok)) == {}
    assert_error(call(base, "GET", f"{VERSION}/{v2}", token=tok), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", KEYS, token=tok, params={"version": v2}), 404, "M_NOT_FOUND")
    r = call(base, "PUT", f"{VERSION}/{v2}", {"algorithm": ALGORITHM, "auth_data": auth_data()}, token=tok)
    assert_error(r, 404, "M_NOT_FOUND")
    # The latest version not deleted is current again; numbers are never reused.
    assert get_version(base, tok)["version"] == v1
    assert create_version(base, tok, "three") == "3"
    assert get_version(base, tok)["version"] == "3"
    # Unknown and malformed versions.
    assert_error(call(base, "DELETE", f"{VERSION}/99", token=tok), 404, "M_NOT_FOUND")
    assert_error(call(base, "DELETE", f"{VERSION}/abc", token=tok), 404, "M_NOT_FOUND")
    # Deleting every version leaves no current one.
    for v in [v1, "3"]:
        assert_ok(call(base, "DELETE", f"{VERSION}/{v}", token=tok))
    assert_error(call(base, "GET", VERSION, token=tok), 404, "M_NOT_FOUND")


def test_delete_version_deletes_its_keys_only(base, user):
    tok = user["access_token"]
    v1 = create_version(base, tok)
    put_all(base, tok, v1, {"!r:x": {"sessions": {"s1": key(data="v1")}}})
    v2 = create_version(base, tok)
    put_all(base, tok, v2, {"!r:x": {"sessions": {"s1": key(data="v2"), "s2": key()}}})
    assert_ok(call(base, "DELETE", f"{VERSION}/{v2}", token=tok))
    got = assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v1}))
    assert got == {"rooms": {"!r:x": {"sessions": {"s1": key(data="v1")}}}}, got
    assert get_version(base, tok, v1)["count"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"algorithm": ALGORITHM},
        {"auth_data": {"public_key": "k"}},
        {"algorithm": 5, "auth_data": {}},
        {"algorithm": "", "auth_data": {}},
        {"algorithm": ALGORITHM, "auth_data": "not an object"},
    ],
)
def test_create_version_bad_json(base, user, body):
    assert_error(call(base, "POST", VERSION, body, token=user["access_token"]), 400, "M_BAD_JSON")
    assert_error(call(base, "GET", VERSION, token=user["access_token"]), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("algorithm", ["m.other", "m.megolm_backup.v1", "m.megolm_backup.v2.curve25519-aes-sha2", "x" * 300])
def test_create_version_unknown_algorithm(base, user, algorithm):
    """Only backup algorithms a client can read are accepted (key_backup.yaml: `algorithm`
    is the enum `m.megolm_backup.v1.curve25519-aes-sha2`; MSC3270's symmetric one too)."""
    tok = user["access_token"]
    r = call(base, "POST", VERSION, {"algorithm": algorithm, "auth_data": auth_data()}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")
    assert_error(call(base, "GET", VERSION, token=tok), 404, "M_NOT_FOUND")


def test_create_version_symmetric_algorithm(base, user):
    tok = user["access_token"]
    alg = "org.matrix.msc3270.v1.aes-hmac-sha2"
    body = assert_ok(call(base, "POST", VERSION, {"algorithm": alg, "auth_data": {"iv": "i", "mac": "m"}}, token=tok))
    assert get_version(base, tok, body["version"])["algorithm"] == alg
    # Updating it keeps the algorithm; an unknown one is refused.
    r = call(base, "PUT", f"{VERSION}/{body['version']}", {"algorithm": "m.other", "auth_data": {}}, token=tok)
    assert_error(r, 400, "M_INVALID_PARAM")


def test_create_version_not_json(base, user):
    r = call(base, "POST", VERSION, data="{nope", token=user["access_token"])
    assert_error(r, 400, "M_NOT_JSON")


def test_endpoints_need_auth(base):
    for method, path in [
        ("POST", VERSION),
        ("GET", VERSION),
        ("GET", f"{VERSION}/1"),
        ("PUT", f"{VERSION}/1"),
        ("DELETE", f"{VERSION}/1"),
        ("PUT", KEYS),
        ("GET", KEYS),
        ("DELETE", KEYS),
        ("GET", room_path("!r:x")),
        ("PUT", room_path("!r:x", "s")),
        ("DELETE", room_path("!r:x", "s")),
    ]:
        assert_error(call(base, method, path, params={"version": "1"}), 401, "M_MISSING_TOKEN")


# --------------------------------------------------------------------------- keys, every level


def test_session_level(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    room, sess = "!room:example.org", "sess/ion+1"
    put = assert_ok(call(base, "PUT", room_path(room, sess), key(3, 1, True), token=tok, params={"version": v}))
    assert put["count"] == 1 and isinstance(put["etag"], str), put
    got = assert_ok(call(base, "GET", room_path(room, sess), token=tok, params={"version": v}))
    assert got == key(3, 1, True), got
    # Unknown session: 404; unknown room: empty sessions.
    r = call(base, "GET", room_path(room, "other"), token=tok, params={"version": v})
    assert_error(r, 404, "M_NOT_FOUND")
    r = call(base, "GET", room_path("!other:example.org", sess), token=tok, params={"version": v})
    assert_error(r, 404, "M_NOT_FOUND")
    assert assert_ok(call(base, "GET", room_path("!other:example.org"), token=tok, params={"version": v})) == {
        "sessions": {}
    }
    assert assert_ok(call(base, "GET", room_path(room), token=tok, params={"version": v})) == {
        "sessions": {sess: key(3, 1, True)}
    }
    assert assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v})) == {
        "rooms": {room: {"sessions": {sess: key(3, 1, True)}}}
    }
    d = assert_ok(call(base, "DELETE", room_path(room, sess), token=tok, params={"version": v}))
    assert d["count"] == 0 and d["etag"] != put["etag"], d
    r = call(base, "GET", room_path(room, sess), token=tok, params={"version": v})
    assert_error(r, 404, "M_NOT_FOUND")


def test_room_level(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    room = "!room:example.org"
    sessions = {f"s{i}": key(i) for i in range(5)}
    r = assert_ok(call(base, "PUT", room_path(room), {"sessions": sessions}, token=tok, params={"version": v}))
    assert r["count"] == 5, r
    put_all(base, tok, v, {"!other:example.org": {"sessions": {"x": key()}}})
    got = assert_ok(call(base, "GET", room_path(room), token=tok, params={"version": v}))
    assert got == {"sessions": sessions}, got
    d = assert_ok(call(base, "DELETE", room_path(room), token=tok, params={"version": v}))
    assert d["count"] == 1, d
    assert assert_ok(call(base, "GET", room_path(room), token=tok, params={"version": v})) == {"sessions": {}}
    all_keys = assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v}))
    assert all_keys == {"rooms": {"!other:example.org": {"sessions": {"x": key()}}}}, all_keys


def test_all_level(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    assert assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v})) == {"rooms": {}}
    rooms = {f"!r{i}:x": {"sessions": {f"s{j}": key(j, i) for j in range(3)}} for i in range(4)}
    r = put_all(base, tok, v, rooms)
    assert r["count"] == 12, r
    assert assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v})) == {"rooms": rooms}
    info = get_version(base, tok, v)
    assert (info["count"], info["etag"]) == (12, r["etag"]), info
    d = assert_ok(call(base, "DELETE", KEYS, token=tok, params={"version": v}))
    assert d["count"] == 0 and d["etag"] != r["etag"], d
    assert assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v})) == {"rooms": {}}
    assert get_version(base, tok, v)["count"] == 0


def test_empty_put(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    first = put_all(base, tok, v, {})
    assert first["count"] == 0
    assert put_all(base, tok, v, {"!r:x": {"sessions": {}}}) == first


# --------------------------------------------------------------------------- etag and count


def test_etag_moves_only_when_keys_change(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    e0 = get_version(base, tok)["etag"]
    r1 = put_all(base, tok, v, {"!r:x": {"sessions": {"s": key(5, 1)}}})
    assert r1["count"] == 1 and r1["etag"] != e0
    # The same key again, or a worse one: nothing changes.
    assert put_all(base, tok, v, {"!r:x": {"sessions": {"s": key(5, 1)}}}) == r1
    assert put_all(base, tok, v, {"!r:x": {"sessions": {"s": key(6, 0, data="worse")}}}) == r1
    assert get_version(base, tok)["etag"] == r1["etag"]
    # A better key replaces: the etag moves, the count does not.
    r2 = put_all(base, tok, v, {"!r:x": {"sessions": {"s": key(4, 1, data="better")}}})
    assert r2["count"] == 1 and r2["etag"] not in (e0, r1["etag"]), r2
    # Deleting nothing leaves the etag; deleting something moves it.
    d0 = assert_ok(call(base, "DELETE", room_path("!r:x", "none"), token=tok, params={"version": v}))
    assert d0 == r2, d0
    d1 = assert_ok(call(base, "DELETE", room_path("!r:x", "s"), token=tok, params={"version": v}))
    assert d1["count"] == 0 and d1["etag"] not in (e0, r1["etag"], r2["etag"]), d1
    # Updating auth_data is not a change of keys.
    assert_ok(call(base, "PUT", f"{VERSION}/{v}", {"algorithm": ALGORITHM, "auth_data": auth_data("z")}, token=tok))
    assert get_version(base, tok)["etag"] == d1["etag"]


def test_keep_rule_matches_the_spec(base, user):
    """Every pair over a grid of (is_verified, first_message_index, forwarded_count): the SQL
    in store/backup.rs keeps what the spec's rule (core::backup::should_replace) keeps."""
    tok = user["access_token"]
    v = create_version(base, tok)
    grid = list(itertools.product([False, True], [0, 1, 2], [0, 1, 2]))
    pairs = list(itertools.product(grid, grid))
    name = lambda i: f"pair{i}"  # noqa: E731
    # Spread over a few rooms so that chunks mix rooms.
    room = lambda i: f"!r{i % 7}:x"  # noqa: E731

    def body(which: int, tag: str) -> dict:
        rooms: dict = {}
        for i, pair in enumerate(pairs):
            verified, fmi, fc = pair[which]
            rooms.setdefault(room(i), {"sessions": {}})["sessions"][name(i)] = key(fmi, fc, verified, f"{tag}{i}")
        return rooms

    r1 = put_all(base, tok, v, body(0, "old"))
    assert r1["count"] == len(pairs), r1
    r2 = put_all(base, tok, v, body(1, "new"))
    assert r2["count"] == len(pairs) and r2["etag"] != r1["etag"], r2
    got = assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v}))["rooms"]
    wrong = []
    for i, (old, new) in enumerate(pairs):
        replaced = keep_rule(old, new)
        verified, fmi, fc = new if replaced else old
        want = key(fmi, fc, verified, f"{'new' if replaced else 'old'}{i}")
        if got[room(i)]["sessions"][name(i)] != want:
            wrong.append((old, new, got[room(i)]["sessions"][name(i)]))
    assert not wrong, wrong[:5]
    # The rule really discriminates on this grid: both outcomes occur.
    assert 0 < sum(keep_rule(o, n) for o, n in pairs) < len(pairs)


@pytest.mark.parametrize(
    "old,new,replaced",
    [
        ((False, 0, 0), (True, 9, 9), True),  # verified wins over everything else
        ((True, 0, 0), (False, 0, 0), False),
        ((True, 5, 0), (True, 4, 9), True),  # then the lower first_message_index
        ((True, 4, 0), (True, 5, 0), False),
        ((False, 3, 2), (False, 3, 1), True),  # then the lower forwarded_count
        ((False, 3, 1), (False, 3, 2), False),
        ((False, 3, 1), (False, 3, 1), False),  # equal: the stored key stays
    ],
)
def test_keep_rule_each_tie_breaker(base, user, old, new, replaced):
    tok = user["access_token"]
    v = create_version(base, tok)
    path = room_path("!r:x", "s")
    assert_ok(call(base, "PUT", path, key(old[1], old[2], old[0], "old"), token=tok, params={"version": v}))
    assert_ok(call(base, "PUT", path, key(new[1], new[2], new[0], "new"), token=tok, params={"version": v}))
    got = assert_ok(call(base, "GET", path, token=tok, params={"version": v}))
    (verified, fmi, fc), tag = (new, "new") if replaced else (old, "old")
    assert got == key(fmi, fc, verified, tag), got


# --------------------------------------------------------------------------- versions and keys


def test_wrong_version(base, user):
    tok = user["access_token"]
    one = {"!r:x": {"sessions": {"s": key()}}}
    # No backup at all.
    assert_error(call(base, "PUT", KEYS, {"rooms": one}, token=tok, params={"version": "1"}), 404, "M_NOT_FOUND")
    v1 = create_version(base, tok)
    put_all(base, tok, v1, one)
    v2 = create_version(base, tok)
    # An older version that exists: 403 with the current version, at every level.
    for path, body in [
        (KEYS, {"rooms": one}),
        (room_path("!r:x"), one["!r:x"]),
        (room_path("!r:x", "s"), key()),
    ]:
        e = assert_error(call(base, "PUT", path, body, token=tok, params={"version": v1}), 403, "M_WRONG_ROOM_KEYS_VERSION")
        assert e["current_version"] == v2, e
    # Versions that do not exist.
    for bad in ["3", "0", "abc", "01", "-1"]:
        r = call(base, "PUT", KEYS, {"rooms": one}, token=tok, params={"version": bad})
        assert_error(r, 404, "M_NOT_FOUND")
    # Nothing was written anywhere.
    assert get_version(base, tok, v1)["count"] == 1
    assert get_version(base, tok, v2)["count"] == 0
    # The older version can still be read and its keys deleted.
    got = assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v1}))
    assert got == {"rooms": one}, got
    d = assert_ok(call(base, "DELETE", KEYS, token=tok, params={"version": v1}))
    assert d["count"] == 0, d
    # Deleting the current version makes the older one current again.
    assert_ok(call(base, "DELETE", f"{VERSION}/{v2}", token=tok))
    assert put_all(base, tok, v1, one)["count"] == 1
    assert_error(call(base, "PUT", KEYS, {"rooms": one}, token=tok, params={"version": v2}), 404, "M_NOT_FOUND")


def test_version_query_parameter(base, user):
    tok = user["access_token"]
    create_version(base, tok)
    for method, path, body in [
        ("PUT", KEYS, {"rooms": {}}),
        ("GET", KEYS, None),
        ("DELETE", KEYS, None),
        ("GET", room_path("!r:x"), None),
        ("DELETE", room_path("!r:x", "s"), None),
    ]:
        assert_error(call(base, method, path, body, token=tok), 400, "M_MISSING_PARAM")
        for bad in ["abc", "9"]:
            assert_error(call(base, method, path, body, token=tok, params={"version": bad}), 404, "M_NOT_FOUND")


def test_backups_are_per_user(base, user, user2):
    t1, t2 = user["access_token"], user2["access_token"]
    v = create_version(base, t1, "mine")
    put_all(base, t1, v, {"!r:x": {"sessions": {"s": key(data="secret")}}})
    # user2 has no backup, and cannot read, change or delete user's.
    assert_error(call(base, "GET", VERSION, token=t2), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", f"{VERSION}/{v}", token=t2), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", KEYS, token=t2, params={"version": v}), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", room_path("!r:x", "s"), token=t2, params={"version": v}), 404, "M_NOT_FOUND")
    r = call(base, "PUT", f"{VERSION}/{v}", {"algorithm": ALGORITHM, "auth_data": auth_data("evil")}, token=t2)
    assert_error(r, 404, "M_NOT_FOUND")
    assert_error(call(base, "DELETE", KEYS, token=t2, params={"version": v}), 404, "M_NOT_FOUND")
    assert_error(call(base, "DELETE", f"{VERSION}/{v}", token=t2), 404, "M_NOT_FOUND")
    # user2's own backup has its own numbering and contents.
    assert create_version(base, t2, "theirs") == "1"
    put_all(base, t2, "1", {"!r:x": {"sessions": {"s": key(data="theirs")}}})
    assert_ok(call(base, "DELETE", KEYS, token=t2, params={"version": "1"}))
    assert_ok(call(base, "DELETE", f"{VERSION}/1", token=t2))
    # user's backup is untouched.
    info = get_version(base, t1)
    assert (info["version"], info["auth_data"], info["count"]) == (v, auth_data("mine"), 1), info
    got = assert_ok(call(base, "GET", room_path("!r:x", "s"), token=t1, params={"version": v}))
    assert got == key(data="secret"), got


# --------------------------------------------------------------------------- scale


def test_large_upload(base, user):
    """Hundreds of sessions in one request go through in one atomic batch."""
    tok = user["access_token"]
    v = create_version(base, tok)
    rooms = {f"!room{i}:x": {"sessions": {f"s{i}-{j}": key(j, data="x" * 40) for j in range(20)}} for i in range(25)}
    r = put_all(base, tok, v, rooms)
    assert r["count"] == 500, r
    got = assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v}))
    assert got == {"rooms": rooms}
    one = assert_ok(call(base, "GET", room_path("!room7:x"), token=tok, params={"version": v}))
    assert len(one["sessions"]) == 20
    # Again, half of them better and with 1500 new ones: count and contents stay exact.
    for i, room in enumerate(rooms.values()):
        for j, k in enumerate(room["sessions"].values()):
            if j % 2 == 0:
                k.update(is_verified=True, session_data={"ciphertext": "better"})
    more = {f"!more{i}:x": {"sessions": {f"m{i}-{j}": key(data="m") for j in range(100)}} for i in range(15)}
    r2 = put_all(base, tok, v, {**rooms, **more})
    assert r2["count"] == 2000 and r2["etag"] != r["etag"], r2
    got = assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v}))
    assert got == {"rooms": {**rooms, **more}}
    assert get_version(base, tok)["count"] == 2000
    # Deleting the version takes every key with it.
    assert_ok(call(base, "DELETE", f"{VERSION}/{v}", token=tok))
    v2 = create_version(base, tok)
    assert assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v2})) == {"rooms": {}}


def test_upload_larger_than_one_statement_chunk(base, user):
    """~900 KB of sessions: more than one 512 KiB statement chunk, still one atomic batch."""
    tok = user["access_token"]
    v = create_version(base, tok)
    rooms = {f"!big{i}:x": {"sessions": {f"b{i}-{j}": key(j, data="y" * 2000) for j in range(75)}} for i in range(6)}
    r = put_all(base, tok, v, rooms)
    assert r["count"] == 450, r
    assert assert_ok(call(base, "GET", KEYS, token=tok, params={"version": v})) == {"rooms": rooms}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "rooms_body",
    [
        {},
        {"rooms": []},
        {"rooms": {"!r:x": []}},
        {"rooms": {"!r:x": {}}},
        {"rooms": {"not-a-room": {"sessions": {}}}},
        {"rooms": {"!r:x": {"sessions": {"s": "x"}}}},
        {"rooms": {"!r:x": {"sessions": {"s": {**key(), "is_verified": "yes"}}}}},
        {"rooms": {"!r:x": {"sessions": {"s": {**key(), "first_message_index": -1}}}}},
        {"rooms": {"!r:x": {"sessions": {"s": {**key(), "forwarded_count": 1.5}}}}},
        {"rooms": {"!r:x": {"sessions": {"s": {**key(), "session_data": "opaque"}}}}},
        {"rooms": {"!r:x": {"sessions": {"s": {k: v for k, v in key().items() if k != "session_data"}}}}},
        {"rooms": {"!r:x": {"sessions": {"s": {k: v for k, v in key().items() if k != "is_verified"}}}}},
    ],
)
def test_put_keys_bad_json(base, user, rooms_body):
    tok = user["access_token"]
    v = create_version(base, tok)
    # A valid session alongside the bad one: nothing at all is stored.
    if isinstance(rooms_body.get("rooms"), dict):
        rooms_body = {"rooms": {"!good:x": {"sessions": {"g": key()}}, **rooms_body["rooms"]}}
    assert_error(call(base, "PUT", KEYS, rooms_body, token=tok, params={"version": v}), 400, "M_BAD_JSON")
    assert get_version(base, tok)["count"] == 0


def test_put_session_bad_input(base, user):
    tok = user["access_token"]
    v = create_version(base, tok)
    path = room_path("!r:x", "s")
    for body in [{}, {"first_message_index": 0}, {**key(), "forwarded_count": "1"}, {**key(), "first_message_index": 2**60}]:
        assert_error(call(base, "PUT", path, body, token=tok, params={"version": v}), 400, "M_BAD_JSON")
    assert_error(call(base, "PUT", path, data="[]", token=tok, params={"version": v}), 400, "M_BAD_JSON")
    assert_error(call(base, "PUT", path, data="{x", token=tok, params={"version": v}), 400, "M_NOT_JSON")
    assert_error(call(base, "PUT", room_path("!r:x"), {"sessions": 5}, token=tok, params={"version": v}), 400, "M_BAD_JSON")
    # Room IDs in the path must look like room IDs; over-long session IDs are refused.
    for p, body in [
        (room_path("nope", "s"), key()),
        (room_path("!r:x", "s" * 300), key()),
        (room_path("nope"), {"sessions": {}}),
    ]:
        assert_error(call(base, "PUT", p, body, token=tok, params={"version": v}), 400, "M_INVALID_PARAM")
    assert_error(call(base, "GET", room_path("nope"), token=tok, params={"version": v}), 400, "M_INVALID_PARAM")
    assert get_version(base, tok)["count"] == 0
