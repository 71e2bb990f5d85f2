"""/sync for a room the user joined since the token (from invite, knock, leave or
nothing): the room comes as in an initial sync of that room — its recent timeline as far
as history visibility lets the user see it (up to the filter's limit), `limited` and a
`prev_batch` that /messages pages back from, and the full state (spec: client-server-api,
"Syncing"; Synapse treats a newly joined room the same way). Without it Element shows
"You can't see earlier messages" in a `shared` room."""

from matrix_helpers import CLIENT_V3, assert_ok, call, qid, set_displayname
from rooms_helpers import create_room, invite, join, leave, put_state, send
from sync_helpers import joined, sync, sync_timeline_ids

LIMIT = 5


def limit(n: int = LIMIT) -> dict:
    return {"room": {"timeline": {"limit": n}}}


def invited_since(base, alice, bob, room) -> str:
    """Bob syncs, Alice invites him, Bob's next sync shows the invite: its token."""
    since = sync(base, bob["access_token"])["next_batch"]
    invite(base, alice["access_token"], room, bob["user_id"])
    body = sync(base, bob["access_token"], since)
    assert room in body["rooms"]["invite"], body["rooms"]
    return body["next_batch"]


def member_of(ev: dict, user_id: str, membership: str) -> bool:
    return ev["type"] == "m.room.member" and ev["state_key"] == user_id and ev["content"]["membership"] == membership


def state_types(events: list[dict]) -> set[str]:
    return {e["type"] for e in events}


def test_invite_then_join_gives_recent_history_limited_and_full_state(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"], name="History")  # private_chat: `shared`
    sent = [send(base, alice["access_token"], room, f"early {i}") for i in range(8)]
    since = invited_since(base, alice, bob, room)
    join(base, bob["access_token"], room)
    body = sync(base, bob["access_token"], since, filter=limit())
    r = joined(body, room)
    evs = r["timeline"]["events"]
    # The last LIMIT events: three of Alice's messages, Bob's invite, Bob's join.
    assert [e["event_id"] for e in evs[:3]] == sent[-3:], evs
    assert member_of(evs[3], bob["user_id"], "invite") and member_of(evs[4], bob["user_id"], "join"), evs
    assert r["timeline"]["limited"] is True
    # Full state before the timeline, none of the timeline in it.
    state = r["state"]["events"]
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility", "m.room.name"} <= state_types(state)
    assert any(member_of(e, alice["user_id"], "join") for e in state)
    assert not {e["event_id"] for e in state} & {e["event_id"] for e in evs}
    # prev_batch pages back through the earlier messages.
    page = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room)}/messages", token=bob["access_token"],
                          params={"dir": "b", "from": r["timeline"]["prev_batch"], "limit": "5"}))
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(sent[:5]))
    # The next incremental sync is an ordinary one.
    nxt = send(base, alice["access_token"], room, "later")
    body = sync(base, bob["access_token"], body["next_batch"], filter=limit())
    assert sync_timeline_ids(body, room) == [nxt] and joined(body, room)["timeline"]["limited"] is False


