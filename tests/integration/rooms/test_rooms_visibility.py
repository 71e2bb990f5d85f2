"""History visibility on every read path: /messages, /event, /context.

One room per setting, with events at every stage of a second user's membership:
before the invite, after the invite, after the join, after the leave.
"""

import pytest

from matrix_helpers import assert_error, assert_ok, new_user
from rooms_helpers import (
    bodies,
    context_raw,
    create_room,
    get_event_raw,
    invite,
    join,
    leave,
    messages_raw,
    paginate,
    put_state,
    send_text,
)

STAGES = ["before-invite", "after-invite", "after-join", "after-leave"]

# What the invited user (who later left) may see, per setting. history_visibility.md:
# "After a user has left a room, they may see any events which they were allowed to see
# before they left", and rule 3: `shared` and "the user joined the room at any point after
# the event was sent" -> allow. (Synapse approximates rule 3 by "is joined now"; the spec
# does not.)
VISIBLE_TO_FORMER_MEMBER = {
    "world_readable": {"before-invite", "after-invite", "after-join", "after-leave"},
    "shared": {"before-invite", "after-invite", "after-join"},
    "invited": {"after-invite", "after-join"},
    "joined": {"after-join"},
}


def build_room(base, hv):
    a = new_user(base)
    b = new_user(base)
    outsider = new_user(base)
    room_id = create_room(base, a["access_token"], preset="private_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": hv}}])
    ids = {}
    ids["before-invite"] = send_text(base, a["access_token"], room_id, "before-invite")
    invite(base, a["access_token"], room_id, b["user_id"])
    ids["after-invite"] = send_text(base, a["access_token"], room_id, "after-invite")
    join(base, b["access_token"], room_id)
    ids["after-join"] = send_text(base, a["access_token"], room_id, "after-join")
    leave(base, b["access_token"], room_id)
    ids["after-leave"] = send_text(base, a["access_token"], room_id, "after-leave")
    return a, b, outsider, room_id, ids


@pytest.fixture(scope="module", params=list(VISIBLE_TO_FORMER_MEMBER))
def vis_room(request, base):
    return (request.param, *build_room(base, request.param))


def visible_bodies(base, tok, room_id, direction):
    evs, _ = paginate(base, tok, room_id, dir=direction, limit=3)
    got = [b for b in bodies(evs) if b in STAGES]
    return got if direction == "f" else list(reversed(got))


def test_messages_creator_sees_everything(base, vis_room):
    hv, a, b, outsider, room_id, ids = vis_room
    for d in ("b", "f"):
        assert visible_bodies(base, a["access_token"], room_id, d) == STAGES


def test_messages_former_member(base, vis_room):
    hv, a, b, outsider, room_id, ids = vis_room
    expect = [s for s in STAGES if s in VISIBLE_TO_FORMER_MEMBER[hv]]
    for d in ("b", "f"):
        assert visible_bodies(base, b["access_token"], room_id, d) == expect, (hv, d)


def test_event_former_member(base, vis_room):
    hv, a, b, outsider, room_id, ids = vis_room
    for stage, eid in ids.items():
        r = get_event_raw(base, b["access_token"], room_id, eid)
        if stage in VISIBLE_TO_FORMER_MEMBER[hv]:
            assert assert_ok(r)["content"]["body"] == stage
        else:
            assert_error(r, 404, "M_NOT_FOUND")


def test_context_former_member(base, vis_room):
    hv, a, b, outsider, room_id, ids = vis_room
    allowed = VISIBLE_TO_FORMER_MEMBER[hv]
    for stage, eid in ids.items():
        r = context_raw(base, b["access_token"], room_id, eid, limit=20)
        if stage not in allowed:
            assert r.status_code in (403, 404), (hv, stage, r.text)
            continue
        ctx = assert_ok(r)
        assert ctx["event"]["event_id"] == eid
        around = bodies(ctx["events_before"]) + bodies(ctx["events_after"])
        leaked = {x for x in around if x in STAGES} - allowed
        assert not leaked, (hv, stage, leaked)
        expect_around = allowed - {stage}
        assert {x for x in around if x in STAGES} == expect_around, (hv, stage, around)


def test_outsider(base, vis_room):
    hv, a, b, outsider, room_id, ids = vis_room
    tok = outsider["access_token"]
    if hv == "world_readable":
        for d in ("b", "f"):
            assert visible_bodies(base, tok, room_id, d) == STAGES
        for stage, eid in ids.items():
            assert assert_ok(get_event_raw(base, tok, room_id, eid))["content"]["body"] == stage
        ctx = assert_ok(context_raw(base, tok, room_id, ids["after-invite"], limit=10))
        assert ctx["event"]["event_id"] == ids["after-invite"]
    else:
        assert_error(messages_raw(base, tok, room_id, dir="b"), 403, "M_FORBIDDEN")
        for eid in ids.values():
            assert get_event_raw(base, tok, room_id, eid).status_code == 404
            assert context_raw(base, tok, room_id, eid).status_code in (403, 404)


# ---------------------------------------------------------------- current members


@pytest.mark.parametrize("hv,expect", [
    ("shared", ["pre", "mid", "post"]),
    ("invited", ["mid", "post"]),
    ("joined", ["post"]),
    ("world_readable", ["pre", "mid", "post"]),
])
def test_current_member_view(base, hv, expect):
    a = new_user(base)
    b = new_user(base)
    room_id = create_room(base, a["access_token"], initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": hv}}])
    send_text(base, a["access_token"], room_id, "pre")
    invite(base, a["access_token"], room_id, b["user_id"])
    send_text(base, a["access_token"], room_id, "mid")
    join(base, b["access_token"], room_id)
    send_text(base, a["access_token"], room_id, "post")
    evs, _ = paginate(base, b["access_token"], room_id, dir="b", limit=2)
    got = [x for x in reversed(bodies(evs)) if x in ("pre", "mid", "post")]
    assert got == expect, (hv, got)


def test_visibility_change_applies_per_event(base):
    """Visibility is judged with the setting in force at each event."""
    a = new_user(base)
    b = new_user(base)
    room_id = create_room(base, a["access_token"], preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}])
    send_text(base, a["access_token"], room_id, "hidden-joined")
    put_state(base, a["access_token"], room_id, "m.room.history_visibility",
              {"history_visibility": "shared"})
    send_text(base, a["access_token"], room_id, "seen-shared")
    join(base, b["access_token"], room_id)
    send_text(base, a["access_token"], room_id, "seen-after")
    evs, _ = paginate(base, b["access_token"], room_id, dir="f", limit=50)
    got = [x for x in bodies(evs) if x.startswith(("hidden", "seen"))]
    assert got == ["seen-shared", "seen-after"], got


def test_rejoin_sees_gap_in_shared_only_up_to_leave(base):
    """shared: a user who left and rejoined does see the events from while away
    (the visibility at those events is `shared` and they are now joined)."""
    a = new_user(base)
    b = new_user(base)
    room_id = create_room(base, a["access_token"], preset="public_chat")
    join(base, b["access_token"], room_id)
    leave(base, b["access_token"], room_id)
    away = send_text(base, a["access_token"], room_id, "while-away")
    assert get_event_raw(base, b["access_token"], room_id, away).status_code == 404
    join(base, b["access_token"], room_id)
    assert assert_ok(get_event_raw(base, b["access_token"], room_id, away))["content"]["body"] == "while-away"
