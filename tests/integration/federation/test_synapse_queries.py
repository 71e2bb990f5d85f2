"""Queries across servers on a client's behalf (issue: Federation II, "Media, profiles,
directory"): a remote user's profile through the local server (`/query/profile`) and a
remote server's public room directory (`/publicRooms?server=`). Each over a (local, remote)
pair: the client is on `local`, what it asks about lives on `remote`. Here Stratus→Synapse,
Synapse→Stratus and the Synapse→Synapse baseline; test_stratus_queries.py runs them over
Stratus→Stratus2 and Stratus2→Stratus.
"""

from __future__ import annotations

import secrets

from fed_helpers import api, create_room, ok, register_user, wait_until
from matrix_helpers import CLIENT_V3, qid


def test_remote_profile_through_the_local_server(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    name = f"Remote {secrets.token_hex(3)}"
    avatar = f"mxc://{remote.server_name}/{secrets.token_hex(8)}"
    ok(api(b, "PUT", f"{CLIENT_V3}/profile/{qid(b.user_id)}/displayname", {"displayname": name}), "set displayname")
    ok(api(b, "PUT", f"{CLIENT_V3}/profile/{qid(b.user_id)}/avatar_url", {"avatar_url": avatar}), "set avatar_url")
    whole = ok(api(a, "GET", f"{CLIENT_V3}/profile/{qid(b.user_id)}"), f"{a} reads {b}'s profile")
    assert whole.get("displayname") == name and whole.get("avatar_url") == avatar, whole
    one = ok(api(a, "GET", f"{CLIENT_V3}/profile/{qid(b.user_id)}/displayname"), f"{a} reads {b}'s displayname")
    assert one.get("displayname") == name, one
    # A user the remote server does not have: 404, not an error of ours.
    ghost = f"@ghost-{secrets.token_hex(4)}:{remote.server_name}"
    r = api(a, "GET", f"{CLIENT_V3}/profile/{qid(ghost)}")
    assert r.status_code == 404 and r.json().get("errcode") == "M_NOT_FOUND", (r.status_code, r.text)


def test_remote_public_room_directory(pair):
    local, remote = pair
    a, b = register_user(local, "a"), register_user(remote, "b")
    name = f"Directory {secrets.token_hex(3)}"
    room = create_room(b, visibility="public", name=name)

    def listed(method: str) -> bool:
        if method == "GET":
            r = api(a, "GET", f"{CLIENT_V3}/publicRooms", params={"server": remote.server_name, "limit": "100"})
        else:
            r = api(a, "POST", f"{CLIENT_V3}/publicRooms?server={qid(remote.server_name)}",
                    {"limit": 100, "filter": {"generic_search_term": name}})
        chunk = ok(r, f"{a}'s {method} /publicRooms of {remote}").get("chunk", [])
        return any(c.get("room_id") == room and c.get("name") == name for c in chunk)

    own = ok(api(b, "GET", f"{CLIENT_V3}/publicRooms", params={"limit": "100"}), f"{remote}'s own directory").get("chunk", [])
    assert any(c.get("room_id") == room for c in own), f"{room} not even in {remote}'s own directory: {own}"
    # (Synapse caches its directory answer for a short while.)
    wait_until(lambda: listed("GET"), f"{room} in {remote}'s directory through {local} (GET)", timeout=40)
    wait_until(lambda: listed("POST"), f"{room} in {remote}'s directory through {local} (POST, filtered)", timeout=40)
