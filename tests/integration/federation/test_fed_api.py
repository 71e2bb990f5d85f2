"""The federation endpoints other servers call to read from Stratus, the resident-server
membership templates, inbound invites and rejecting them (spec: server-server-api,
"Retrieving events", "Backfilling", "Querying for information", "Published Room Directory",
"Joining Rooms", "Knocking", "Inviting to a room", "Leaving Rooms").

A Python stand-in server (fedapi_origin.py) signs the requests. Inbound X-Matrix
verification lands with the transport work: while this build still answers every signed
request with the placeholder 401, the signed tests are skipped (the reason says so); the
unsigned checks run regardless.
"""

from __future__ import annotations

import pytest
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from fedapi_origin import ROOM_VERSION, Origin, q
from matrix_helpers import assert_error, assert_ok, call, new_user, qid, set_displayname
from rooms_helpers import create_room, membership_raw
from sync_helpers import sync

FED = "/_matrix/federation/v1"
PLACEHOLDER_401 = "Federation request authentication is not available yet"


@pytest.fixture(scope="module")
def fed(stratus_factory):
    return stratus_factory({"FEDERATION_INSECURE_HTTP": "1", "FEDERATION_TIMEOUT_MS": "5000"})


@pytest.fixture(scope="module")
def origin(fed):
    o = Origin()
    # Skip the signed tests only while this build has no inbound verification at all.
    r = o.request(fed.base, fed.server_name, "GET", f"{FED}/publicRooms")
    if r.status_code == 401 and PLACEHOLDER_401 in r.text:
        o.close()
        pytest.skip("inbound X-Matrix verification is not in this build yet")
    yield o
    o.close()


def get(o: Origin, fed, uri: str):
    return o.request(fed.base, fed.server_name, "GET", uri)


def first_event_id(fed, token: str, room_id: str) -> str:
    body = assert_ok(call(fed.base, "GET", f"/_matrix/client/v3/rooms/{qid(room_id)}/messages", token=token, params={"dir": "b", "limit": 1}))
    return body["chunk"][0]["event_id"]


# ---- without X-Matrix ----

@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", f"{FED}/event/$x"),
        ("GET", f"{FED}/state_ids/!r:x?event_id=$x"),
        ("GET", f"{FED}/backfill/!r:x?v=$x&limit=5"),
        ("POST", f"{FED}/get_missing_events/!r:x"),
        ("GET", f"{FED}/make_join/!r:x/@u:x?ver=10"),
        ("GET", f"{FED}/query/profile?user_id=@u:x"),
        ("GET", f"{FED}/publicRooms"),
        ("PUT", "/_matrix/federation/v2/invite/!r:x/$x"),
    ],
)
def test_unsigned_requests_are_refused(fed, method, path):
    r = call(fed.base, method, path, {} if method in ("POST", "PUT") else None)
    assert r.status_code == 401, (r.status_code, r.text)


# ---- queries and the directory ----

def test_query_profile_and_directory(fed, origin):
    u = new_user(fed.base, "fedq")
    set_displayname(fed.base, u, "Query Me")
    body = assert_ok(get(origin, fed, f"{FED}/query/profile?user_id={q(u['user_id'])}"))
    assert body.get("displayname") == "Query Me", body
    body = assert_ok(get(origin, fed, f"{FED}/query/profile?user_id={q(u['user_id'])}&field=displayname"))
    assert body == {"displayname": "Query Me"}, body
    assert_error(get(origin, fed, f"{FED}/query/profile?user_id={q(u['user_id'])}&field=avatar_url"), 404, "M_NOT_FOUND")
    assert_error(get(origin, fed, f"{FED}/query/profile?user_id={q('@nobody_here:' + fed.server_name)}"), 404, "M_NOT_FOUND")

    alias_name = f"fedq{u['user_id'][1:8].replace(':', '')}"
    room_id = create_room(fed.base, u["access_token"], preset="public_chat", room_alias_name=alias_name)
    alias = f"#{alias_name}:{fed.server_name}"
    body = assert_ok(get(origin, fed, f"{FED}/query/directory?room_alias={q(alias)}"))
    assert body["room_id"] == room_id, body
    assert fed.server_name in body["servers"], body
    assert_error(get(origin, fed, f"{FED}/query/directory?room_alias={q('#missing_fedq:' + fed.server_name)}"), 404, "M_NOT_FOUND")


