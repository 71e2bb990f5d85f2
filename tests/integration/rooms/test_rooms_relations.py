"""Relations (/relations), thread summaries (bundled m.thread) and /threads."""

import pytest

from matrix_helpers import CLIENT_V1, assert_error, assert_ok, call, new_user
from rooms_helpers import create_room, get_event_raw, join, messages, room_pair, rpath, send, send_text


def reply(base, tok, room_id, root, text):
    return send(base, tok, room_id, {
        "msgtype": "m.text", "body": text,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                         "m.in_reply_to": {"event_id": root}}})


def react(base, tok, room_id, target, key="👍"):
    return send(base, tok, room_id, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target,
                                                      "key": key}}, etype="m.reaction")


def relations_raw(base, tok, room_id, event_id, *rest, **params):
    return call(base, "GET", rpath(room_id, "relations", event_id, *rest, v=CLIENT_V1),
                token=tok, params=params)


def relations(base, tok, room_id, event_id, *rest, **params):
    out = assert_ok(relations_raw(base, tok, room_id, event_id, *rest, **params))
    assert isinstance(out.get("chunk"), list), out
    return out


def all_relations(base, tok, room_id, event_id, *rest, **params):
    out, token, pages = [], None, 0
    while True:
        p = dict(params)
        if token:
            p["from"] = token
        page = relations(base, tok, room_id, event_id, *rest, **p)
        out += page["chunk"]
        pages += 1
        token = page.get("next_batch")
        if not token:
            return out, pages
        assert pages < 100


@pytest.fixture(scope="module")
def rel_room(base):
    a = new_user(base)
    b = new_user(base)
    c = new_user(base)
    room_id = room_pair(base, a, b)
    join(base, c["access_token"], room_id)
    root = send_text(base, a["access_token"], room_id, "thread root")
    unrelated = send_text(base, a["access_token"], room_id, "unrelated")
    r1 = reply(base, b["access_token"], room_id, root, "r1")
    react1 = react(base, c["access_token"], room_id, root)
    r2 = reply(base, b["access_token"], room_id, root, "r2")
    ref = send(base, c["access_token"], room_id, {
        "msgtype": "m.text", "body": "see above",
        "m.relates_to": {"rel_type": "m.reference", "event_id": root}})
    r3 = reply(base, a["access_token"], room_id, root, "r3")
    nested = react(base, c["access_token"], room_id, r1, "🎉")  # relates to r1, not root
    ids = dict(root=root, unrelated=unrelated, r1=r1, react1=react1, r2=r2, ref=ref, r3=r3,
               nested=nested)
    return a, b, c, room_id, ids


def test_relations_all_children(base, rel_room):
    a, b, c, room_id, ids = rel_room
    out = relations(base, a["access_token"], room_id, ids["root"])
    got = [e["event_id"] for e in out["chunk"]]
    # default dir=b: newest first; only direct children
    assert got == [ids["r3"], ids["ref"], ids["r2"], ids["react1"], ids["r1"]], got
    assert "recursion_depth" not in out
    assert "next_batch" not in out


def test_relations_forwards(base, rel_room):
    a, b, c, room_id, ids = rel_room
    out = relations(base, a["access_token"], room_id, ids["root"], dir="f")
    assert [e["event_id"] for e in out["chunk"]] == [ids["r1"], ids["react1"], ids["r2"], ids["ref"],
                                                     ids["r3"]]


def test_relations_by_type(base, rel_room):
    a, b, c, room_id, ids = rel_room
    tok = a["access_token"]
    got = [e["event_id"] for e in relations(base, tok, room_id, ids["root"], "m.thread")["chunk"]]
    assert got == [ids["r3"], ids["r2"], ids["r1"]]
    got = [e["event_id"] for e in relations(base, tok, room_id, ids["root"], "m.annotation")["chunk"]]
    assert got == [ids["react1"]]
    got = [e["event_id"] for e in relations(base, tok, room_id, ids["root"], "m.thread",
                                            "m.room.message")["chunk"]]
    assert got == [ids["r3"], ids["r2"], ids["r1"]]
    assert relations(base, tok, room_id, ids["root"], "m.thread", "m.reaction")["chunk"] == []
    assert relations(base, tok, room_id, ids["root"], "m.replace")["chunk"] == []
    assert relations(base, tok, room_id, ids["unrelated"])["chunk"] == []


