"""Room operations across servers (issue: Federation II, "room upgrades whose members are on
several servers, redactions of remote events"): each over a (local, remote) pair, the room
on `local`. Here Stratus→Synapse, Synapse→Stratus and the Synapse→Synapse baseline;
test_stratus_room_ops.py runs them over Stratus→Stratus2 and Stratus2→Stratus.
"""

from __future__ import annotations

import secrets
import uuid

from fed_helpers import (
    StandIn,
    api,
    build_pdu,
    create_room,
    event_id_of,
    get_state,
    join,
    joined_pair,
    ok,
    register_user,
    room_context,
    rpath,
    send_text,
    wait_for_message,
    wait_for_invite,
    wait_for_membership,
    wait_for_state,
    wait_until,
)
from matrix_helpers import describe


def tag() -> str:
    return secrets.token_hex(4)


def redact(u, room: str, event_id: str) -> str:
    r = api(u, "PUT", rpath(room, "redact", event_id, uuid.uuid4().hex), {"reason": "test"})
    return ok(r, f"{u} redacts {event_id}")["event_id"]


def content_of(u, room: str, event_id: str) -> dict | None:
    """The event's content as `u`'s server serves it (None while it does not know it)."""
    r = api(u, "GET", rpath(room, "event", event_id))
    return r.json().get("content", {}) if r.status_code == 200 else None


def redaction_pdu(ctx: dict, room: str, sender: str, target: str) -> dict:
    """An unsigned redaction PDU: `redacts` in the content from room v11, at the top before."""
    if ctx["version"].isdigit() and int(ctx["version"]) < 11:
        ev = build_pdu(ctx, room, sender, "m.room.redaction", {})
        ev["redacts"] = target
        return ev
    return build_pdu(ctx, room, sender, "m.room.redaction", {"redacts": target})


def wait_redacted(u, room: str, event_id: str, what: str) -> None:
    wait_until(lambda: content_of(u, room, event_id) == {}, what)


def test_redactions_cross_and_only_where_allowed(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)  # a created the room (power 100); b has 0
    t = tag()
    from_b = send_text(b, room, f"b's first {t}")
    wait_for_message(a, room, f"b's first {t}")
    # The room's admin redacts a remote user's event: both servers apply it.
    redact(a, room, from_b)
    wait_redacted(a, room, from_b, f"{local} applies its admin's redaction")
    wait_redacted(b, room, from_b, f"{remote} applies a remote admin's redaction of its user's event")
    # A user redacts their own event from the other server: both apply it.
    own = send_text(b, room, f"b's second {t}")
    wait_for_message(a, room, f"b's second {t}")
    redact(b, room, own)
    wait_redacted(a, room, own, f"{local} applies a remote user's redaction of their own event")

    # A forged redaction: b (power 0, another server) redacting a's event. The event is valid
    # (the auth rules of v3+ leave redaction rights to the server), but may not take effect.
    # Stratus receiving only: Synapse refuses the stand-in's hand-built redaction outright
    # ("missing a create event in auth_events" in its log) and then holds the room's later
    # PDUs, so on the baseline this half would test the stand-in, not the rule.
    if local.label.startswith("synapse"):
        return
    from_a = send_text(a, room, f"a's message {t}")
    wait_for_message(b, room, f"a's message {t}")
    stand_in = StandIn(remote)
    ctx = room_context(a, room)
    forged = stand_in.sign_pdu(redaction_pdu(ctx, room, b.user_id, from_a))
    r = stand_in.send_pdus(local, [forged])
    assert r.status_code == 200, f"/send of the redaction: {describe(r)}"
    # Control, after it: b redacting b's own event the same way must apply, which shows the
    # forged one was received and judged.
    control_target = send_text(b, room, f"b's third {t}")
    wait_for_message(a, room, f"b's third {t}")
    ctx = room_context(a, room)
    control = stand_in.sign_pdu(redaction_pdu(ctx, room, b.user_id, control_target))
    r = stand_in.send_pdus(local, [control])
    assert r.status_code == 200, f"/send of the control redaction: {describe(r)}"
    wait_redacted(a, room, control_target, f"{local} applies a stand-in redaction of the sender's own event (/send: {r.json()}; the redaction there: {describe(api(a, 'GET', rpath(room, 'event', event_id_of(control))))})")
    assert content_of(a, room, from_a) == {"msgtype": "m.text", "body": f"a's message {t}"}, \
        f"{local} applied a redaction of its user's event by a remote user without the power to redact"


def test_room_upgrade_with_members_on_both_servers(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    version = get_state(a, room, "m.room.create").get("room_version", "1")
    r = api(a, "POST", rpath(room, "upgrade"), {"new_version": version})
    new_room = ok(r, f"{a} upgrades {room}")["replacement_room"]
    # The remote member sees the tombstone pointing at the new room ...
    wait_for_state(b, room, "m.room.tombstone", lambda c: c.get("replacement_room") == new_room, "the tombstone reaches the remote member")
    # ... and follows it through the upgrading server.
    assert join(b, new_room, via=[local.server_name]) == new_room
    wait_for_membership(a, new_room, b.user_id, "join")
    create = get_state(b, new_room, "m.room.create")
    predecessor = create.get("predecessor", {})
    assert predecessor.get("room_id") == room, f"the new room's create event on {remote}: {create}"
    t = tag()
    send_text(b, new_room, f"in the new room {t}")
    wait_for_message(a, new_room, f"in the new room {t}")
    send_text(a, new_room, f"reply {t}")
    wait_for_message(b, new_room, f"reply {t}")
    # The old room no longer takes messages from non-admins (the upgrade raised its send
    # level), on the remote member's server too.
    wait_for_state(b, room, "m.room.power_levels", lambda c: c.get("events_default", 0) >= 50, "the old room's raised send level")
    r = api(b, "PUT", rpath(room, "send", "m.room.message", uuid.uuid4().hex), {"msgtype": "m.text", "body": "late"})
    assert r.status_code == 403, f"{remote} let {b} write into the replaced room: {describe(r)}"


def test_create_room_inviting_a_remote_user(pair):
    """`createRoom` with a user of the other server in `invite` (a direct chat, as clients
    start them): the invite crosses, the invitee joins."""
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    room = create_room(a, preset="trusted_private_chat", is_direct=True, invite=[b.user_id])
    invite = wait_for_invite(b, room)
    assert invite, f"{b} got no invite to {room}"
    assert join(b, room, via=[local.server_name]) == room
    wait_for_membership(a, room, b.user_id, "join")
    member = get_state(a, room, "m.room.member", b.user_id)
    assert member.get("membership") == "join", member