def test_public_rooms(fed, origin):
    u = new_user(fed.base, "fedpr")
    name = f"Fedapi directory {u['user_id'][1:9]}"
    room_id = create_room(fed.base, u["access_token"], preset="public_chat", visibility="public", name=name)
    body = assert_ok(get(origin, fed, f"{FED}/publicRooms?limit=500"))
    assert any(r["room_id"] == room_id for r in body["chunk"]), body
    body = assert_ok(origin.request(fed.base, fed.server_name, "POST", f"{FED}/publicRooms", {"filter": {"generic_search_term": name}}))
    assert [r["room_id"] for r in body["chunk"]] == [room_id], body


# ---- reads: the room gate ----

def test_reads_refused_to_a_server_never_in_the_room(fed, origin):
    u = new_user(fed.base, "fedread")
    room_id = create_room(fed.base, u["access_token"], preset="public_chat", room_version=ROOM_VERSION)
    ev = first_event_id(fed, u["access_token"], room_id)
    for r in [
        get(origin, fed, f"{FED}/event/{q(ev)}"),
        get(origin, fed, f"{FED}/state/{q(room_id)}?event_id={q(ev)}"),
        get(origin, fed, f"{FED}/state_ids/{q(room_id)}?event_id={q(ev)}"),
        get(origin, fed, f"{FED}/event_auth/{q(room_id)}/{q(ev)}"),
        get(origin, fed, f"{FED}/backfill/{q(room_id)}?v={q(ev)}&limit=10"),
        origin.request(fed.base, fed.server_name, "POST", f"{FED}/get_missing_events/{q(room_id)}", {"latest_events": [ev], "earliest_events": []}),
    ]:
        assert_error(r, 403, "M_FORBIDDEN")
    unknown = f"!nope:{fed.server_name}"
    assert_error(get(origin, fed, f"{FED}/state_ids/{q(unknown)}?event_id={q(ev)}"), 404, "M_NOT_FOUND")
    assert_error(get(origin, fed, f"{FED}/event/{q('$doesnotexist')}"), 404, "M_NOT_FOUND")


# ---- templates ----

