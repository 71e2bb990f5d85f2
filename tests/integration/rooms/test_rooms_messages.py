"""GET /rooms/{id}/messages: tokens, pagination in both directions, filters."""

import json

import pytest

from matrix_helpers import assert_error, call, new_user, set_displayname
from rooms_helpers import (
    TOKEN_RE,
    bodies,
    create_room,
    join,
    messages,
    messages_raw,
    paginate,
    room_pair,
    rpath,
    send,
    send_many,
    send_text,
)

N_BIG = 300


@pytest.fixture(scope="module")
def big_room(base):
    """A room with 300 messages (sent once for the module)."""
    u = new_user(base)
    tok = u["access_token"]
    room_id = create_room(base, tok, name="big")
    sent = send_many(base, tok, room_id, N_BIG, prefix="big")
    return u, room_id, sent


def check_no_dups(events):
    ids = [e["event_id"] for e in events]
    dups = {i for i in ids if ids.count(i) > 1}
    assert not dups, f"duplicated events: {sorted(dups)[:5]}"


def test_backwards_pagination_300(base, big_room):
    u, room_id, sent = big_room
    evs, pages = paginate(base, u["access_token"], room_id, dir="b", limit=50)
    check_no_dups(evs)
    msgs = [e for e in evs if e["type"] == "m.room.message"]
    assert [e["event_id"] for e in msgs] == [eid for eid, _ in reversed(sent)]
    assert bodies(msgs) == [b for _, b in reversed(sent)]
    # the creation events are at the very end (oldest first going backwards)
    assert evs[-1]["type"] == "m.room.create"
    # full pages until the last one
    assert all(len(p["chunk"]) == 50 for p in pages[:-1]), [len(p["chunk"]) for p in pages]
    assert len(pages) >= N_BIG // 50
    for p in pages:
        assert TOKEN_RE.match(p["start"]), p["start"]
        if "end" in p:
            assert TOKEN_RE.match(p["end"]), p["end"]
    # timestamps never go up going backwards
    ts = [e["origin_server_ts"] for e in evs]
    assert ts == sorted(ts, reverse=True)


def test_forwards_pagination_300(base, big_room):
    u, room_id, sent = big_room
    tok = u["access_token"]
    # no `from` with dir=f: start at the beginning of the room
    evs, pages = paginate(base, tok, room_id, dir="f", limit=50)
    check_no_dups(evs)
    assert evs[0]["type"] == "m.room.create"
    msgs = [e for e in evs if e["type"] == "m.room.message"]
    assert [e["event_id"] for e in msgs] == [eid for eid, _ in sent]
    assert all(len(p["chunk"]) == 50 for p in pages[:-1])
    ts = [e["origin_server_ts"] for e in evs]
    assert ts == sorted(ts)
    # exactly the backwards walk, reversed (state events included)
    back, _ = paginate(base, tok, room_id, dir="b", limit=70)
    assert [e["event_id"] for e in evs] == [e["event_id"] for e in reversed(back)]


def test_forwards_from_backwards_end_token(base, big_room):
    """Going back to the start and then forwards from the last `end` token returns
    everything except what was already at or before that token."""
    u, room_id, sent = big_room
    tok = u["access_token"]
    p1 = messages(base, tok, room_id, dir="b", limit=10)
    p2 = messages(base, tok, room_id, dir="b", limit=10, **{"from": p1["end"]})
    fwd = messages(base, tok, room_id, dir="f", limit=10, **{"from": p2["end"]})
    # forwards from the point reached after 20 events: the 20 newest, oldest first
    expect = [e["event_id"] for e in reversed(p1["chunk"] + p2["chunk"])][:10]
    assert [e["event_id"] for e in fwd["chunk"]] == expect


def test_to_token_stops_pagination(base, big_room):
    u, room_id, sent = big_room
    tok = u["access_token"]
    newest = messages(base, tok, room_id, dir="b", limit=5)
    older = messages(base, tok, room_id, dir="b", limit=5, **{"from": newest["end"]})
    # backwards from the newest, stopping at the token after the 5 newest
    r = messages(base, tok, room_id, dir="b", limit=50, to=newest["end"])
    assert [e["event_id"] for e in r["chunk"]] == [e["event_id"] for e in newest["chunk"]]
    assert older["chunk"]


