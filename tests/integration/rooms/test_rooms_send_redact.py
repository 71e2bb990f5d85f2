"""Sending events (transaction IDs), redaction, /event and /context."""

import json

import pytest

from matrix_helpers import assert_error, assert_forbidden, assert_ok, call, new_user
from rooms_helpers import (
    EVENT_ID_RE,
    all_bodies,
    context_raw,
    create_room,
    get_event_raw,
    join,
    messages,
    paginate,
    put_state,
    redact_raw,
    room_pair,
    rpath,
    send,
    send_raw,
    send_text,
    txn,
    user_with_second_device,
)


# ---------------------------------------------------------------- send


def test_send_message_and_read_back(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = send(base, tok, room_id, {"msgtype": "m.text", "body": "hello", "extra": [1, 2]})
    ev = assert_ok(get_event_raw(base, tok, room_id, eid))
    assert ev["event_id"] == eid
    assert ev["type"] == "m.room.message"
    assert ev["sender"] == user["user_id"]
    assert ev["room_id"] == room_id
    assert ev["content"] == {"msgtype": "m.text", "body": "hello", "extra": [1, 2]}
    assert isinstance(ev["origin_server_ts"], int)
    assert "state_key" not in ev


def test_send_custom_event_type(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = send(base, tok, room_id, {"anything": True}, etype="org.example.custom")
    ev = assert_ok(get_event_raw(base, tok, room_id, eid))
    assert ev["type"] == "org.example.custom" and ev["content"] == {"anything": True}


def test_txn_id_idempotent_same_device(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    t = txn()
    body = {"msgtype": "m.text", "body": "once-" + t}
    e1 = assert_ok(send_raw(base, tok, room_id, body, txn_id=t))["event_id"]
    e2 = assert_ok(send_raw(base, tok, room_id, body, txn_id=t))["event_id"]
    assert e1 == e2
    assert all_bodies(base, tok, room_id).count("once-" + t) == 1
    ev = assert_ok(get_event_raw(base, tok, room_id, e1))
    assert ev["unsigned"].get("transaction_id") == t, ev


def test_txn_id_new_device_makes_new_event(base, user):
    tok = user["access_token"]
    tok2 = user_with_second_device(base, user)
    room_id = create_room(base, tok)
    t = txn()
    body = {"msgtype": "m.text", "body": "twice-" + t}
    e1 = assert_ok(send_raw(base, tok, room_id, body, txn_id=t))["event_id"]
    e2 = assert_ok(send_raw(base, tok2, room_id, body, txn_id=t))["event_id"]
    assert e1 != e2
    assert all_bodies(base, tok, room_id).count("twice-" + t) == 2
    # transaction_id is only shown to the device that sent the event
    ev = assert_ok(get_event_raw(base, tok2, room_id, e1))
    assert "transaction_id" not in ev.get("unsigned", {}), ev


def test_txn_id_scoped_per_room_is_not_shared_across_users(base, user, user2):
    room_id = room_pair(base, user, user2)
    t = txn()
    e1 = assert_ok(send_raw(base, user["access_token"], room_id, {"body": "a", "msgtype": "m.text"}, txn_id=t))
    e2 = assert_ok(send_raw(base, user2["access_token"], room_id, {"body": "b", "msgtype": "m.text"}, txn_id=t))
    assert e1["event_id"] != e2["event_id"]


def test_send_non_member_forbidden(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    assert_forbidden(send_raw(base, user2["access_token"], room_id, {"msgtype": "m.text", "body": "x"}))
    assert "x" not in all_bodies(base, tok, room_id)


def test_send_unknown_room(base, user, server_name):
    r = send_raw(base, user["access_token"], f"!nope{txn()[:8]}:{server_name}", {"body": "x"})
    assert r.status_code in (403, 404), r.text


def test_send_needs_events_default_power(base, user, user2):
    room_id = room_pair(base, user, user2, power_level_content_override={"events_default": 10})
    assert_forbidden(send_raw(base, user2["access_token"], room_id, {"msgtype": "m.text", "body": "muted"}))
    assert "muted" not in all_bodies(base, user["access_token"], room_id)


def test_send_state_type_via_send_is_not_state(base, user):
    """/send never creates state, even with a state event type."""
    tok = user["access_token"]
    room_id = create_room(base, tok, name="orig")
    r = send_raw(base, tok, room_id, {"name": "via-send"}, etype="m.room.name")
    if r.status_code == 200:
        ev = assert_ok(get_event_raw(base, tok, room_id, r.json()["event_id"]))
        assert "state_key" not in ev
    name = assert_ok(call(base, "GET", rpath(room_id, "state", "m.room.name"), token=tok))
    assert name == {"name": "orig"}


def test_send_bad_json(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = call(base, "PUT", rpath(room_id, "send", "m.room.message", txn()), data="[1,2", token=tok)
    assert_error(r, 400, ("M_NOT_JSON", "M_BAD_JSON"))
    r = call(base, "PUT", rpath(room_id, "send", "m.room.message", txn()), data="[1,2]", token=tok)
    assert_error(r, 400, ("M_NOT_JSON", "M_BAD_JSON"))


# ---------------------------------------------------------------- redaction


def assert_redacted(ev, redaction_id, reason=None):
    assert ev["content"] == {}, ev
    rb = ev.get("unsigned", {}).get("redacted_because")
    assert isinstance(rb, dict), ev
    assert rb["event_id"] == redaction_id, rb
    assert rb["type"] == "m.room.redaction"
    assert rb["content"].get("redacts") == ev["event_id"], rb  # v11+: redacts in content
    if reason is not None:
        assert rb["content"].get("reason") == reason


def test_redact_own_event_everywhere(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    before = send_text(base, tok, room_id, "before")
    target = send_text(base, tok, room_id, "secret")
    after = send_text(base, tok, room_id, "after")
    rid = assert_ok(redact_raw(base, tok, room_id, target, reason="oops"))["event_id"]
    assert EVENT_ID_RE.match(rid)
    # /event
    assert_redacted(assert_ok(get_event_raw(base, tok, room_id, target)), rid, "oops")
    # /messages (both directions)
    for d in ("b", "f"):
        evs, _ = paginate(base, tok, room_id, dir=d, limit=100)
        by_id = {e["event_id"]: e for e in evs}
        assert_redacted(by_id[target], rid, "oops")
        assert by_id[rid]["type"] == "m.room.redaction"
        assert by_id[before]["content"]["body"] == "before"
    # /context around and on the redacted event
    ctx = assert_ok(context_raw(base, tok, room_id, target, limit=4))
    assert_redacted(ctx["event"], rid)
    ctx = assert_ok(context_raw(base, tok, room_id, before, limit=6))
    ids = {e["event_id"]: e for e in ctx["events_after"]}
    assert_redacted(ids[target], rid)
    assert ids[after]["content"]["body"] == "after"


def test_redact_keeps_allowed_keys_of_state_events(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    jr = put_state(base, tok, room_id, "m.room.join_rules", {"join_rule": "public", "extra": "gone"})
    rid = assert_ok(redact_raw(base, tok, room_id, jr))["event_id"]
    ev = assert_ok(get_event_raw(base, tok, room_id, jr))
    assert ev["content"] == {"join_rule": "public"}, ev
    assert ev["unsigned"]["redacted_because"]["event_id"] == rid
    assert ev["state_key"] == "" and ev["type"] == "m.room.join_rules"


def test_redact_others_event_needs_power(base, user, user2):
    room_id = room_pair(base, user, user2)
    target = send_text(base, user["access_token"], room_id, "creator's")
    assert_forbidden(redact_raw(base, user2["access_token"], room_id, target))
    ev = assert_ok(get_event_raw(base, user2["access_token"], room_id, target))
    assert ev["content"]["body"] == "creator's"
    assert "redacted_because" not in ev.get("unsigned", {})
    # the creator (infinite power in v12) may redact user2's event
    theirs = send_text(base, user2["access_token"], room_id, "user2's")
    rid = assert_ok(redact_raw(base, user["access_token"], room_id, theirs))["event_id"]
    assert_redacted(assert_ok(get_event_raw(base, user2["access_token"], room_id, theirs)), rid)


def test_redact_moderator_and_custom_redact_level(base, user, user2):
    u3 = new_user(base)
    room_id = room_pair(base, user, user2, power_level_content_override={
        "users": {user2["user_id"]: 40}, "redact": 30})
    join(base, u3["access_token"], room_id)
    target = send_text(base, u3["access_token"], room_id, "u3 says")
    assert_ok(redact_raw(base, user2["access_token"], room_id, target))
    ev = assert_ok(get_event_raw(base, u3["access_token"], room_id, target))
    assert ev["content"] == {}


def test_redact_own_event_even_at_pl0(base, user, user2):
    room_id = room_pair(base, user, user2)
    mine = send_text(base, user2["access_token"], room_id, "mine")
    rid = assert_ok(redact_raw(base, user2["access_token"], room_id, mine))["event_id"]
    assert_redacted(assert_ok(get_event_raw(base, user["access_token"], room_id, mine)), rid)


def test_redact_non_member_forbidden(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    target = send_text(base, tok, room_id, "keep")
    assert_forbidden(redact_raw(base, user2["access_token"], room_id, target))
    assert assert_ok(get_event_raw(base, tok, room_id, target))["content"]["body"] == "keep"


def test_redact_txn_idempotent(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    target = send_text(base, tok, room_id, "x")
    t = txn()
    r1 = assert_ok(redact_raw(base, tok, room_id, target, txn_id=t))
    r2 = assert_ok(redact_raw(base, tok, room_id, target, txn_id=t))
    assert r1["event_id"] == r2["event_id"]
    evs, _ = paginate(base, tok, room_id, dir="f")
    assert sum(1 for e in evs if e["type"] == "m.room.redaction") == 1


# ---------------------------------------------------------------- /event


def test_get_event_unknown_or_invisible_is_404(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok)  # private room, shared visibility
    eid = send_text(base, tok, room_id, "private")
    assert_error(get_event_raw(base, tok, room_id, "$" + "A" * 43), 404, "M_NOT_FOUND")
    r = get_event_raw(base, user2["access_token"], room_id, eid)
    assert r.status_code == 404, r.text
    # an event ID from another room is not found through this room
    other = create_room(base, tok)
    assert get_event_raw(base, tok, other, eid).status_code == 404


def test_get_event_requires_auth(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = send_text(base, tok, room_id, "x")
    assert_error(call(base, "GET", rpath(room_id, "event", eid)), 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------- /context


def test_context(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok, name="ctx room")
    ids = [send_text(base, tok, room_id, f"c{i}") for i in range(10)]
    ctx = assert_ok(context_raw(base, tok, room_id, ids[5], limit=6))
    assert ctx["event"]["event_id"] == ids[5]
    before = [e["event_id"] for e in ctx["events_before"]]
    after = [e["event_id"] for e in ctx["events_after"]]
    assert len(before) + len(after) <= 6
    assert before, ctx
    assert after, ctx
    # events_before is newest-first, events_after oldest-first
    assert before == [ids[4 - i] for i in range(len(before))], before
    assert after == ids[6: 6 + len(after)], after
    assert isinstance(ctx["start"], str) and isinstance(ctx["end"], str)
    state_types = {(e["type"], e["state_key"]) for e in ctx["state"]}
    assert ("m.room.name", "") in state_types
    assert ("m.room.create", "") in state_types
    # the tokens continue the timeline
    older = messages(base, tok, room_id, dir="b", **{"from": ctx["start"]}, limit=1)["chunk"]
    newer = messages(base, tok, room_id, dir="f", **{"from": ctx["end"]}, limit=1)["chunk"]
    assert older[0]["event_id"] not in before + [ids[5]]
    assert newer[0]["event_id"] == ids[6 + len(after)]


def test_context_limit_zero_and_default(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    ids = [send_text(base, tok, room_id, f"z{i}") for i in range(3)]
    ctx = assert_ok(context_raw(base, tok, room_id, ids[1], limit=0))
    assert ctx["event"]["event_id"] == ids[1]
    assert ctx["events_before"] == [] and ctx["events_after"] == []
    ctx = assert_ok(context_raw(base, tok, room_id, ids[1]))
    assert [e["event_id"] for e in ctx["events_after"]] == [ids[2]]


def test_context_unknown_event_and_non_member(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = send_text(base, tok, room_id, "x")
    assert context_raw(base, tok, room_id, "$" + "B" * 43).status_code == 404
    r = context_raw(base, user2["access_token"], room_id, eid)
    assert r.status_code in (403, 404), r.text


def test_context_bad_limit(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    eid = send_text(base, tok, room_id, "x")
    r = context_raw(base, tok, room_id, eid, limit="lots")
    assert_error(r, 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------- redaction by room version


def test_redaction_event_shape_v10_top_level_redacts(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok, room_version="10")
    target = send_text(base, tok, room_id, "old style")
    rid = assert_ok(redact_raw(base, tok, room_id, target, reason="r"))["event_id"]
    red = assert_ok(get_event_raw(base, tok, room_id, rid))
    assert red["redacts"] == target, red  # v1-10: event-level key
    assert red["content"].get("reason") == "r"
    ev = assert_ok(get_event_raw(base, tok, room_id, target))
    assert ev["content"] == {}
    assert ev["unsigned"]["redacted_because"]["event_id"] == rid


def test_redaction_event_shape_v11_content_redacts(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok, room_version="11")
    target = send_text(base, tok, room_id, "new style")
    rid = assert_ok(redact_raw(base, tok, room_id, target))["event_id"]
    red = assert_ok(get_event_raw(base, tok, room_id, rid))
    assert red["content"]["redacts"] == target, red


def test_redact_member_event_keeps_membership(base, user, user2):
    room_id = room_pair(base, user, user2)
    member = assert_ok(call(base, "GET", rpath(room_id, "state", "m.room.member", user2["user_id"]),
                            token=user["access_token"], params={"format": "event"}))
    assert member["content"].get("displayname")
    assert_ok(redact_raw(base, user2["access_token"], room_id, member["event_id"]))
    ev = assert_ok(get_event_raw(base, user["access_token"], room_id, member["event_id"]))
    assert ev["content"] == {"membership": "join"}, ev
    # still joined
    send_text(base, user2["access_token"], room_id, "still joined")


@pytest.mark.parametrize("version,keeps_invite", [("10", False), ("11", True), ("12", True)])
def test_redact_power_levels_by_version(base, user, version, keeps_invite):
    tok = user["access_token"]
    room_id = create_room(base, tok, room_version=version)
    pl = assert_ok(call(base, "GET", rpath(room_id, "state", "m.room.power_levels"), token=tok))
    pl = dict(pl, invite=0, notifications={"room": 50}, extra_key="dropped")
    eid = assert_ok(call(base, "PUT", rpath(room_id, "state", "m.room.power_levels"), pl,
                         token=tok))["event_id"]
    assert_ok(redact_raw(base, tok, room_id, eid))
    ev = assert_ok(get_event_raw(base, tok, room_id, eid))
    c = ev["content"]
    assert "extra_key" not in c and "notifications" not in c, c
    assert ("invite" in c) is keeps_invite, c
    for k in ("ban", "events", "events_default", "kick", "redact", "state_default", "users",
              "users_default"):
        assert k in c, (k, c)


# ---------------------------------------------------------------- /context filters


def test_context_filter_and_lazy_members(base, user, user2):
    room_id = room_pair(base, user, user2)
    u3 = new_user(base)
    join(base, u3["access_token"], room_id)
    a = send_text(base, user["access_token"], room_id, "ua")
    send(base, user2["access_token"], room_id, {"x": 1}, etype="org.example.noise")
    mid = send_text(base, user2["access_token"], room_id, "ub")
    send(base, user2["access_token"], room_id, {"x": 2}, etype="org.example.noise")
    c = send_text(base, user["access_token"], room_id, "uc")
    flt = json.dumps({"types": ["m.room.message"], "lazy_load_members": True})
    r = call(base, "GET", rpath(room_id, "context", mid), token=user["access_token"],
             params={"limit": 2, "filter": flt})
    ctx = assert_ok(r)
    assert [e["event_id"] for e in ctx["events_before"]] == [a]
    assert [e["event_id"] for e in ctx["events_after"]] == [c]
    members = {e["state_key"] for e in ctx["state"] if e["type"] == "m.room.member"}
    assert members == {user["user_id"], user2["user_id"]}, members


# ---------------------------------------------------------------- limits and malformed IDs


def test_send_too_large(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = send_raw(base, tok, room_id, {"msgtype": "m.text", "body": "x" * 70000})
    assert_error(r, 413, "M_TOO_LARGE")
    # just under the limit is fine
    eid = send(base, tok, room_id, {"msgtype": "m.text", "body": "y" * 60000})
    assert len(assert_ok(get_event_raw(base, tok, room_id, eid))["content"]["body"]) == 60000


def test_event_type_too_long(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = send_raw(base, tok, room_id, {"a": 1}, etype="t" * 300)
    assert r.status_code == 400, r.text


def test_malformed_ids_in_path(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = call(base, "GET", rpath("not-a-room-id", "messages"), token=tok, params={"dir": "b"})
    assert r.status_code in (400, 404), r.text
    r = get_event_raw(base, tok, room_id, "not-an-event-id")
    assert r.status_code in (400, 404), r.text


def test_context_state_is_at_last_returned_event(base, user):
    """event_context.yaml: `state` is "the state of the room at the last event returned"."""
    tok = user["access_token"]
    room_id = create_room(base, tok, name="Early")
    target = send_text(base, tok, room_id, "target")
    for i in range(3):
        send_text(base, tok, room_id, f"after {i}")
    put_state(base, tok, room_id, "m.room.name", {"name": "Later"})
    ctx = assert_ok(context_raw(base, tok, room_id, target, limit=2))
    assert all(e["type"] == "m.room.message" for e in ctx["events_after"]), ctx["events_after"]
    names = [e["content"].get("name") for e in ctx["state"] if e["type"] == "m.room.name"]
    assert names == ["Early"], names


# ---------------------------------------------------------------- transaction-ID scope
# The spec scopes a transaction ID to one device and one endpoint; like Synapse, the
# endpoint includes its path parameters. A reused ID elsewhere is a new request.


def test_txn_id_reused_in_another_room_is_a_new_event(base, user):
    tok = user["access_token"]
    room_a, room_b = create_room(base, tok), create_room(base, tok)
    t = txn()
    ea = assert_ok(send_raw(base, tok, room_a, {"msgtype": "m.text", "body": "in a"}, txn_id=t))["event_id"]
    eb = assert_ok(send_raw(base, tok, room_b, {"msgtype": "m.text", "body": "in b"}, txn_id=t))["event_id"]
    assert ea != eb
    assert assert_ok(get_event_raw(base, tok, room_b, eb))["content"]["body"] == "in b"
    # Each is still idempotent in its own scope.
    assert assert_ok(send_raw(base, tok, room_b, {"msgtype": "m.text", "body": "in b"}, txn_id=t))["event_id"] == eb


def test_txn_id_reused_for_another_event_type_is_a_new_event(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    t = txn()
    e1 = assert_ok(send_raw(base, tok, room_id, {"msgtype": "m.text", "body": "m"}, txn_id=t))["event_id"]
    e2 = assert_ok(send_raw(base, tok, room_id, {"x": 1}, etype="org.example.custom", txn_id=t))["event_id"]
    assert e1 != e2


def test_txn_id_reused_for_redact_redacts(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    t = txn()
    target = assert_ok(send_raw(base, tok, room_id, {"msgtype": "m.text", "body": "secret"}, txn_id=t))["event_id"]
    rid = assert_ok(redact_raw(base, tok, room_id, target, txn_id=t))["event_id"]
    assert rid != target
    assert assert_ok(get_event_raw(base, tok, room_id, target))["content"] == {}


def test_txn_id_echoed_as_the_client_sent_it(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    t = txn()
    eid = assert_ok(send_raw(base, tok, room_id, {"msgtype": "m.text", "body": "x"}, txn_id=t))["event_id"]
    assert assert_ok(get_event_raw(base, tok, room_id, eid))["unsigned"].get("transaction_id") == t


# ---------------------------------------------------------------- bodies


def test_send_empty_body_is_not_json(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = call(base, "PUT", rpath(room_id, "send", "m.room.message", txn()), data="", token=tok)
    assert_error(r, 400, "M_NOT_JSON")
    r = call(base, "PUT", rpath(room_id, "state", "m.room.topic"), data="", token=tok)
    assert_error(r, 400, "M_NOT_JSON")


def test_redact_empty_body_is_allowed(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    target = send_text(base, tok, room_id, "x")
    r = call(base, "PUT", rpath(room_id, "redact", target, txn()), data="", token=tok)
    assert_ok(r)


# ---------------------------------------------------------------- redaction through /send (v1.18)


@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_redaction_through_send(base, user, version):
    tok = user["access_token"]
    room_id = create_room(base, tok, room_version=version)
    target = send_text(base, tok, room_id, "gone soon")
    rid = assert_ok(send_raw(base, tok, room_id, {"redacts": target, "reason": "r"}, etype="m.room.redaction"))["event_id"]
    red = assert_ok(get_event_raw(base, tok, room_id, rid))
    assert red["type"] == "m.room.redaction"
    assert red["content"].get("reason") == "r"
    if version == "10":
        assert red["redacts"] == target, red  # moved to the top level before v11
        assert "redacts" not in red["content"], red
    else:
        assert red["content"]["redacts"] == target, red
    ev = assert_ok(get_event_raw(base, tok, room_id, target))
    assert ev["content"] == {}
    assert ev["unsigned"]["redacted_because"]["event_id"] == rid


def test_redaction_through_send_needs_redacts(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    assert_error(send_raw(base, tok, room_id, {"reason": "r"}, etype="m.room.redaction"), 400, "M_BAD_JSON")
    assert_error(send_raw(base, tok, room_id, {"redacts": 5}, etype="m.room.redaction"), 400, "M_BAD_JSON")
    assert_error(send_raw(base, tok, room_id, {"redacts": "not an id"}, etype="m.room.redaction"), 400, "M_INVALID_PARAM")


def test_redaction_through_send_of_others_event_needs_power(base, user, user2):
    room_id = room_pair(base, user, user2)
    target = send_text(base, user["access_token"], room_id, "mine")
    assert_forbidden(send_raw(base, user2["access_token"], room_id, {"redacts": target}, etype="m.room.redaction"))
