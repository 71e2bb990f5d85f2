"""Helpers for the /sync tests: rooms, messages, and syncs run in a background thread."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from matrix_helpers import CLIENT_V3, assert_ok, call, qid


def create_room(base: str, token: str, **body: Any) -> str:
    return assert_ok(call(base, "POST", f"{CLIENT_V3}/createRoom", body, token=token))["room_id"]


def join(base: str, token: str, room_id: str) -> None:
    assert_ok(call(base, "POST", f"{CLIENT_V3}/join/{qid(room_id)}", {}, token=token))


def invite(base: str, token: str, room_id: str, user_id: str) -> None:
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room_id)}/invite", {"user_id": user_id}, token=token))


def leave(base: str, token: str, room_id: str) -> None:
    assert_ok(call(base, "POST", f"{CLIENT_V3}/rooms/{qid(room_id)}/leave", {}, token=token))


def send(base: str, token: str, room_id: str, body: str = "hi", content: dict | None = None, kind: str = "m.room.message") -> str:
    c = content if content is not None else {"msgtype": "m.text", "body": body}
    txn = uuid.uuid4().hex
    return assert_ok(call(base, "PUT", f"{CLIENT_V3}/rooms/{qid(room_id)}/send/{kind}/{txn}", c, token=token))["event_id"]


def put_state(base: str, token: str, room_id: str, kind: str, content: dict, state_key: str = "") -> str:
    path = f"{CLIENT_V3}/rooms/{qid(room_id)}/state/{kind}/{qid(state_key)}" if state_key else f"{CLIENT_V3}/rooms/{qid(room_id)}/state/{kind}"
    return assert_ok(call(base, "PUT", path, content, token=token))["event_id"]


def sync(base: str, token: str, since: str | None = None, timeout: int = 0, filter: Any = None, **params: Any) -> dict:
    p: dict[str, Any] = {"timeout": str(timeout)}
    if since:
        p["since"] = since
    if filter is not None:
        p["filter"] = filter if isinstance(filter, str) else json.dumps(filter)
    p.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()})
    return assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", token=token, params=p))


class BackgroundSync:
    """Starts a long-polling /sync in a thread; `.result()` waits for it and returns
    (response, seconds taken)."""

    def __init__(self, base: str, token: str, since: str, timeout: int = 20000, **kw: Any):
        self.out: dict = {}
        self.t0 = time.monotonic()

        def run() -> None:
            try:
                self.out["body"] = sync(base, token, since, timeout, **kw)
            except Exception as e:  # surfaced by result()
                self.out["error"] = e
            self.out["elapsed"] = time.monotonic() - self.t0

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, wait: float = 40) -> tuple[dict, float]:
        self.thread.join(wait)
        assert not self.thread.is_alive(), "sync did not return"
        if "error" in self.out:
            raise self.out["error"]
        return self.out["body"], self.out["elapsed"]


def joined(body: dict, room_id: str) -> dict:
    return body["rooms"]["join"].get(room_id, {})


def timeline_ids(body: dict, room_id: str) -> list[str]:
    return [e["event_id"] for e in joined(body, room_id).get("timeline", {}).get("events", [])]
