"""Helpers for the rooms and events integration tests (test_rooms_*.py).

Thin wrappers over ``matrix_helpers.call`` for the room endpoints, plus pagination
helpers that walk /messages and check the result.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterable

from matrix_helpers import CLIENT_V3, DEFAULT_PASSWORD, assert_ok, call, describe, login, qid

# `$` + 43 unpadded url-safe base64 characters (room versions 4 and later).
EVENT_ID_RE = re.compile(r"^\$[A-Za-z0-9_-]{43}$")
# Room version 12: `!` + the create event's reference hash, no server name.
ROOM_ID_V12_RE = re.compile(r"^![A-Za-z0-9_-]{43}$")
TOKEN_RE = re.compile(r"^s\d+")


def txn() -> str:
    return uuid.uuid4().hex


def rpath(room_id: str, *rest: str, v: str = CLIENT_V3) -> str:
    p = f"{v}/rooms/{qid(room_id)}"
    for seg in rest:
        p += "/" + qid(seg)
    return p


# --------------------------------------------------------------------------- rooms


def create_room_raw(base: str, token: str, body: dict | None = None):
    return call(base, "POST", f"{CLIENT_V3}/createRoom", body if body is not None else {}, token=token)


def create_room(base: str, token: str, **body: Any) -> str:
    r = create_room_raw(base, token, body)
    out = assert_ok(r)
    assert isinstance(out.get("room_id"), str) and out["room_id"].startswith("!"), describe(r)
    return out["room_id"]


def public_room(base: str, token: str, **body: Any) -> str:
    body.setdefault("preset", "public_chat")
    return create_room(base, token, **body)


def join_raw(base: str, token: str, room: str, body: dict | None = None, params=None):
    return call(base, "POST", f"{CLIENT_V3}/join/{qid(room)}", body or {}, token=token, params=params)


def join(base: str, token: str, room: str) -> str:
    out = assert_ok(join_raw(base, token, room))
    return out["room_id"]


def room_pair(base: str, owner: dict, member: dict, **body: Any) -> str:
    """A room created by ``owner`` (preset ``public_chat`` unless given) that ``member`` has joined."""
    body.setdefault("preset", "public_chat")
    room_id = create_room(base, owner["access_token"], **body)
    join(base, member["access_token"], room_id)
    return room_id


def membership_raw(base: str, token: str, room_id: str, action: str, body: dict | None = None):
    """POST /rooms/{id}/{action} for invite/leave/forget/kick/ban/unban/join."""
    return call(base, "POST", rpath(room_id, action), body or {}, token=token)


def invite(base: str, token: str, room_id: str, user_id: str) -> None:
    assert_ok(membership_raw(base, token, room_id, "invite", {"user_id": user_id}))


def leave(base: str, token: str, room_id: str) -> None:
    assert_ok(membership_raw(base, token, room_id, "leave"))


def send_raw(base, token, room_id, body, etype="m.room.message", txn_id=None):
    return call(base, "PUT", rpath(room_id, "send", etype, txn_id or txn()), body, token=token)


def send(base: str, token: str, room_id: str, body: dict | str, etype: str = "m.room.message") -> str:
    if isinstance(body, str):
        body = {"msgtype": "m.text", "body": body}
    r = send_raw(base, token, room_id, body, etype)
    out = assert_ok(r)
    assert EVENT_ID_RE.match(out.get("event_id", "")), describe(r)
    return out["event_id"]


def send_text(base, token, room_id, text) -> str:
    return send(base, token, room_id, {"msgtype": "m.text", "body": text})


def send_many(base: str, token: str, room_id: str, n: int, prefix: str = "msg") -> list[tuple[str, str]]:
    """Send ``n`` text messages; returns [(event_id, body)] in send order."""
    out = []
    for i in range(n):
        b = f"{prefix}-{i:04d}"
        out.append((send_text(base, token, room_id, b), b))
    return out


def put_state_raw(base, token, room_id, etype, content, state_key=""):
    path = rpath(room_id, "state", etype, state_key) if state_key else rpath(room_id, "state", etype)
    return call(base, "PUT", path, content, token=token)


def put_state(base, token, room_id, etype, content, state_key="") -> str:
    out = assert_ok(put_state_raw(base, token, room_id, etype, content, state_key))
    assert EVENT_ID_RE.match(out.get("event_id", "")), out
    return out["event_id"]


def get_state_raw(base, token, room_id, etype, state_key="", params=None):
    path = rpath(room_id, "state", etype, state_key) if state_key else rpath(room_id, "state", etype)
    return call(base, "GET", path, token=token, params=params)


def get_state(base, token, room_id, etype, state_key="") -> dict:
    return assert_ok(get_state_raw(base, token, room_id, etype, state_key))


def full_state(base, token, room_id) -> list[dict]:
    out = assert_ok(call(base, "GET", rpath(room_id, "state"), token=token))
    assert isinstance(out, list), out
    return out


def state_map(base, token, room_id) -> dict[tuple[str, str], dict]:
    return {(e["type"], e["state_key"]): e for e in full_state(base, token, room_id)}


def membership_of(base, token, room_id, user_id) -> str | None:
    """The user's membership from the full state, seen by ``token`` (a joined user)."""
    ev = state_map(base, token, room_id).get(("m.room.member", user_id))
    return ev["content"]["membership"] if ev else None


