"""GET /_matrix/client/v1/mutual_rooms (spec v1.19, "Mutual Rooms", mutual_rooms.yaml)."""

import pytest

from matrix_helpers import CLIENT_V1, assert_error, assert_ok, call, describe, unique_username
from rooms_helpers import create_room, invite, join, leave

PATH = f"{CLIENT_V1}/mutual_rooms"


def mutual_raw(base, token, params):
    return call(base, "GET", PATH, token=token, params=params)


def mutual(base, token, user_id, **params) -> dict:
    r = mutual_raw(base, token, {"user_id": user_id, **params})
    body = assert_ok(r)
    assert isinstance(body.get("joined"), list) and isinstance(body.get("count"), int), describe(r)
    return body


def test_rooms_both_joined(base, user, user2):
    t1, t2 = user["access_token"], user2["access_token"]
    shared = [create_room(base, t1, preset="public_chat") for _ in range(2)]
    for r in shared:
        join(base, t2, r)
    create_room(base, t1)  # only user
    create_room(base, t2)  # only user2
    invited = create_room(base, t1)
    invite(base, t1, invited, user2["user_id"])  # invited is not joined
    body = mutual(base, t1, user2["user_id"])
    assert sorted(body["joined"]) == sorted(shared) and body["count"] == 2, body
    assert "next_batch" not in body
    # Symmetric.
    assert sorted(mutual(base, t2, user["user_id"])["joined"]) == sorted(shared)
    # Leaving a room takes it out.
    leave(base, t2, shared[0])
    body = mutual(base, t1, user2["user_id"])
    assert body["joined"] == [shared[1]] and body["count"] == 1, body


def test_nothing_shared_and_unknown_user(base, user, user2, server_name):
    assert mutual(base, user["access_token"], user2["user_id"]) == {"joined": [], "count": 0}
    ghost = f"@{unique_username('ghost')}:{server_name}"
    assert mutual(base, user["access_token"], ghost) == {"joined": [], "count": 0}
    assert mutual(base, user["access_token"], "@someone:elsewhere.example") == {"joined": [], "count": 0}


def test_pagination(base, user, user2, server_name):
    t1, t2 = user["access_token"], user2["access_token"]
    shared = []
    for _ in range(5):
        r = create_room(base, t1, preset="public_chat")
        join(base, t2, r)
        shared.append(r)
    seen, frm, pages = [], None, 0
    while True:
        body = mutual(base, t1, user2["user_id"], limit=2, **({"from": frm} if frm else {}))
        pages += 1
        assert len(body["joined"]) <= 2 and body["count"] == 5, body
        seen += body["joined"]
        frm = body.get("next_batch")
        if not frm:
            break
        assert pages < 10
    assert pages == 3 and sorted(seen) == sorted(shared) and len(set(seen)) == 5
    # A token is for the user it was issued for.
    first = mutual(base, t1, user2["user_id"], limit=2)
    other = f"@{unique_username('other')}:{server_name}"
    r = mutual_raw(base, t1, {"user_id": other, "from": first["next_batch"]})
    assert_error(r, 400, "M_INVALID_PARAM")
    for bogus in ("garbage", "", "eyJ1IjoxfQ"):
        r = mutual_raw(base, t1, {"user_id": user2["user_id"], "from": bogus})
        assert_error(r, 400, "M_INVALID_PARAM")


def test_missing_user_id(base, user):
    assert_error(mutual_raw(base, user["access_token"], {}), 400, "M_MISSING_PARAM")


@pytest.mark.parametrize("bad", ["notauser", "@nocolon", "alice:example.org", "!room:example.org", ""])
def test_invalid_user_id(base, user, bad):
    assert_error(mutual_raw(base, user["access_token"], {"user_id": bad}), 400, "M_INVALID_PARAM")


def test_non_compliant_user_id(base, user, server_name):
    """Historical user IDs (e.g. upper case) are "non-compliant": 400."""
    r = mutual_raw(base, user["access_token"], {"user_id": f"@UPPER:{server_name}"})
    assert_error(r, 400, "M_INVALID_PARAM")


def test_own_user_id(base, user):
    assert_error(mutual_raw(base, user["access_token"], {"user_id": user["user_id"]}), 400, "M_INVALID_PARAM")


def test_duplicate_user_id(base, user, user2):
    r = mutual_raw(base, user["access_token"], {"user_id": [user2["user_id"], user2["user_id"]]})
    assert_error(r, 400, "M_INVALID_PARAM")


def test_requires_auth(base, user2):
    assert_error(mutual_raw(base, None, {"user_id": user2["user_id"]}), 401, "M_MISSING_TOKEN")
