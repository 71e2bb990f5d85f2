"""Room server ACLs across servers (spec: server-server-api, "Server Access Control Lists
(ACLs)"; issue: Federation II, "m.room.server_acl changes taking effect at once").

ACLs match server names without their port, and every peer here is on 127.0.0.1: to have
one server the ACL can single out, this module starts a Stratus named `localhost:<port>`
(the test certificate covers `localhost`). The room lives on `stratus_fed`; a user of the
localhost server and a Synapse user are in it. The room's admin denies `localhost`: at
once, the localhost server's PDUs for the room are refused (each reported with an error in
the `/send` answer) while the Synapse user's still arrive; lifting the ACL lets it back in.
"""

from __future__ import annotations

import secrets

import pytest

from conftest import _stratus
from fed_helpers import (
    StandIn,
    build_pdu,
    event_id_of,
    join,
    joined_pair,
    put_state,
    register_user,
    room_context,
    send_text,
    wait_for_membership,
    wait_for_message,
    wait_for_state,
)
from matrix_helpers import describe
from test_edus import prime, send_txn, set_typing, typing_users


@pytest.fixture(scope="module")
def stratus_localhost(stratus_factory, fed_cert):
    return _stratus(stratus_factory, fed_cert, "stratus_localhost", host="localhost")


def test_acl_change_takes_effect_at_once(stratus_fed, stratus_localhost, synapse_fed):
    local, denied_hs = stratus_fed, stratus_localhost
    a, c, room = joined_pair(local, denied_hs)
    s = register_user(synapse_fed, "s")
    join(s, room, via=[local.server_name])
    wait_for_membership(a, room, s.user_id, "join")
    t = secrets.token_hex(4)

    put_state(a, room, "m.room.server_acl", {"allow": ["*"], "deny": ["localhost"], "allow_ip_literals": True})
    stand_in = StandIn(denied_hs)
    ctx = room_context(a, room)
    pdu = stand_in.sign_pdu(build_pdu(ctx, room, c.user_id, "m.room.message", {"msgtype": "m.text", "body": f"denied {t}"}))
    r = stand_in.send_pdus(local, [pdu])
    assert r.status_code == 200, describe(r)
    result = r.json().get("pdus", {}).get(event_id_of(pdu))
    assert result is not None and "error" in result, f"/send from a denied server: {r.json()}"
    # Others are unaffected: the Synapse user's message arrives.
    send_text(s, room, f"allowed {t}")
    wait_for_message(a, room, f"allowed {t}")
    r = stand_in.request(local, "GET", f"/_matrix/federation/v1/event/{event_id_of(pdu)}")
    assert r.status_code == 404, f"the denied server's PDU was stored: {describe(r)}"
    # Nor its EDUs: typing from the denied server is dropped; the allowed server's shows
    # (the stand-in's transaction is answered after its EDUs were applied, so had it been
    # taken, it would show in the same /sync as the Synapse user's).
    prime(a)
    send_txn(stand_in, local, [{"edu_type": "m.typing", "content": {"room_id": room, "user_id": c.user_id, "typing": True}}])
    set_typing(s, room, True)
    users = typing_users(a, room, want=lambda ids: s.user_id in ids)
    assert c.user_id not in users, f"typing from a server the ACL denies was applied: {users}"

    # Lifted: the localhost server's user is heard again, through its own server.
    put_state(a, room, "m.room.server_acl", {"allow": ["*"], "deny": [], "allow_ip_literals": True})
    wait_for_state(c, room, "m.room.server_acl", lambda x: x.get("deny") == [], "the lifted ACL on the localhost server")
    send_text(c, room, f"back {t}")
    wait_for_message(a, room, f"back {t}")
