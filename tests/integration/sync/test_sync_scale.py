"""The cost of a sync is bounded: for a user in 100 rooms, initial and incremental syncs
make a handful of D1 round trips (reported in X-Stratus-D1-Round-Trips), not one per room
per stream (Workers allow 1000 subrequests per request)."""

from matrix_helpers import CLIENT_V3, assert_ok, call, new_user, qid
from rooms_helpers import create_room, join, send

ROOMS = 100


def sync_with_cost(base, token, since=None, **params):
    p = {"timeout": "0", "set_presence": "offline", **params}
    if since:
        p["since"] = since
    r = call(base, "GET", f"{CLIENT_V3}/sync", token=token, params=p)
    body = assert_ok(r)
    return body, int(r.headers["X-Stratus-D1-Round-Trips"])


def test_sync_cost_does_not_grow_per_room(base, user):
    tok = user["access_token"]
    other = new_user(base)
    rooms = [create_room(base, tok, preset="public_chat") for _ in range(ROOMS)]
    for r in rooms[:10]:
        join(base, other["access_token"], r)
    body, cost = sync_with_cost(base, tok)
    assert set(rooms) <= set(body["rooms"]["join"]), len(body["rooms"]["join"])
    assert cost <= 25, cost
    since = body["next_batch"]
    sent = {r: send(base, tok, r, "scale") for r in rooms}
    for r in rooms[:10]:
        assert_ok(call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(r)}/typing/{qid(other['user_id'])}", {"typing": True, "timeout": 5000}, token=other["access_token"]))
    body, cost = sync_with_cost(base, tok, since)
    assert cost <= 25, cost
    for r in rooms:
        assert [e["event_id"] for e in body["rooms"]["join"][r]["timeline"]["events"]] == [sent[r]]
    typing_rooms = [r for r in rooms if any(e["type"] == "m.typing" for e in body["rooms"]["join"][r]["ephemeral"]["events"])]
    assert set(typing_rooms) == set(rooms[:10])
    # Nothing new: only the snapshot and the to-device check.
    body, cost = sync_with_cost(base, tok, body["next_batch"])
    assert body["rooms"]["join"] == {} and cost <= 3, cost