def test_interleaved_sending_loses_nothing(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    first = send_many(base, tok, room_id, 60, prefix="a")
    # start paginating backwards from the newest
    p = messages(base, tok, room_id, dir="b", limit=20)
    seen_back = list(p["chunk"])
    # new messages arrive meanwhile
    later = send_many(base, tok, room_id, 40, prefix="b")
    rest, _ = paginate(base, tok, room_id, dir="b", from_=p["end"], limit=20)
    seen_back += rest
    check_no_dups(seen_back)
    assert bodies(seen_back) == [b for _, b in reversed(first)]
    # forwards from where we started: exactly the later messages
    fwd, _ = paginate(base, tok, room_id, dir="f", from_=p["start"], limit=15)
    check_no_dups(fwd)
    assert bodies(fwd) == [b for _, b in later]


def test_interleaved_forward_pagination(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    a = send_many(base, tok, room_id, 30, prefix="fa")
    p = messages(base, tok, room_id, dir="f", limit=25)
    got = list(p["chunk"])
    b = send_many(base, tok, room_id, 30, prefix="fb")
    rest, _ = paginate(base, tok, room_id, dir="f", from_=p["end"], limit=25)
    got += rest
    check_no_dups(got)
    assert bodies(got) == [x for _, x in a + b]


def test_end_absent_when_exhausted(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    send_text(base, tok, room_id, "only")
    p = messages(base, tok, room_id, dir="b", limit=1000)
    assert "end" not in p or p["end"] is None, p.get("end")
    # forwards from the newest point: nothing more, no end
    live = messages(base, tok, room_id, dir="b", limit=1)
    fwd = messages(base, tok, room_id, dir="f", **{"from": live["start"]})
    assert fwd["chunk"] == []
    assert "end" not in fwd


def test_limit_default_and_zero(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    send_many(base, tok, room_id, 15, prefix="d")
    p = messages(base, tok, room_id, dir="b")
    assert len(p["chunk"]) == 10, len(p["chunk"])  # spec default
    p = messages(base, tok, room_id, dir="b", limit=3)
    assert bodies(p["chunk"]) == ["d-0014", "d-0013", "d-0012"]


def test_dir_required_and_checked(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    assert_error(messages_raw(base, tok, room_id), 400, "M_MISSING_PARAM")
    assert_error(messages_raw(base, tok, room_id, dir="x"), 400, "M_INVALID_PARAM")
    assert_error(messages_raw(base, tok, room_id, dir="b", limit="many"), 400, "M_INVALID_PARAM")


def test_bad_from_token(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = messages_raw(base, tok, room_id, dir="b", **{"from": "garbage!"})
    assert_error(r, 400, "M_INVALID_PARAM")


def test_bad_filter_json(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    r = messages_raw(base, tok, room_id, dir="b", filter="{not json")
    assert r.status_code == 400, r.text
    assert r.json()["errcode"] in ("M_INVALID_PARAM", "M_NOT_JSON", "M_BAD_JSON")


def test_non_member_forbidden(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    send_text(base, tok, room_id, "private")
    assert_error(messages_raw(base, user2["access_token"], room_id, dir="b"), 403, "M_FORBIDDEN")


def test_requires_auth(base, user):
    room_id = create_room(base, user["access_token"])
    r = call(base, "GET", rpath(room_id, "messages"), params={"dir": "b"})
    assert_error(r, 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------- filters


@pytest.fixture(scope="module")
def filter_room(base):
    a = new_user(base)
    b = new_user(base)
    room_id = room_pair(base, a, b)
    send_text(base, a["access_token"], room_id, "a1")
    send_text(base, b["access_token"], room_id, "b1")
    send(base, a["access_token"], room_id, {"x": 1}, etype="org.example.custom")
    send(base, b["access_token"], room_id,
         {"msgtype": "m.image", "body": "pic", "url": "mxc://example.org/abc"})
    send_text(base, a["access_token"], room_id, "a2")
    return a, b, room_id


def fetch(base, tok, room_id, flt, limit=100):
    evs, _ = paginate(base, tok, room_id, dir="b", limit=limit, filter=flt)
    return evs


def test_filter_types(base, filter_room):
    a, b, room_id = filter_room
    evs = fetch(base, a["access_token"], room_id, {"types": ["m.room.message"]})
    assert {e["type"] for e in evs} == {"m.room.message"}
    assert bodies(evs) == ["a2", "pic", "b1", "a1"]
    evs = fetch(base, a["access_token"], room_id, {"types": ["org.example.*"]})
    assert [e["type"] for e in evs] == ["org.example.custom"]


def test_filter_not_types(base, filter_room):
    a, b, room_id = filter_room
    evs = fetch(base, a["access_token"], room_id, {"not_types": ["m.room.message", "m.room.*"]})
    assert [e["type"] for e in evs] == ["org.example.custom"]


def test_filter_senders(base, filter_room):
    a, b, room_id = filter_room
    evs = fetch(base, a["access_token"], room_id,
                {"senders": [b["user_id"]], "types": ["m.room.message"]})
    assert bodies(evs) == ["pic", "b1"]
    evs = fetch(base, a["access_token"], room_id,
                {"not_senders": [b["user_id"]], "types": ["m.room.message"]})
    assert bodies(evs) == ["a2", "a1"]


def test_filter_contains_url(base, filter_room):
    a, b, room_id = filter_room
    evs = fetch(base, a["access_token"], room_id, {"contains_url": True})
    assert bodies(evs) == ["pic"]
    evs = fetch(base, a["access_token"], room_id, {"contains_url": False, "types": ["m.room.message"]})
    assert bodies(evs) == ["a2", "b1", "a1"]


def test_filter_limit(base, filter_room):
    a, b, room_id = filter_room
    p = messages(base, a["access_token"], room_id, dir="b", limit=50,
                 filter={"limit": 2, "types": ["m.room.message"]})
    assert bodies(p["chunk"]) == ["a2", "pic"]
    assert "end" in p


def test_filter_paginates_across_gaps(base, user):
    """A filtered page with a small limit must keep going past non-matching events."""
    tok = user["access_token"]
    room_id = create_room(base, tok)
    for i in range(12):
        send_text(base, tok, room_id, f"m{i}")
        for _ in range(3):
            send(base, tok, room_id, {"n": i}, etype="org.example.noise")
    evs = fetch(base, tok, room_id, {"types": ["m.room.message"]}, limit=5)
    assert bodies(evs) == [f"m{i}" for i in reversed(range(12))]


def test_lazy_load_members(base, filter_room):
    a, b, room_id = filter_room
    flt = {"lazy_load_members": True, "senders": [b["user_id"]], "types": ["m.room.message"]}
    p = messages(base, a["access_token"], room_id, dir="b", limit=10, filter=flt)
    assert bodies(p["chunk"]) == ["pic", "b1"]
    state = p.get("state")
    assert isinstance(state, list) and state, p
    members = {e["state_key"]: e for e in state if e["type"] == "m.room.member"}
    assert set(members) == {b["user_id"]}, members
    assert members[b["user_id"]]["content"]["membership"] == "join"


def test_lazy_load_members_both_senders(base, filter_room):
    a, b, room_id = filter_room
    p = messages(base, a["access_token"], room_id, dir="b", limit=3,
                 filter={"lazy_load_members": True, "types": ["m.room.message"]})
    senders = {e["sender"] for e in p["chunk"]}
    members = {e["state_key"] for e in p["state"] if e["type"] == "m.room.member"}
    assert members == senders, (members, senders)


def test_lazy_load_members_shows_profile_at_the_time(base, user, user2):
    """`state` is "relevant to showing the chunk": the sender's member event as of the chunk
    (Synapse: state at the chunk's last event), so old messages render with the old name."""
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    set_displayname(base, user2, "Old Name")
    send_text(base, user2["access_token"], room_id, "said with old name")
    set_displayname(base, user2, "New Name")
    p = messages(base, tok, room_id, dir="b", limit=50,
                 filter=json.dumps({"lazy_load_members": True, "senders": [user2["user_id"]],
                                    "types": ["m.room.message"]}))
    assert bodies(p["chunk"]) == ["said with old name"]
    members = {e["state_key"]: e for e in p["state"] if e["type"] == "m.room.member"}
    assert members[user2["user_id"]]["content"].get("displayname") == "Old Name", members
