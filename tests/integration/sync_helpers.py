"""Helpers for the /sync tests: /sync itself, syncs run in a background thread, and reading a
sync response. Room helpers (create, join, send, state) are in rooms_helpers.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from matrix_helpers import CLIENT_V3, assert_ok, call


def sync(base: str, token: str, since: str | None = None, timeout: int = 0, filter: Any = None, **params: Any) -> dict:
    p: dict[str, Any] = {"timeout": str(timeout)}
    if since:
        p["since"] = since
    if filter is not None:
        p["filter"] = filter if isinstance(filter, str) else json.dumps(filter)
    p.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()})
    return assert_ok(call(base, "GET", f"{CLIENT_V3}/sync", token=token, params=p))


class Background:
    """Runs `request` (a long-polling call) in a thread; `.result()` waits for it and returns
    (response, seconds taken). `what` names it in the failure message."""

    def __init__(self, request: Callable[[], dict], what: str):
        self.out: dict = {}
        self.what = what
        self.t0 = time.monotonic()

        def run() -> None:
            try:
                self.out["body"] = request()
            except Exception as e:  # surfaced by result()
                self.out["error"] = e
            self.out["elapsed"] = time.monotonic() - self.t0

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, wait: float = 40) -> tuple[dict, float]:
        self.thread.join(wait)
        assert not self.thread.is_alive(), f"{self.what} did not return"
        if "error" in self.out:
            raise self.out["error"]
        return self.out["body"], self.out["elapsed"]


class BackgroundSync(Background):
    """Starts a long-polling /sync in a thread; `.result()` waits for it and returns
    (response, seconds taken)."""

    def __init__(self, base: str, token: str, since: str, timeout: int = 20000, **kw: Any):
        super().__init__(lambda: sync(base, token, since, timeout, **kw), "sync")


def joined(body: dict, room_id: str) -> dict:
    return body["rooms"]["join"].get(room_id, {})


def sync_timeline_ids(body: dict, room_id: str) -> list[str]:
    return [e["event_id"] for e in joined(body, room_id).get("timeline", {}).get("events", [])]
