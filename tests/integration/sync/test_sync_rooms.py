"""/sync room sections: timeline limit, `limited` and `prev_batch` (usable with
/messages), state before the timeline and `state_after`, filters (stored and inline),
lazy-loaded members, invite (stripped state), leave, full_state, and the token format."""

import json

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user, qid
from rooms_helpers import create_room, invite, join, leave, put_state, send
from sync_helpers import joined, sync, sync_timeline_ids


def test_initial_sync_shape_and_state_before_timeline(base, user):
    tok = user["access_token"]
    room = create_room(base, tok, name="Shape")
    sent = [send(base, tok, room, f"m{i}") for i in range(3)]
    body = sync(base, tok, filter={"room": {"timeline": {"limit": 3}}})
    assert body["next_batch"].startswith("s") and body["next_batch"].count("_") == 6
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == sent
    assert r["timeline"]["limited"] is True
    state_types = {e["type"] for e in r["state"]["events"]}
    # The whole state at the start of the timeline: create, members, power levels, name...
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= state_types
    assert not set(sent) & {e["event_id"] for e in r["state"]["events"]}
    assert r["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    assert r["summary"]["m.joined_member_count"] == 1
    assert any(e["type"] == "m.push_rules" for e in body["account_data"]["events"])


def test_limited_prev_batch_pages_with_messages(base, user):
    tok = user["access_token"]
    room = create_room(base, tok)
    since = sync(base, tok)["next_batch"]
    sent = [send(base, tok, room, f"gap {i}") for i in range(8)]
    body = sync(base, tok, since, filter={"room": {"timeline": {"limit": 3}}})
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == sent[-3:]
    assert r["timeline"]["limited"] is True
    # prev_batch is a /messages token: paging back from it gives exactly the gap.
    page = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room)}/messages", token=tok,
                          params={"dir": "b", "from": r["timeline"]["prev_batch"], "to": since, "limit": "50"}))
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(sent[:5]))
    # A non-limited incremental sync.
    nxt = body["next_batch"]
    e = send(base, tok, room, "one more")
    body = sync(base, tok, nxt, filter={"room": {"timeline": {"limit": 3}}})
    r = joined(body, room)
    assert sync_timeline_ids(body, room) == [e] and r["timeline"]["limited"] is False
    assert r["state"]["events"] == []


def test_limited_incremental_state_delta(base, user):
    tok = user["access_token"]
    room = create_room(base, tok)
    since = sync(base, tok)["next_batch"]
    topic = put_state(base, tok, room, "m.room.topic", {"topic": "gap topic"})
    for i in range(5):
        send(base, tok, room, f"x{i}")
    body = sync(base, tok, since, filter={"room": {"timeline": {"limit": 2}}})
    r = joined(body, room)
    assert r["timeline"]["limited"] is True
    assert [e["event_id"] for e in r["state"]["events"]] == [topic]


def test_use_state_after(base, user):
    tok = user["access_token"]
    room = create_room(base, tok)
    since = sync(base, tok)["next_batch"]
    topic = put_state(base, tok, room, "m.room.topic", {"topic": "after"})
    body = sync(base, tok, since, use_state_after=True)
    r = joined(body, room)
    assert "state" not in r
    assert topic in [e["event_id"] for e in r["state_after"]["events"]]
    assert topic in sync_timeline_ids(body, room)


def test_stored_and_inline_filters(base, user):
    tok = user["access_token"]
    uid = user["user_id"]
    f = {"room": {"timeline": {"limit": 1, "types": ["m.room.message"]}}, "event_fields": ["type", "content.body", "event_id"]}
    fid = assert_ok(call(base, "POST", f"{CLIENT_V3}/user/{qid(uid)}/filter", f, token=tok))["filter_id"]
    got = assert_ok(call(base, "GET", f"{CLIENT_V3}/user/{qid(uid)}/filter/{fid}", token=tok))
    assert got["room"]["timeline"]["limit"] == 1
    assert_error(call(base, "GET", f"{CLIENT_V3}/user/{qid(uid)}/filter/999999", token=tok), 404, "M_NOT_FOUND")
    assert_error(call(base, "POST", f"{CLIENT_V3}/user/{qid(uid)}/filter", {"event_format": "x"}, token=tok), 400, "M_BAD_JSON")
    other = new_user(base)
    assert_error(call(base, "POST", f"{CLIENT_V3}/user/{qid(other['user_id'])}/filter", {}, token=tok), 403, "M_FORBIDDEN")
    room = create_room(base, tok)
    send(base, tok, room, "first")
    put_state(base, tok, room, "m.room.topic", {"topic": "t"})
    body = sync(base, tok, filter=fid)
    evs = joined(body, room)["timeline"]["events"]
    assert len(evs) == 1 and evs[0]["type"] == "m.room.message"
    assert set(evs[0]) == {"type", "content", "event_id"} and evs[0]["content"] == {"body": "first"}
    # The same inline.
    body = sync(base, tok, filter=f)
    assert joined(body, room)["timeline"]["events"][0]["content"] == {"body": "first"}
    # not_rooms drops the room.
    body = sync(base, tok, filter={"room": {"not_rooms": [room]}})
    assert room not in body["rooms"]["join"]