def redact_raw(base, token, room_id, event_id, reason=None, txn_id=None):
    body = {} if reason is None else {"reason": reason}
    return call(base, "PUT", rpath(room_id, "redact", event_id, txn_id or txn()), body, token=token)


def get_event_raw(base, token, room_id, event_id):
    return call(base, "GET", rpath(room_id, "event", event_id), token=token)


def context_raw(base, token, room_id, event_id, limit=None):
    params = {} if limit is None else {"limit": limit}
    return call(base, "GET", rpath(room_id, "context", event_id), token=token, params=params)


def joined_rooms(base, token) -> list[str]:
    return assert_ok(call(base, "GET", f"{CLIENT_V3}/joined_rooms", token=token))["joined_rooms"]


# --------------------------------------------------------------------------- /messages


def messages_raw(base, token, room_id, **params):
    if "filter" in params and not isinstance(params["filter"], str):
        params["filter"] = json.dumps(params["filter"])
    params = {k: v for k, v in params.items() if v is not None}
    return call(base, "GET", rpath(room_id, "messages"), token=token, params=params)


def messages(base, token, room_id, **params) -> dict:
    r = messages_raw(base, token, room_id, **params)
    out = assert_ok(r)
    assert isinstance(out.get("chunk"), list), describe(r)
    assert isinstance(out.get("start"), str), describe(r)
    return out


def paginate(base, token, room_id, dir: str = "b", from_: str | None = None, limit: int = 50,
             filter=None, max_pages: int = 1000) -> tuple[list[dict], list[dict]]:
    """Walk /messages until ``end`` is absent. Returns (events, pages)."""
    events: list[dict] = []
    pages: list[dict] = []
    token_ = from_
    for _ in range(max_pages):
        page = messages(base, token, room_id, dir=dir, limit=limit, filter=filter,
                        **({"from": token_} if token_ is not None else {}))
        pages.append(page)
        assert len(page["chunk"]) <= limit, (len(page["chunk"]), limit)
        events.extend(page["chunk"])
        if "end" not in page or page.get("end") is None:
            return events, pages
        assert page["end"] != token_ or page["chunk"], f"pagination stuck at {token_}"
        token_ = page["end"]
    raise AssertionError("pagination did not finish")


def bodies(events: Iterable[dict], prefix: str | None = None) -> list[str]:
    out = []
    for e in events:
        if e.get("type") != "m.room.message":
            continue
        b = e.get("content", {}).get("body")
        if prefix is None or (isinstance(b, str) and b.startswith(prefix)):
            out.append(b)
    return out


def timeline_ids(base, token, room_id) -> list[str]:
    """All visible event IDs of the room, oldest first."""
    evs, _ = paginate(base, token, room_id, dir="f", limit=100)
    return [e["event_id"] for e in evs]


def all_bodies(base, token, room_id, prefix=None) -> list[str]:
    evs, _ = paginate(base, token, room_id, dir="f", limit=100)
    return bodies(evs, prefix)


# --------------------------------------------------------------------------- users


def user_with_second_device(base: str, u: dict) -> str:
    """Log the user in again; returns the new device's access token."""
    return login(base, u["user_id"], u.get("password", DEFAULT_PASSWORD))["access_token"]


def localpart(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0]