def test_whole_short_history_is_not_limited(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"])
    sent = [send(base, alice["access_token"], room, f"m{i}") for i in range(2)]
    since = invited_since(base, alice, bob, room)
    join(base, bob["access_token"], room)
    body = sync(base, bob["access_token"], since, filter=limit(50))
    r = joined(body, room)
    evs = r["timeline"]["events"]
    # From the room's creation on: nothing left to paginate.
    assert evs[0]["type"] == "m.room.create" and r["timeline"]["limited"] is False
    assert [e["event_id"] for e in evs if e["type"] == "m.room.message"] == sent
    assert member_of(evs[-1], bob["user_id"], "join")
    assert r["state"]["events"] == []


def test_newly_joined_with_use_state_after(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"], name="After")
    sent = [send(base, alice["access_token"], room, f"early {i}") for i in range(8)]
    since = invited_since(base, alice, bob, room)
    join(base, bob["access_token"], room)
    body = sync(base, bob["access_token"], since, filter=limit(), use_state_after=True)
    r = joined(body, room)
    assert "state" not in r
    evs = r["timeline"]["events"]
    assert [e["event_id"] for e in evs[:3]] == sent[-3:] and member_of(evs[-1], bob["user_id"], "join")
    assert r["timeline"]["limited"] is True and r["timeline"]["prev_batch"]
    # state_after: the full state at the end of the timeline, Bob's join included.
    after = r["state_after"]["events"]
    assert {"m.room.create", "m.room.power_levels", "m.room.name"} <= state_types(after)
    assert any(member_of(e, bob["user_id"], "join") for e in after)


def test_joined_visibility_hides_history_from_the_new_member(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"])
    put_state(base, alice["access_token"], room, "m.room.history_visibility", {"history_visibility": "joined"})
    secrets = [send(base, alice["access_token"], room, f"secret {i}") for i in range(3)]
    since = invited_since(base, alice, bob, room)
    join(base, bob["access_token"], room)
    # A limit of 2 leaves the secrets just before the timeline, where paging back goes.
    body = sync(base, bob["access_token"], since, filter=limit(2))
    r = joined(body, room)
    ids = sync_timeline_ids(body, room)
    assert not set(secrets) & set(ids), r["timeline"]
    assert r["timeline"]["limited"] is True
    assert member_of(r["timeline"]["events"][-1], bob["user_id"], "join")
    # The state is still whole (the room's settings, Alice's membership).
    state = r["state"]["events"]
    assert {"m.room.create", "m.room.power_levels", "m.room.history_visibility"} <= state_types(state)
    assert any(member_of(e, alice["user_id"], "join") for e in state)
    # And paging back does not reveal them either.
    page = assert_ok(call(base, "GET", f"{CLIENT_V3}/rooms/{qid(room)}/messages", token=bob["access_token"],
                          params={"dir": "b", "from": r["timeline"]["prev_batch"], "limit": "50"}))
    assert not set(secrets) & {e["event_id"] for e in page["chunk"]}


def test_leave_and_rejoin_gives_what_was_missed(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"], preset="public_chat")
    join(base, bob["access_token"], room)
    since = sync(base, bob["access_token"])["next_batch"]
    leave(base, bob["access_token"], room)
    away = [send(base, alice["access_token"], room, f"while away {i}") for i in range(3)]
    # Bob's client syncs while he is away: the leave, not what was said after it.
    body = sync(base, bob["access_token"], since)
    assert room in body["rooms"]["leave"]
    assert not set(away) & {e["event_id"] for e in body["rooms"]["leave"][room]["timeline"]["events"]}
    since = body["next_batch"]
    join(base, bob["access_token"], room)
    body = sync(base, bob["access_token"], since, filter=limit(20))
    r = joined(body, room)
    ids = sync_timeline_ids(body, room)
    assert ids[-4:-1] == away and member_of(r["timeline"]["events"][-1], bob["user_id"], "join"), ids
    assert "m.room.create" in state_types(r["state"]["events"]) | state_types(r["timeline"]["events"])


def test_knock_then_join_gives_history(base, user, user2):
    alice, bob = user, user2
    room = create_room(base, alice["access_token"])
    put_state(base, alice["access_token"], room, "m.room.join_rules", {"join_rule": "knock"})
    sent = [send(base, alice["access_token"], room, f"early {i}") for i in range(3)]
    since = sync(base, bob["access_token"])["next_batch"]
    assert_ok(call(base, "POST", f"{CLIENT_V3}/knock/{qid(room)}", {}, token=bob["access_token"]))
    body = sync(base, bob["access_token"], since)
    assert room in body["rooms"]["knock"]
    since = body["next_batch"]
    invite(base, alice["access_token"], room, bob["user_id"])  # accepts the knock
    join(base, bob["access_token"], room)
    body = sync(base, bob["access_token"], since, filter=limit(50))
    r = joined(body, room)
    assert [e for e in sync_timeline_ids(body, room) if e in sent] == sent
    assert r["timeline"]["limited"] is False
    assert member_of(r["timeline"]["events"][-1], bob["user_id"], "join")


def test_profile_change_of_a_joined_user_is_an_ordinary_sync(base, user, user2):
    """Join → join (a new display name) is not a new join: no history again, no full state."""
    alice, bob = user, user2
    room = create_room(base, alice["access_token"], preset="public_chat")
    join(base, bob["access_token"], room)
    send(base, alice["access_token"], room, "seen already")
    since = sync(base, bob["access_token"])["next_batch"]
    set_displayname(base, bob, "Bobby")
    body = sync(base, bob["access_token"], since, filter=limit())
    r = joined(body, room)
    evs = r["timeline"]["events"]
    assert len(evs) == 1 and member_of(evs[0], bob["user_id"], "join") and evs[0]["content"]["displayname"] == "Bobby", evs
    assert r["timeline"]["limited"] is False and r["state"]["events"] == []
