"""/messages reads its first page in ONE D1 batch (the room, the reader's membership, the
page, its history visibility, redactions and thread summaries) and folds the check of a token
from the isolate's cache into it: a page that the first read fills costs one round trip
(`X-Stratus-D1-Round-Trips`), and revocation still acts on the very next request."""

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, assert_unknown_token, call, login, new_user, qid, uia_password
from rooms_helpers import create_room, messages_raw, redact_raw, room_pair, send, send_many, send_text


def trips(r):
    return int(r.headers["X-Stratus-D1-Round-Trips"])


def reply(base, tok, room_id, root, text):
    return send(base, tok, room_id, {"msgtype": "m.text", "body": text, "m.relates_to": {"rel_type": "m.thread", "event_id": root}})


def test_first_page_is_one_round_trip(base):
    a = new_user(base)
    b = new_user(base)
    room = room_pair(base, a, b)
    sent = send_many(base, a["access_token"], room, 60)
    tok = b["access_token"]
    assert_ok(messages_raw(base, tok, room, dir="b", limit=1))  # the token is now cached
    r = messages_raw(base, tok, room, dir="b", limit=50)
    body = assert_ok(r)
    assert [e["event_id"] for e in body["chunk"]] == [eid for eid, _ in reversed(sent)][:50]
    assert trips(r) == 1, trips(r)
    # The next page from its token, and forwards from the start: one each too.
    r = messages_raw(base, tok, room, dir="b", limit=5, **{"from": body["end"]})
    older = assert_ok(r)
    assert [e["event_id"] for e in older["chunk"]] == [eid for eid, _ in reversed(sent)][50:55]
    assert trips(r) == 1, trips(r)
    r = messages_raw(base, tok, room, dir="f", limit=3)
    assert [e["type"] for e in assert_ok(r)["chunk"]][0] == "m.room.create"
    assert trips(r) == 1, trips(r)


def test_redactions_and_threads_ride_in_the_same_batch(base):
    a = new_user(base)
    tok = a["access_token"]
    room = create_room(base, tok)
    root = send_text(base, tok, room, "root")
    r1 = reply(base, tok, room, root, "r1")
    gone = send_text(base, tok, room, "to be redacted")
    redaction = assert_ok(redact_raw(base, tok, room, gone, reason="oops"))["event_id"]
    r2 = reply(base, tok, room, root, "r2")
    send_text(base, tok, room, "last")
    assert_ok(messages_raw(base, tok, room, dir="b", limit=1))
    r = messages_raw(base, tok, room, dir="b", limit=20)
    chunk = {e["event_id"]: e for e in assert_ok(r)["chunk"]}
    assert trips(r) == 1, trips(r)
    thread = chunk[root]["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 2 and thread["current_user_participated"] is True, thread
    assert thread["latest_event"]["event_id"] == r2, thread
    assert r1 in chunk
    assert chunk[gone]["content"] == {}, chunk[gone]
    assert chunk[gone]["unsigned"]["redacted_because"]["event_id"] == redaction, chunk[gone]
    # The thread's latest event redacted: still served redacted in the summary.
    assert_ok(redact_raw(base, tok, room, r2))
    r = messages_raw(base, tok, room, dir="b", limit=20)
    chunk = {e["event_id"]: e for e in assert_ok(r)["chunk"]}
    latest = chunk[root]["unsigned"]["m.relations"]["m.thread"]["latest_event"]
    assert latest["event_id"] == r2 and latest["content"] == {} and "redacted_because" in latest["unsigned"], latest


def test_non_member_is_refused_and_unknown_room_too(base):
    a = new_user(base)
    b = new_user(base)
    room = create_room(base, a["access_token"])
    send_text(base, a["access_token"], room, "secret")
    assert_error(messages_raw(base, b["access_token"], room, dir="b"), 403, "M_FORBIDDEN")
    assert_error(messages_raw(base, b["access_token"], "!unknown:example.org", dir="b"), 403, "M_FORBIDDEN")


def test_logout_kills_cached_token_at_once(base):
    u = new_user(base)
    tok = u["access_token"]
    room = create_room(base, tok)
    assert_ok(messages_raw(base, tok, room, dir="b"))
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=tok))
    assert_unknown_token(messages_raw(base, tok, room, dir="b"), soft_logout=False)
    # Also on the ways out that never reach the batch (a bad parameter, a bad room ID).
    assert_unknown_token(messages_raw(base, tok, room, dir="x"), soft_logout=False)
    assert_unknown_token(messages_raw(base, tok, room), soft_logout=False)
    assert_unknown_token(messages_raw(base, tok, "not-a-room", dir="b"), soft_logout=False)


def test_device_deletion_kills_cached_token(base):
    u = new_user(base)
    other = login(base, u["username"], u["password"])
    room = create_room(base, u["access_token"])
    assert_ok(messages_raw(base, other["access_token"], room, dir="b"))
    r = uia_password(base, "DELETE", f"{CLIENT_V3}/devices/{qid(other['device_id'])}", {}, u["access_token"], u["user_id"], u["password"])
    assert_ok(r)
    assert_unknown_token(messages_raw(base, other["access_token"], room, dir="b"), soft_logout=False)
    assert_ok(messages_raw(base, u["access_token"], room, dir="b"))


def test_lazy_members_cost_two_more_round_trips_whatever_the_senders(base):
    """Lazy-loaded members: the state groups of the senders' latest events in one batch, then
    their member events: 3 round trips even when the page spans several state groups."""
    a = new_user(base)
    b = new_user(base)
    room = room_pair(base, a, b)
    send_text(base, a["access_token"], room, "from a")
    send_text(base, b["access_token"], room, "from b")
    c = new_user(base)
    assert_ok(call(base, "POST", f"{CLIENT_V3}/join/{qid(room)}", {}, token=c["access_token"]))
    send_text(base, c["access_token"], room, "from c")  # a later state group than a's and b's
    tok = a["access_token"]
    flt = '{"lazy_load_members": true, "types": ["m.room.message"]}'
    assert_ok(messages_raw(base, tok, room, dir="b", limit=1))
    r = messages_raw(base, tok, room, dir="b", limit=10, filter=flt)
    body = assert_ok(r)
    assert [e["content"]["body"] for e in body["chunk"]] == ["from c", "from b", "from a"], body["chunk"]
    members = {e["state_key"]: e["content"]["membership"] for e in body["state"]}
    assert members == {a["user_id"]: "join", b["user_id"]: "join", c["user_id"]: "join"}, body["state"]
    assert trips(r) == 3, trips(r)