def test_relations_pagination(base, rel_room):
    a, b, c, room_id, ids = rel_room
    for d in ("b", "f"):
        evs, pages = all_relations(base, a["access_token"], room_id, ids["root"], limit=2, dir=d)
        got = [e["event_id"] for e in evs]
        expect = [ids["r3"], ids["ref"], ids["r2"], ids["react1"], ids["r1"]]
        assert got == (expect if d == "b" else expect[::-1]), (d, got)
        assert pages == 3


def test_relations_to_token(base, rel_room):
    a, b, c, room_id, ids = rel_room
    tok = a["access_token"]
    first = relations(base, tok, room_id, ids["root"], limit=2)
    assert [e["event_id"] for e in first["chunk"]] == [ids["r3"], ids["ref"]]
    rest = relations(base, tok, room_id, ids["root"], **{"from": first["next_batch"]}, limit=10)
    assert [e["event_id"] for e in rest["chunk"]] == [ids["r2"], ids["react1"], ids["r1"]]


def test_relations_to_bound(base, rel_room):
    a, b, c, room_id, ids = rel_room
    tok = a["access_token"]
    first = relations(base, tok, room_id, ids["root"], limit=2)
    # from the newest, stopping at the token reached after two: exactly those two
    bounded = relations(base, tok, room_id, ids["root"], to=first["next_batch"], limit=10)
    assert [e["event_id"] for e in bounded["chunk"]] == [ids["r3"], ids["ref"]]


def test_relations_recurse(base, rel_room):
    a, b, c, room_id, ids = rel_room
    out = relations(base, a["access_token"], room_id, ids["root"], recurse="true")
    got = {e["event_id"] for e in out["chunk"]}
    assert ids["nested"] in got
    assert {ids["r1"], ids["r2"], ids["r3"], ids["react1"], ids["ref"]} <= got
    assert isinstance(out.get("recursion_depth"), int) and out["recursion_depth"] >= 2, out.keys()
    out = relations(base, a["access_token"], room_id, ids["root"], recurse="false")
    assert ids["nested"] not in {e["event_id"] for e in out["chunk"]}
    assert out.get("recursion_depth") in (None, 1), out.get("recursion_depth")