def test_lazy_loaded_members(base, user):
    tok = user["access_token"]
    room = create_room(base, tok, preset="public_chat")
    others = [new_user(base) for _ in range(3)]
    for o in others:
        join(base, o["access_token"], room)
    talker = others[1]
    for i in range(3):
        send(base, tok, room, f"filler {i}")
    send(base, talker["access_token"], room, "I talk")
    lazy = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 1}}}
    body = sync(base, tok, filter=lazy)
    members = {e["state_key"] for e in joined(body, room)["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {talker["user_id"], user["user_id"]}
    # Without lazy loading every member is there.
    body = sync(base, tok, filter={"room": {"timeline": {"limit": 1}}})
    members = {e["state_key"] for e in joined(body, room)["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {user["user_id"]} | {o["user_id"] for o in others}
    # Incremental: a new sender's member event comes with their message.
    since = body["next_batch"]
    send(base, others[2]["access_token"], room, "me too")
    body = sync(base, tok, since, filter=lazy)
    members = {e["state_key"] for e in joined(body, room)["state"]["events"] if e["type"] == "m.room.member"}
    assert others[2]["user_id"] in members


def test_invite_and_leave_sections(base, user, user2):
    room = create_room(base, user["access_token"], name="Invite me")
    since = sync(base, user2["access_token"])["next_batch"]
    invite(base, user["access_token"], room, user2["user_id"])
    body = sync(base, user2["access_token"], since)
    inv = body["rooms"]["invite"][room]["invite_state"]["events"]
    types = {e["type"] for e in inv}
    assert {"m.room.create", "m.room.name", "m.room.join_rules", "m.room.member"} <= types
    me = [e for e in inv if e["type"] == "m.room.member" and e["state_key"] == user2["user_id"]][0]
    assert me["content"]["membership"] == "invite"
    assert all("content" in e and "sender" in e for e in inv)
    # Join: the room moves to join with its full state (a short room's whole history is in
    # the timeline, as in an initial sync; see test_sync_joined_history.py).
    since = body["next_batch"]
    join(base, user2["access_token"], room)
    body = sync(base, user2["access_token"], since)
    assert room in body["rooms"]["join"] and room not in body["rooms"]["invite"]
    r = joined(body, room)
    assert any(e["type"] == "m.room.name" for e in r["state"]["events"] + r["timeline"]["events"])
    # Leave: the room shows under leave, with the leave event last.
    since = body["next_batch"]
    send(base, user["access_token"], room, "before leaving")
    leave(base, user2["access_token"], room)
    send(base, user["access_token"], room, "after leaving")
    body = sync(base, user2["access_token"], since)
    assert room not in body["rooms"]["join"]
    left = body["rooms"]["leave"][room]
    evs = left["timeline"]["events"]
    assert evs[-1]["type"] == "m.room.member" and evs[-1]["content"]["membership"] == "leave"
    assert all(e["content"].get("body") != "after leaving" for e in evs)
    # Initial sync: left rooms only with include_leave.
    assert room not in sync(base, user2["access_token"])["rooms"]["leave"]
    assert room in sync(base, user2["access_token"], filter={"room": {"include_leave": True}})["rooms"]["leave"]


def test_full_state_and_bad_tokens(base, user):
    tok = user["access_token"]
    room = create_room(base, tok)
    since = sync(base, tok)["next_batch"]
    body = sync(base, tok, since, full_state=True)
    assert any(e["type"] == "m.room.create" for e in joined(body, room)["state"]["events"])
    assert_error(call(base, "GET", f"{CLIENT_V3}/sync", token=tok, params={"since": "garbage"}), 400, "M_INVALID_PARAM")
    assert_error(call(base, "GET", f"{CLIENT_V3}/sync", token=tok, params={"filter": "12345"}), 404, "M_NOT_FOUND")
    assert_error(call(base, "GET", f"{CLIENT_V3}/sync", params={}), 401, "M_MISSING_TOKEN")


def test_history_visibility_joined_hides_earlier_events(base, user, user2):
    tok = user["access_token"]
    room = create_room(base, tok, preset="public_chat")
    put_state(base, tok, room, "m.room.history_visibility", {"history_visibility": "joined"})
    secret = send(base, tok, room, "before you came")
    join(base, user2["access_token"], room)
    after = send(base, tok, room, "after you came")
    body = sync(base, user2["access_token"])
    ids = sync_timeline_ids(body, room)
    assert after in ids and secret not in ids


def test_knock_section(base, user, user2):
    room = create_room(base, user["access_token"], name="Knock here")
    put_state(base, user["access_token"], room, "m.room.join_rules", {"join_rule": "knock"})
    since = sync(base, user2["access_token"])["next_batch"]
    assert_ok(call(base, "POST", f"{CLIENT_V3}/knock/{qid(room)}", {"reason": "let me in"}, token=user2["access_token"]))
    body = sync(base, user2["access_token"], since)
    ks = body["rooms"]["knock"][room]["knock_state"]["events"]
    assert any(e["type"] == "m.room.name" for e in ks)
    me = [e for e in ks if e["type"] == "m.room.member" and e["state_key"] == user2["user_id"]][0]
    assert me["content"]["membership"] == "knock"
    # The room's members see the knock in their timeline.
    body = sync(base, user["access_token"])
    assert any(e["type"] == "m.room.member" and e["content"]["membership"] == "knock" for e in joined(body, room)["timeline"]["events"])
