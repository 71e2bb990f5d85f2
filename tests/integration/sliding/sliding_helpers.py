"""Helpers for the sliding sync tests (MSC4186 at the unstable endpoint clients use today):
one request, and the list shapes matrix-rust-sdk sends. (In this folder: pytest puts a test's
folder on sys.path, so the tests here import it by name.)"""

from __future__ import annotations

from typing import Any

import requests

from matrix_helpers import assert_ok, call
from sync_helpers import Background

SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

# What matrix-rust-sdk's RoomListService asks for in its `all_rooms` list.
ROOM_LIST_STATE = [
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.name", ""],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["m.room.join_rules", ""],
    ["m.room.create", ""],
    ["m.room.history_visibility", ""],
]


def room_list(ranges: list | None = None, timeline_limit: int = 1, required_state: Any = None, **extra: Any) -> dict:
    """One list config (by default as the rust SDK's `all_rooms`)."""
    lst = {
        "ranges": [[0, 19]] if ranges is None else ranges,
        "timeline_limit": timeline_limit,
        "required_state": ROOM_LIST_STATE if required_state is None else required_state,
    }
    lst.update(extra)
    return lst


def sliding_raw(base: str, token: str, body: dict | None = None, pos: str | None = None, timeout: int | None = None,
                conn_id: str | None = "room-list") -> requests.Response:
    params = {}
    if pos is not None:
        params["pos"] = pos
    if timeout is not None:
        params["timeout"] = str(timeout)
    b = dict(body or {})
    if conn_id is not None:
        b.setdefault("conn_id", conn_id)
    return call(base, "POST", SLIDING, b, token=token, params=params)


def sliding(base: str, token: str, body: dict | None = None, pos: str | None = None, timeout: int | None = None,
            conn_id: str | None = "room-list") -> dict:
    return assert_ok(sliding_raw(base, token, body, pos, timeout, conn_id))


def lists_only(lists: dict, **extra: Any) -> dict:
    body = {"lists": lists}
    body.update(extra)
    return body


def timeline_ids(room: dict) -> list[str]:
    return [e["event_id"] for e in room.get("timeline", [])]


def order_by_bump(body: dict) -> list[str]:
    """Room IDs of a response, most recent first (as clients sort them)."""
    return [r for r, _ in sorted(body["rooms"].items(), key=lambda kv: -kv[1].get("bump_stamp", 0))]


class BackgroundSliding(Background):
    """A long-polling sliding sync in a thread; `.result()` returns (response, seconds)."""

    def __init__(self, base: str, token: str, body: dict, pos: str, timeout: int = 20000, conn_id: str = "room-list"):
        super().__init__(lambda: sliding(base, token, body, pos=pos, timeout=timeout, conn_id=conn_id), "sliding sync")
