"""Federation scenarios of the issue, each over a (local, remote) pair of servers: the room
lives on `local`, a user of `remote` takes part through federation.

In this file the pairs are Stratus→Synapse, Synapse→Stratus and Synapse→Synapse (the
baseline: two real Synapses, which shows the test itself is right); test_stratus_scenarios.py
runs the same tests over Stratus→Stratus2 and Stratus2→Stratus (conftest.PAIRS). Select with
e.g. `-k synapse_to_stratus`, `-k "stratus_to and backfill"`, or by file.

Every wait has a 20 s deadline (the restart test allows longer for the peer to come back).
"""

from __future__ import annotations

import json
import secrets
import threading
import time

import nacl.signing
import signedjson.key

from fed_helpers import (
    DEADLINE,
    StandIn,
    User,
    api,
    bodies,
    build_pdu,
    create_room,
    event_id_of,
    get_state,
    join,
    join_raw,
    joined_pair,
    membership,
    messages,
    put_state,
    register_user,
    room_context,
    rpath,
    send_text,
    sync_once,
    wait_for_invite,
    wait_for_membership,
    wait_for_message,
    wait_for_state,
    wait_same_state,
    wait_until,
)
from matrix_helpers import CLIENT_V3, call, describe


def tag() -> str:
    return secrets.token_hex(4)