def test_relations_errors(base, rel_room, user):
    a, b, c, room_id, ids = rel_room
    assert_error(relations_raw(base, a["access_token"], room_id, "$" + "C" * 43), 404, "M_NOT_FOUND")
    private = create_room(base, a["access_token"])
    root = send_text(base, a["access_token"], private, "secret root")
    reply(base, a["access_token"], private, root, "secret reply")
    r = relations_raw(base, user["access_token"], private, root)
    assert r.status_code in (403, 404), r.text
    r = relations_raw(base, a["access_token"], room_id, ids["root"], dir="sideways")
    assert_error(r, 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------- thread summaries


def thread_summary(ev):
    rel = ev.get("unsigned", {}).get("m.relations", {})
    return rel.get("m.thread")


def test_thread_summary_on_root(base, rel_room):
    a, b, c, room_id, ids = rel_room
    for u, participated in ((a, True), (b, True), (c, False)):
        ev = assert_ok(get_event_raw(base, u["access_token"], room_id, ids["root"]))
        s = thread_summary(ev)
        assert s is not None, ev
        assert s["count"] == 3
        assert s["latest_event"]["event_id"] == ids["r3"]
        assert s["latest_event"]["content"]["body"] == "r3"
        assert s["current_user_participated"] is participated, (u["user_id"], s)


def test_thread_summary_in_messages(base, rel_room):
    a, b, c, room_id, ids = rel_room
    p = messages(base, b["access_token"], room_id, dir="b", limit=50)
    by = {e["event_id"]: e for e in p["chunk"]}
    s = thread_summary(by[ids["root"]])
    assert s and s["count"] == 3 and s["latest_event"]["event_id"] == ids["r3"]
    assert thread_summary(by[ids["unrelated"]]) is None
    assert thread_summary(by[ids["r1"]]) is None


def test_thread_summary_updates(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    root = send_text(base, tok, room_id, "root")
    assert thread_summary(assert_ok(get_event_raw(base, tok, room_id, root))) is None
    x = reply(base, user2["access_token"], room_id, root, "first")
    s = thread_summary(assert_ok(get_event_raw(base, tok, room_id, root)))
    assert s["count"] == 1 and s["latest_event"]["event_id"] == x
    y = reply(base, user2["access_token"], room_id, root, "second")
    s = thread_summary(assert_ok(get_event_raw(base, user2["access_token"], room_id, root)))
    assert s["count"] == 2 and s["latest_event"]["event_id"] == y
    assert s["current_user_participated"] is True


# ---------------------------------------------------------------- /threads


def threads_raw(base, tok, room_id, **params):
    return call(base, "GET", rpath(room_id, "threads", v=CLIENT_V1), token=tok, params=params)


def test_threads_list(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    t1 = send_text(base, tok, room_id, "t1 root")
    t2 = send_text(base, user2["access_token"], room_id, "t2 root")
    t3 = send_text(base, user2["access_token"], room_id, "t3 root")
    send_text(base, tok, room_id, "no thread here")
    reply(base, user2["access_token"], room_id, t2, "t2 reply")
    reply(base, tok, room_id, t3, "t3 reply by user")
    reply(base, user2["access_token"], room_id, t1, "t1 reply")  # t1 now the latest thread
    out = assert_ok(threads_raw(base, tok, room_id))
    got = [e["event_id"] for e in out["chunk"]]
    assert got == [t1, t3, t2], got
    for e in out["chunk"]:
        assert thread_summary(e)["count"] == 1
    # user participated in t1 (root sender) and t3 (replied), not t2
    out = assert_ok(threads_raw(base, tok, room_id, include="participated"))
    assert [e["event_id"] for e in out["chunk"]] == [t1, t3]
    out = assert_ok(threads_raw(base, tok, room_id, include="all"))
    assert [e["event_id"] for e in out["chunk"]] == [t1, t3, t2]


def test_threads_pagination(base, user):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    roots = []
    for i in range(5):
        r = send_text(base, tok, room_id, f"root {i}")
        reply(base, tok, room_id, r, f"reply {i}")
        roots.append(r)
    seen, token = [], None
    for _ in range(10):
        params = {"limit": 2}
        if token:
            params["from"] = token
        page = assert_ok(threads_raw(base, tok, room_id, **params))
        assert len(page["chunk"]) <= 2
        seen += [e["event_id"] for e in page["chunk"]]
        token = page.get("next_batch")
        if not token:
            break
    assert seen == roots[::-1], seen


def test_threads_errors(base, user, user2):
    tok = user["access_token"]
    room_id = create_room(base, tok)
    assert assert_ok(threads_raw(base, tok, room_id))["chunk"] == []
    r = threads_raw(base, user2["access_token"], room_id)
    assert r.status_code in (403, 404), r.text
    r = threads_raw(base, tok, room_id, include="some")
    assert_error(r, 400, "M_INVALID_PARAM")


def test_relations_respect_history_visibility(base, user, user2):
    """Children the user may not see (sent after they left) are not listed."""
    tok = user["access_token"]
    room_id = create_room(base, tok, preset="public_chat")
    join(base, user2["access_token"], room_id)
    root = send_text(base, tok, room_id, "root")
    seen = reply(base, tok, room_id, root, "while member")
    assert_ok(call(base, "POST", rpath(room_id, "leave"), {}, token=user2["access_token"]))
    hidden = reply(base, tok, room_id, root, "after leave")
    got = [e["event_id"] for e in relations(base, user2["access_token"], room_id, root)["chunk"]]
    assert got == [seen], got
    got = [e["event_id"] for e in relations(base, tok, room_id, root)["chunk"]]
    assert got == [hidden, seen], got
