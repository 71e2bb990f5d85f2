"""Push rules (defaults, edits), unread counts and highlights in /sync, reset by read
receipts, thread counts and /notifications. Pushers and push gateways: test_pushers.py."""

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, qid
from rooms_helpers import create_room, join, room_pair, send
from sync_helpers import joined, sync


def counts(base, tok, room, **kw):
    return joined(sync(base, tok, **kw), room)["unread_notifications"]


def test_unread_counts_and_highlights(base, user, user2):
    room = room_pair(base, user, user2)
    tok2 = user2["access_token"]
    assert counts(base, tok2, room) == {"notification_count": 0, "highlight_count": 0}
    send(base, user["access_token"], room, "hello")
    last = send(base, user["access_token"], room, {"msgtype": "m.text", "body": "hey you", "m.mentions": {"user_ids": [user2["user_id"]]}})
    assert counts(base, tok2, room) == {"notification_count": 2, "highlight_count": 1}
    # The sender's own messages never count for them.
    assert counts(base, user["access_token"], room) == {"notification_count": 0, "highlight_count": 0}
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room)}/receipt/m.read/{qid(last)}", {}, token=tok2))
    assert counts(base, tok2, room) == {"notification_count": 0, "highlight_count": 0}
    # Incremental sync carries the change.
    since = sync(base, tok2)["next_batch"]
    send(base, user["access_token"], room, "again")
    assert joined(sync(base, tok2, since), room)["unread_notifications"]["notification_count"] == 1


def test_thread_counts(base, user, user2):
    room = room_pair(base, user, user2)
    root = send(base, user["access_token"], room, "root")
    send(base, user["access_token"], room, {"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    f = {"room": {"timeline": {"unread_thread_notifications": True}}}
    r = joined(sync(base, user2["access_token"], filter=f), room)
    assert r["unread_notifications"]["notification_count"] == 1
    assert r["unread_thread_notifications"][root]["notification_count"] == 1


def test_push_rule_api_and_effect(base, user, user2):
    room = room_pair(base, user, user2)
    tok2 = user2["access_token"]
    rules = assert_ok(call(base, "GET", f"{CLIENT_V3}/pushrules/", token=tok2))
    assert any(r["rule_id"] == ".m.rule.master" for r in rules["global"]["override"])
    g = assert_ok(call(base, "GET", f"{CLIENT_V3}/pushrules/global/", token=tok2))
    assert "underride" in g
    rp = f"{CLIENT_V3}/pushrules/global/room/{qid(room)}"
    assert_error(call(base, "GET", rp, token=tok2), 404, "M_NOT_FOUND")
    # Mute the room.
    assert_ok(call(base, "PUT", rp, {"actions": []}, token=tok2))
    assert assert_ok(call(base, "GET", rp, token=tok2))["actions"] == []
    send(base, user["access_token"], room, "muted")
    assert counts(base, tok2, room)["notification_count"] == 0
    assert_ok(call(base, "PUT", f"{rp}/enabled", {"enabled": False}, token=tok2))
    assert assert_ok(call(base, "GET", f"{rp}/enabled", token=tok2)) == {"enabled": False}
    send(base, user["access_token"], room, "audible")
    assert counts(base, tok2, room)["notification_count"] == 1
    assert_ok(call(base, "DELETE", rp, token=tok2))
    assert_error(call(base, "DELETE", rp, token=tok2), 404, "M_NOT_FOUND")
    # Actions of a default rule (a two-member room matches the one-to-one rule first).
    mp = f"{CLIENT_V3}/pushrules/global/underride/.m.rule.room_one_to_one/actions"
    assert_ok(call(base, "PUT", mp, {"actions": ["notify", {"set_tweak": "highlight"}]}, token=tok2))
    assert assert_ok(call(base, "GET", mp, token=tok2))["actions"] == ["notify", {"set_tweak": "highlight"}]
    send(base, user["access_token"], room, "loud")
    assert counts(base, tok2, room)["highlight_count"] == 1
    # Bad edits.
    assert_error(call(base, "PUT", f"{CLIENT_V3}/pushrules/global/override/.custom", {"actions": []}, token=tok2), 400, "M_INVALID_PARAM")
    assert_error(call(base, "PUT", f"{CLIENT_V3}/pushrules/global/bogus/x", {"actions": []}, token=tok2), 400, "M_INVALID_PARAM")
    # The rules reach sync as account data.
    body = sync(base, tok2)
    pr = [e for e in body["account_data"]["events"] if e["type"] == "m.push_rules"][0]
    assert any(r["rule_id"] == ".m.rule.room_one_to_one" and r["actions"][-1] == {"set_tweak": "highlight"} for r in pr["content"]["global"]["underride"])


def test_notifications_endpoint(base, user, user2):
    room = room_pair(base, user, user2)
    e1 = send(base, user["access_token"], room, "n1")
    e2 = send(base, user["access_token"], room, {"msgtype": "m.text", "body": "n2", "m.mentions": {"user_ids": [user2["user_id"]]}})
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/notifications", token=user2["access_token"]))
    ids = [n["event"]["event_id"] for n in body["notifications"]]
    assert ids[:2] == [e2, e1]
    n = body["notifications"][0]
    assert n["room_id"] == room and n["read"] is False and "notify" in n["actions"]
    hl = assert_ok(call(base, "GET", f"{CLIENT_V3}/notifications", token=user2["access_token"], params={"only": "highlight"}))
    assert [x["event"]["event_id"] for x in hl["notifications"]] == [e2]
    page = assert_ok(call(base, "GET", f"{CLIENT_V3}/notifications", token=user2["access_token"], params={"limit": "1"}))
    assert len(page["notifications"]) == 1 and "next_token" in page
    nxt = assert_ok(call(base, "GET", f"{CLIENT_V3}/notifications", token=user2["access_token"], params={"limit": "1", "from": page["next_token"]}))
    assert nxt["notifications"][0]["event"]["event_id"] == e1


def test_invite_notifies_the_invitee(base, user, user2):
    room = create_room(base, user["access_token"], invite=[user2["user_id"]])
    body = assert_ok(call(base, "GET", f"{CLIENT_V3}/notifications", token=user2["access_token"]))
    inv = [n for n in body["notifications"] if n["room_id"] == room]
    assert inv and inv[0]["event"]["type"] == "m.room.member" and inv[0]["event"]["content"]["membership"] == "invite"
    # Once joined, the invite does not count as unread.
    join(base, user2["access_token"], room)
    assert counts(base, user2["access_token"], room) == {"notification_count": 0, "highlight_count": 0}


def test_content_rule_glob_pattern_matches_whole_words(base, user, user2):
    """A content rule's pattern is a glob matched against whole words of `content.body`
    (spec: "Push Rules", content rules; `*` and `?` wildcards, case-insensitive). A pattern
    with a wildcard takes ruma's regex path (the bundle's regex-lite, shims/regex)."""
    room = room_pair(base, user, user2)
    tok2 = user2["access_token"]
    rule = {"pattern": "cak?s*", "actions": ["notify", {"set_tweak": "highlight"}]}
    assert_ok(call(base, "PUT", f"{CLIENT_V3}/pushrules/global/content/cakes", rule, token=tok2))
    send(base, user["access_token"], room, "nothing to see")
    send(base, user["access_token"], room, "pancakes are not a word match")
    assert counts(base, tok2, room)["highlight_count"] == 0
    send(base, user["access_token"], room, "Who wants CAKESHOP treats?")
    assert counts(base, tok2, room)["highlight_count"] == 1
    send(base, user["access_token"], room, "cakes!")
    assert counts(base, tok2, room)["highlight_count"] == 2