def test_join_by_id_with_via_and_messages_both_ways(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    t = tag()
    send_text(a, room, f"from-local {t}")
    wait_for_message(b, room, f"from-local {t}")
    send_text(b, room, f"from-remote {t}")
    wait_for_message(a, room, f"from-remote {t}")
    wait_same_state(a, b, room)


def test_join_by_alias(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    name = f"fed-{tag()}"
    room = create_room(a, room_alias_name=name)
    alias = f"#{name}:{local.server_name}"
    assert join(b, alias) == room, f"{b} joined {alias} but got another room ID"
    wait_for_membership(a, room, b.user_id, "join")
    send_text(a, room, f"after alias join {name}")
    wait_for_message(b, room, f"after alias join {name}")


def test_invite_then_accept(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, preset="private_chat")
    membership(a, room, "invite", user_id=b.user_id)
    wait_for_invite(b, room)
    # As clients do: no `server_name`, the invite says where the room is.
    join(b, room)
    wait_for_membership(a, room, b.user_id, "join")
    t = tag()
    send_text(b, room, f"accepted {t}")
    wait_for_message(a, room, f"accepted {t}")


def test_invite_then_reject(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, preset="private_chat")
    membership(a, room, "invite", user_id=b.user_id)
    wait_for_invite(b, room)
    membership(b, room, "leave")
    wait_for_membership(a, room, b.user_id, "leave")
    assert room not in api(b, "GET", f"{CLIENT_V3}/joined_rooms").json()["joined_rooms"]


def test_leave(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    membership(b, room, "leave")
    wait_for_membership(a, room, b.user_id, "leave")
    assert room not in api(b, "GET", f"{CLIENT_V3}/joined_rooms").json()["joined_rooms"]
    # The local server no longer counts the remote user in.
    members = api(a, "GET", rpath(room, "joined_members")).json()["joined"]
    assert b.user_id not in members, members


def test_kick_enforced_on_both_sides(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    membership(a, room, "kick", user_id=b.user_id, reason="test")
    wait_for_membership(b, room, b.user_id, "leave")
    r = api(b, "PUT", rpath(room, "send", "m.room.message", tag()), {"msgtype": "m.text", "body": "after kick"})
    assert r.status_code == 403, f"{b} could still send after being kicked: {describe(r)}"
    # A kick is not a ban: the user can come back.
    join(b, room, via=[local.server_name])
    wait_for_membership(a, room, b.user_id, "join")


def test_ban_enforced_on_both_sides(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    membership(a, room, "ban", user_id=b.user_id, reason="test")
    wait_for_membership(b, room, b.user_id, "ban")
    r = api(b, "PUT", rpath(room, "send", "m.room.message", tag()), {"msgtype": "m.text", "body": "after ban"})
    assert r.status_code == 403, f"{b} could still send after being banned: {describe(r)}"
    r = join_raw(b, room, via=[local.server_name])
    assert r.status_code == 403, f"{b} could rejoin after being banned: {describe(r)}"
    assert get_state(a, room, "m.room.member", b.user_id)["membership"] == "ban"


def test_remote_admin_power_level_change_respected(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    pl = get_state(a, room, "m.room.power_levels")
    pl["users"][b.user_id] = 100
    put_state(a, room, "m.room.power_levels", pl)
    wait_for_state(b, room, "m.room.power_levels", lambda c: c.get("users", {}).get(b.user_id) == 100, "b promoted to 100")
    # A second local user, then the remote admin restricts sending to power 50.
    c = register_user(local, "c")
    join(c, room)
    wait_for_membership(b, room, c.user_id, "join")
    pl = get_state(b, room, "m.room.power_levels")
    pl["events_default"] = 50
    put_state(b, room, "m.room.power_levels", pl)
    wait_for_state(c, room, "m.room.power_levels", lambda x: x.get("events_default") == 50, "events_default 50 (set remotely)")
    r = api(c, "PUT", rpath(room, "send", "m.room.message", tag()), {"msgtype": "m.text", "body": "muted"})
    assert r.status_code == 403, f"{local} let {c} send below the power level a remote admin set: {describe(r)}"
    pl["users"][c.user_id] = 50
    put_state(b, room, "m.room.power_levels", pl)
    wait_for_state(c, room, "m.room.power_levels", lambda x: x.get("users", {}).get(c.user_id) == 50, "c raised to 50 (remotely)")
    t = tag()
    send_text(c, room, f"unmuted {t}")
    wait_for_message(b, room, f"unmuted {t}")


def test_history_visibility_joined_across_servers(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, initial_state=[{"type": "m.room.history_visibility", "state_key": "",
                                          "content": {"history_visibility": "joined"}}])
    t = tag()
    send_text(a, room, f"before join {t}")
    join(b, room, via=[local.server_name])
    send_text(a, room, f"after join {t}")
    wait_for_message(b, room, f"after join {t}")
    seen = bodies(messages(b, room)) + bodies(e for _, r, e in b.seen if r == room)
    assert f"after join {t}" in seen
    assert f"before join {t}" not in seen, f"{remote} showed {b} a message from before its join (history_visibility joined)"


def test_late_joiner_backfills_history(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, initial_state=[{"type": "m.room.history_visibility", "state_key": "",
                                          "content": {"history_visibility": "shared"}}])
    t = tag()
    sent = [f"history {t} {i}" for i in range(30)]
    for text in sent:
        send_text(a, room, text)
    join(b, room, via=[local.server_name])

    def history_complete():
        got = [x for x in reversed(bodies(messages(b, room, limit=200))) if x.startswith(f"history {t} ")]
        return got == sent or AssertionError(f"{b} paginates {len(got)} of {len(sent)}: {got[:3]}...")

    wait_until(history_complete, f"{remote} to backfill 30 messages from {local}")


def test_late_joiner_backfills_long_history_on_demand(pair):
    """More history than a join fetches (120 messages): the joiner's /messages, in pages of
    25, goes past the oldest local event by backfilling from the room's server, in order,
    without repeats; what it backfills never shows up in the joiner's incremental /sync."""
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, initial_state=[{"type": "m.room.history_visibility", "state_key": "",
                                          "content": {"history_visibility": "shared"}}])
    t = tag()
    sent = [f"long history {t} {i}" for i in range(120)]
    for text in sent:
        send_text(a, room, text)
    join(b, room, via=[local.server_name])
    wait_for_membership(b, room, b.user_id, "join")
    sync_once(b, 0)
    seen_before = len(b.seen)
    tokens: list[str] = []

    def paginate_all():
        got: list[str] = []
        ids: list[str] = []
        params = {"dir": "b", "limit": "25"}
        for _ in range(30):
            body = api(b, "GET", rpath(room, "messages"), params=params)
            assert body.status_code == 200, f"/messages of {b}: {describe(body)}"
            page = body.json()
            chunk = page.get("chunk", [])
            assert len(chunk) <= 25, f"{len(chunk)} events for limit 25"
            ids += [e["event_id"] for e in chunk]
            got += [x for x in bodies(chunk) if x.startswith(f"long history {t} ")]
            if not page.get("end") or (not chunk and page.get("end") == params.get("from")):
                break
            params["from"] = page["end"]
            tokens.append(page["end"])
        assert len(ids) == len(set(ids)), f"{b} paginates some events twice"
        got.reverse()
        return got == sent or AssertionError(f"{b} paginates {len(got)} of {len(sent)}: {got[:2]}...{got[-2:]}")

    wait_until(paginate_all, f"{remote} to backfill 120 messages from {local}", timeout=60)
    if remote.kind == "stratus":
        # History older than the join sorts below every position: negative tokens.
        assert any(tok.startswith("s-") for tok in tokens), f"no negative token among {tokens}"
        r = api(b, "GET", rpath(room, "messages"), params={"dir": "b", "from": "s-x"})
        assert r.status_code == 400 and r.json().get("errcode") == "M_INVALID_PARAM", describe(r)
    # The backfilled history is old news: the joiner's next /sync does not bring it.
    send_text(a, room, f"after backfill {t}")
    wait_for_message(b, room, f"after backfill {t}")
    late = [x for _, r_, e in b.seen[seen_before:] if r_ == room for x in bodies([e])]
    assert not [x for x in late if x.startswith(f"long history {t} ")], f"backfilled history in {b}'s /sync: {late[:5]}"


def test_forged_pdus_are_rejected(pair):
    """A stand-in signs as the remote server (its real key) and sends PDUs into the local
    server's room; only the well-formed control PDU may be seen by anyone."""
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    send_text(b, room, "b speaks once")  # b's membership and a recent event from remote in the room
    wait_for_message(a, room, "b speaks once")
    ctx = room_context(a, room)
    stand_in = StandIn(remote)
    t = tag()
    depth = 1000
    latest = stand_in.request(local, "GET", f"/_matrix/federation/v1/event/{ctx['prev_events'][0]}")
    if latest.status_code == 200:
        depth = max(p.get("depth", 0) for p in latest.json().get("pdus", [{}])) + 1

    def msg(sender: str, body: str) -> dict:
        return build_pdu(ctx, room, sender, "m.room.message", {"msgtype": "m.text", "body": body}, depth=depth)

    wrong_key = signedjson.key.decode_signing_key_base64("ed25519", stand_in.key_id.split(":", 1)[1],
                                                         signedjson.key.encode_signing_key_base64(nacl.signing.SigningKey.generate()))
    bad_sig = stand_in.sign_pdu(msg(b.user_id, f"forged bad signature {t}"), key=wrong_key)
    bad_hash = stand_in.sign_pdu(msg(b.user_id, f"placeholder {t}"))
    bad_hash["content"] = {"msgtype": "m.text", "body": f"forged bad hash {t}"}  # signature (over the redacted form) still valid
    outsider = stand_in.sign_pdu(msg(f"@outsider-{t}:{remote.server_name}", f"forged non-member {t}"))
    pl = get_state(a, room, "m.room.power_levels")
    pl_up = dict(pl, users={**pl.get("users", {}), b.user_id: 100})
    self_promotion = stand_in.sign_pdu(build_pdu(ctx, room, b.user_id, "m.room.power_levels", pl_up, state_key="", depth=depth))
    wrong_origin = stand_in.sign_pdu(msg(a.user_id, f"forged other origin {t}"))
    forged = {"bad signature": bad_sig, "bad content hash": bad_hash, "sender not in room": outsider,
              "power without power": self_promotion, "sender of another server": wrong_origin}
    r = stand_in.send_pdus(local, list(forged.values()))
    assert r.status_code == 200, f"/send of the forged transaction: {describe(r)}"
    results = r.json().get("pdus", {})

    control = stand_in.sign_pdu(msg(b.user_id, f"control {t}"))
    r = stand_in.send_pdus(local, [control])
    assert r.status_code == 200, f"/send of the control PDU: {describe(r)}"
    # The control PDU is valid: seeing it shows the forged ones were judged, and that the
    # stand-in's PDUs are well-formed (so the rejections above are for the forgery alone).
    wait_for_message(a, room, f"control {t}")

    forged_texts = [f"forged bad signature {t}", f"forged bad hash {t}", f"forged non-member {t}", f"forged other origin {t}"]
    visible = bodies(messages(a, room)) + bodies(e for _, r_, e in a.seen if r_ == room)
    sync_once(b, 0)
    visible_b = bodies(messages(b, room)) + bodies(e for _, r_, e in b.seen if r_ == room)
    leaked = [x for x in forged_texts if x in visible or x in visible_b]
    assert not leaked, f"forged PDUs visible to clients: {leaked}; /send results: {results}"
    for what, ev in forged.items():
        if what == "bad content hash":
            continue  # accepted redacted (spec: a failed hash check redacts); its content was checked above
        eid = event_id_of(ev)
        got = api(a, "GET", rpath(room, "event", eid))
        assert got.status_code == 404, f"{what}: {local} serves forged event {eid}: {describe(got)}; /send results: {results}"
    assert get_state(a, room, "m.room.power_levels").get("users", {}).get(b.user_id) != 100, "forged self-promotion took effect"


def test_peer_down_then_back_gets_everything_once(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    t = tag()
    remote.stop_process()
    try:
        sent = [f"while down {t} {i}" for i in range(3)]
        for text in sent:
            send_text(a, room, text)
        time.sleep(2)
    finally:
        remote.start_process()
    for text in sent:
        wait_for_message(b, room, text, timeout=45)
    send_text(a, room, f"after restart {t}")
    wait_for_message(b, room, f"after restart {t}")
    got = [x for x in bodies(messages(b, room)) if x.startswith(f"while down {t}")]
    assert sorted(got) == sorted(sent), f"{remote} has {got} (each of {sent} exactly once expected)"
    in_sync = [x for x in bodies(e for _, r, e in b.seen if r == room) if x.startswith(f"while down {t}")]
    assert sorted(in_sync) == sorted(sent), f"{b}'s /sync delivered {in_sync}"


def concurrent_bursts(a: User, b: User, room: str, topic_first: bool) -> None:
    """Both users, at once, each send five messages and five topics (alternating, the topic
    first or second); returns once each has seen the other's messages."""
    t = tag()
    errors: list[BaseException] = []

    def burst(u: User, who: str) -> None:
        try:
            for i in range(5):
                if topic_first:
                    put_state(u, room, "m.room.topic", {"topic": f"{who} {t} {i}"})
                send_text(u, room, f"{who} {t} {i}")
                if not topic_first:
                    put_state(u, room, "m.room.topic", {"topic": f"{who} {t} {i}"})
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=burst, args=(a, "local")), threading.Thread(target=burst, args=(b, "remote"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(DEADLINE)
    assert not errors, errors
    for i in range(5):
        wait_for_message(a, room, f"remote {t} {i}")
        wait_for_message(b, room, f"local {t} {i}")


def test_concurrent_sends_converge(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    # Room version 12 (both servers' default): the creator's power is implied and must not be listed.
    room = create_room(a, power_level_content_override={"users": {b.user_id: 100}})
    join(b, room, via=[local.server_name])
    wait_for_membership(a, room, b.user_id, "join")
    concurrent_bursts(a, b, room, topic_first=False)
    wait_same_state(a, b, room)


def enable_state_after(u: User) -> None:
    """MSC4222 (`use_state_after`) is behind a per-user experimental flag on Synapse (set
    through its admin API); Stratus always serves it."""
    if u.hs.kind != "synapse":
        return
    admin = register_user(u.hs, "adm", admin=True)
    r = api(admin, "PUT", f"/_synapse/admin/v1/experimental_features/{u.user_id}", {"features": {"msc4222": True}})
    assert r.status_code == 200, describe(r)


def state_after_sync(u: User, since: str | None, view: dict[str, dict[tuple[str, str], dict]]) -> str:
    """One `use_state_after` /sync, applied to `view` (room → state) the way MSC4222 tells a
    client to: the timeline's state events, then `state_after`. Returns the next token."""
    params = {"timeout": "0", "org.matrix.msc4222.use_state_after": "true", "filter": json.dumps({"room": {"timeline": {"limit": 100}}})}
    if since:
        params["since"] = since
    r = call(u.hs.base, "GET", f"{CLIENT_V3}/sync", token=u.token, params=params)
    assert r.status_code == 200, describe(r)
    body = r.json()
    for room_id, room in body.get("rooms", {}).get("join", {}).items():
        assert "state" not in room, f"{u}: a state_after sync answered with `state` in {room_id}"
        state = view.setdefault(room_id, {})
        after = room.get("org.matrix.msc4222.state_after", room.get("state_after", {})).get("events", [])
        for e in room.get("timeline", {}).get("events", []) + after:
            if "state_key" in e:
                state[(e["type"], e["state_key"])] = e
    return body["next_batch"]


def test_concurrent_topics_reach_sync(pair):
    """Both servers set the topic concurrently; where the branches meet, state resolution may
    keep the other branch's (older) topic, a change no timeline event shows. Each user's
    view built from its /sync responses (with `use_state_after`, which can express such a
    change at the end of a timeline) ends with the topic its server's `/state` has."""
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, power_level_content_override={"users": {b.user_id: 100}})
    join(b, room, via=[local.server_name])
    wait_for_membership(a, room, b.user_id, "join")
    views: dict[str, dict[str, dict[tuple[str, str], dict]]] = {}
    tokens: dict[str, str | None] = {}
    for u in (a, b):
        enable_state_after(u)
        views[u.user_id] = {}
        tokens[u.user_id] = state_after_sync(u, None, views[u.user_id])
    concurrent_bursts(a, b, room, topic_first=True)
    wait_same_state(a, b, room)

    def views_match() -> bool:
        ok_all = True
        for u in (a, b):
            tokens[u.user_id] = state_after_sync(u, tokens[u.user_id], views[u.user_id])
            seen = views[u.user_id].get(room, {}).get(("m.room.topic", ""), {}).get("content", {}).get("topic")
            ok_all &= seen == get_state(u, room, "m.room.topic").get("topic")
        return ok_all

    deadline = time.monotonic() + DEADLINE
    while not views_match():
        if time.monotonic() > deadline:
            detail = {
                str(u): (views[u.user_id].get(room, {}).get(("m.room.topic", ""), {}).get("content"), get_state(u, room, "m.room.topic"))
                for u in (a, b)
            }
            raise AssertionError(f"a user's /sync view of the topic differs from its server's (view, /state): {detail}")
        time.sleep(0.5)


def test_helpers_register_and_sync(pair):
    """The helpers themselves on both servers of the pair (no federation involved)."""
    for hs in pair:
        u = register_user(hs, "h")
        room = create_room(u)
        send_text(u, room, "self")
        wait_for_message(u, room, "self")