def test_make_join_template(fed, origin):
    u = new_user(fed.base, "fedmj")
    room_id = create_room(fed.base, u["access_token"], preset="public_chat", room_version=ROOM_VERSION)
    joiner = f"@bob:{origin.server_name}"
    r = get(origin, fed, f"{FED}/make_join/{q(room_id)}/{q(joiner)}?ver=9&ver={ROOM_VERSION}")
    body = assert_ok(r)
    assert body["room_version"] == ROOM_VERSION, body
    ev = body["event"]
    assert (ev["type"], ev["room_id"], ev["sender"], ev["state_key"]) == ("m.room.member", room_id, joiner, joiner), ev
    assert ev["content"]["membership"] == "join", ev
    assert ev["origin"] == fed.server_name, ev
    assert "signatures" not in ev and "hashes" not in ev, ev
    head = first_event_id(fed, u["access_token"], room_id)
    assert ev["prev_events"] == [head], ev
    assert isinstance(ev["depth"], int) and ev["depth"] > 1, ev
    # create, power levels and join rules authorise a public join.
    assert len(ev["auth_events"]) == 3, ev

    body = assert_error(get(origin, fed, f"{FED}/make_join/{q(room_id)}/{q(joiner)}?ver=9"), 400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert body["room_version"] == ROOM_VERSION, body
    # The user must be on the requesting server.
    assert_error(get(origin, fed, f"{FED}/make_join/{q(room_id)}/{q('@bob:elsewhere.example')}?ver={ROOM_VERSION}"), 403, "M_FORBIDDEN")
    assert_error(get(origin, fed, f"{FED}/make_join/{q('!nope:' + fed.server_name)}/{q(joiner)}?ver={ROOM_VERSION}"), 404, "M_NOT_FOUND")
    # Not in the room: no leave; a public room takes no knocks.
    assert_error(get(origin, fed, f"{FED}/make_leave/{q(room_id)}/{q(joiner)}"), 403, "M_FORBIDDEN")
    assert_error(get(origin, fed, f"{FED}/make_knock/{q(room_id)}/{q(joiner)}?ver={ROOM_VERSION}"), 403, "M_FORBIDDEN")


def test_make_join_refused_by_join_rules_and_bans(fed, origin):
    u = new_user(fed.base, "fedmjp")
    private = create_room(fed.base, u["access_token"], preset="private_chat", room_version=ROOM_VERSION)
    joiner = f"@carol:{origin.server_name}"
    assert_error(get(origin, fed, f"{FED}/make_join/{q(private)}/{q(joiner)}?ver={ROOM_VERSION}"), 403, "M_FORBIDDEN")
    public = create_room(fed.base, u["access_token"], preset="public_chat", room_version=ROOM_VERSION)
    assert_ok(membership_raw(fed.base, u["access_token"], public, "ban", {"user_id": joiner}))
    assert_error(get(origin, fed, f"{FED}/make_join/{q(public)}/{q(joiner)}?ver={ROOM_VERSION}"), 403, "M_FORBIDDEN")


def test_make_knock_on_a_knock_room(fed, origin):
    u = new_user(fed.base, "fedmk")
    room_id = create_room(
        fed.base, u["access_token"], preset="private_chat", room_version=ROOM_VERSION,
        initial_state=[{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}],
    )
    knocker = f"@dave:{origin.server_name}"
    body = assert_ok(get(origin, fed, f"{FED}/make_knock/{q(room_id)}/{q(knocker)}?ver={ROOM_VERSION}"))
    assert body["event"]["content"]["membership"] == "knock", body
    assert_error(get(origin, fed, f"{FED}/make_knock/{q(room_id)}/{q(knocker)}?ver=9"), 400, "M_INCOMPATIBLE_ROOM_VERSION")


# ---- invites ----

def invite_body(origin: Origin, event: dict, room_id: str, name: str = "Remote room") -> dict:
    return {"event": event, "room_version": ROOM_VERSION, "invite_room_state": origin.invite_room_state(room_id, name)}


def put_invite(fed, origin: Origin, room_id: str, event_id: str, body: dict):
    return origin.request(fed.base, fed.server_name, "PUT", f"/_matrix/federation/v2/invite/{q(room_id)}/{q(event_id)}", body)


def our_keys(fed) -> dict:
    doc = assert_ok(call(fed.base, "GET", "/_matrix/key/v2/server"))
    return {kid: decode_verify_key_bytes(kid, decode_base64(v["key"])) for kid, v in doc["verify_keys"].items()}


def test_invite_is_countersigned_synced_and_rejected(fed, origin):
    u = new_user(fed.base, "fedinv")
    room_id = origin.new_room_id()
    event_id, event = origin.invite_event(room_id, u["user_id"])
    origin.invites[room_id] = event
    before = sync(fed.base, u["access_token"])

    signed = assert_ok(put_invite(fed, origin, room_id, event_id, invite_body(origin, event, room_id, "Remote room")))["event"]
    # Our signature added, theirs kept, nothing else changed.
    assert origin.server_name in signed["signatures"] and fed.server_name in signed["signatures"], signed
    assert {k: v for k, v in signed.items() if k != "signatures"} == {k: v for k, v in event.items() if k != "signatures"}
    for kid, key in our_keys(fed).items():
        verify_signed_json(signed, fed.server_name, key)

    body = sync(fed.base, u["access_token"], since=before["next_batch"])
    inv = body.get("rooms", {}).get("invite", {}).get(room_id)
    assert inv is not None, body
    events = inv["invite_state"]["events"]
    assert any(e["type"] == "m.room.name" and e["content"].get("name") == "Remote room" for e in events), events
    own = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == u["user_id"]]
    assert own and own[0]["content"]["membership"] == "invite" and own[0]["event_id"] == event_id, events
    # Still there in an initial sync.
    assert room_id in sync(fed.base, u["access_token"]).get("rooms", {}).get("invite", {})

    # Reject: make_leave/send_leave on the stand-in, then the room moves to `leave`.
    mark = body["next_batch"]
    assert_ok(membership_raw(fed.base, u["access_token"], room_id, "leave"))
    sent = [(m, p, b) for (m, p, b) in origin.seen if m == "PUT" and p.startswith("/_matrix/federation/v2/send_leave/")]
    assert len(sent) == 1, origin.seen
    body = sync(fed.base, u["access_token"], since=mark)
    assert room_id in body.get("rooms", {}).get("leave", {}), body
    assert room_id not in body.get("rooms", {}).get("invite", {}), body
    assert room_id not in sync(fed.base, u["access_token"]).get("rooms", {}).get("invite", {})


def test_rejecting_when_the_inviter_is_gone_still_drops_the_invite(fed, origin):
    u = new_user(fed.base, "fedgone")
    gone = Origin()
    try:
        room_id = gone.new_room_id()
        event_id, event = gone.invite_event(room_id, u["user_id"])
        assert_ok(put_invite(fed, gone, room_id, event_id, invite_body(gone, event, room_id)))
    finally:
        gone.close()
    mark = sync(fed.base, u["access_token"])["next_batch"]
    assert_ok(membership_raw(fed.base, u["access_token"], room_id, "leave"))
    body = sync(fed.base, u["access_token"], since=mark)
    assert room_id in body.get("rooms", {}).get("leave", {}), body
    assert room_id not in sync(fed.base, u["access_token"]).get("rooms", {}).get("invite", {})


def test_invite_checks(fed, origin):
    u = new_user(fed.base, "fedchk")
    room_id = origin.new_room_id()
    event_id, event = origin.invite_event(room_id, u["user_id"])
    # Event ID that is not the event's.
    assert_error(put_invite(fed, origin, room_id, "$notthisone", invite_body(origin, event, room_id)), 400, "M_INVALID_PARAM")
    # Another room in the path.
    other = origin.new_room_id()
    assert_error(put_invite(fed, origin, other, event_id, invite_body(origin, event, other)), 400, "M_INVALID_PARAM")
    # A room version this server does not have.
    body = invite_body(origin, event, room_id)
    body["room_version"] = "1"
    assert_error(put_invite(fed, origin, room_id, event_id, body), 400, "M_INCOMPATIBLE_ROOM_VERSION")
    # Unknown invitee.
    ghost_id, ghost = origin.invite_event(room_id, f"@ghost_fedchk:{fed.server_name}")
    assert_error(put_invite(fed, origin, room_id, ghost_id, invite_body(origin, ghost, room_id)), 404, "M_NOT_FOUND")
    # A user who blocks invites.
    assert_ok(call(fed.base, "PUT", f"/_matrix/client/v3/user/{qid(u['user_id'])}/account_data/m.invite_permission_config",
                   {"default_action": "block"}, token=u["access_token"]))
    assert_error(put_invite(fed, origin, room_id, event_id, invite_body(origin, event, room_id)), 403, "M_INVITE_BLOCKED")
    assert room_id not in sync(fed.base, u["access_token"]).get("rooms", {}).get("invite", {})
