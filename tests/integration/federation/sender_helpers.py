"""A stand-in remote homeserver for the outbound-federation tests (test_sender.py).

``SenderStandIn`` listens on 127.0.0.1 (its server name is ``127.0.0.1:<port>``), publishes an
ed25519 signing key at ``/_matrix/key/v2/server``, can join one of its users to a room on a
Stratus server (``make_join`` + ``send_join``, signed requests and a signed, hashed event),
and records every ``PUT /_matrix/federation/v1/send/{txnId}`` it receives. While ``failing``
is set it answers those with 500, as a remote that is down would; the recorded attempts
keep their status so a test can check retries.

It also keeps the events it made (its join, ``build_event``) and serves them to Stratus
(``GET /event/{eventId}``, ``POST /get_missing_events``) unless ``serving`` is off (then 500),
so a test can send a PDU whose ancestors Stratus must fetch while the origin cannot answer.

Event IDs of received PDUs are computed here (reference hashes, spec: server-server-api
"Calculating the reference hash for an event", the redaction algorithm of rooms v11), so a
test can de-duplicate by event ID and compare with what the client API returned.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey

KEY_ID = "ed25519:standin"

# Top-level keys the redaction algorithm keeps (rooms v11+; older versions also keep
# origin, membership and prev_state).
_KEEP_TOP = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "auth_events", "origin_server_ts",
}
_KEEP_TOP_OLD = {"origin", "membership", "prev_state"}
_KEEP_CONTENT = {
    "m.room.member": {"membership", "join_authorised_via_users_server"},
    "m.room.join_rules": {"join_rule", "allow"},
    "m.room.power_levels": {
        "ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default",
    },
    "m.room.history_visibility": {"history_visibility"},
    "m.room.redaction": {"redacts"},
}


def sender_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def sender_redact(event: dict, room_version: str = "12") -> dict:
    """The redacted form of ``event`` (what signatures and reference hashes cover)."""
    old = room_version.isdigit() and int(room_version) < 11
    keep = _KEEP_TOP | (_KEEP_TOP_OLD if old else set())
    out = {k: copy.deepcopy(v) for k, v in event.items() if k in keep}
    content = event.get("content") or {}
    kind = event.get("type")
    if kind == "m.room.create" and not old:
        new_content = copy.deepcopy(content)
    else:
        new_content = {k: copy.deepcopy(v) for k, v in content.items() if k in _KEEP_CONTENT.get(kind, set())}
        if kind == "m.room.member" and not old and isinstance(content.get("third_party_invite"), dict):
            signed = content["third_party_invite"].get("signed")
            if signed is not None:
                new_content["third_party_invite"] = {"signed": copy.deepcopy(signed)}
    out["content"] = new_content
    return out


def sender_event_id(pdu: dict, room_version: str = "12") -> str:
    """The reference-hash event ID of a PDU (room versions 4 and later)."""
    red = sender_redact(pdu, room_version)
    red.pop("signatures", None)
    red.pop("unsigned", None)
    digest = hashlib.sha256(encode_canonical_json(red)).digest()
    return "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class SenderAttempt:
    """One ``PUT /send/{txnId}`` as received: its status, body and the PDUs' event IDs."""

    txn_id: str
    status: int
    body: dict
    event_ids: list[str]
    at: float = field(default_factory=time.monotonic)
    # The sender's (address, port): one per TCP connection.
    peer: tuple = ()


class SenderStandIn:
    def __init__(self) -> None:
        self.key = SigningKey.generate()
        self.failing = False
        self.attempts: list[SenderAttempt] = []
        self.other_requests: list[tuple[str, str]] = []
        self.room_version = "12"
        self.serving = True
        # Close each connection after answering, without saying so (`Connection: close`),
        # as a server that drops idle connections does.
        self.drop_connections = False
        self.events: dict[str, dict] = {}
        self._lock = threading.Lock()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length", "0") or 0)
                return self.rfile.read(n) if n else b""

            def _answer(self, status: int, obj: Any) -> None:
                out = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                if stand_in.drop_connections:
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                self._body()
                if self.path.startswith("/_matrix/key/v2/server"):
                    self._answer(200, stand_in.key_document())
                elif self.path.startswith("/_matrix/federation/v1/version"):
                    self._answer(200, {"server": {"name": "sender-stand-in", "version": "0"}})
                elif self.path.startswith("/_matrix/federation/v1/event/"):
                    stand_in.other_requests.append(("GET", self.path))
                    from urllib.parse import unquote
                    ev = stand_in.events.get(unquote(self.path.split("/event/", 1)[1].split("?", 1)[0]))
                    if not stand_in.serving:
                        self._answer(500, {"errcode": "M_UNKNOWN", "error": "down for the test"})
                    elif ev is None:
                        self._answer(404, {"errcode": "M_NOT_FOUND", "error": "Unknown event"})
                    else:
                        self._answer(200, {"origin": stand_in.server_name, "origin_server_ts": int(time.time() * 1000), "pdus": [ev]})
                else:
                    stand_in.other_requests.append(("GET", self.path))
                    self._answer(404, {"errcode": "M_UNRECOGNIZED", "error": "Not here"})

            def do_PUT(self) -> None:  # noqa: N802
                raw = self._body()
                prefix = "/_matrix/federation/v1/send/"
                if not self.path.startswith(prefix):
                    stand_in.other_requests.append(("PUT", self.path))
                    self._answer(404, {"errcode": "M_UNRECOGNIZED", "error": "Not here"})
                    return
                txn_id = self.path[len(prefix):].split("?", 1)[0]
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"unparsable": raw.decode(errors="replace")}
                pdus = body.get("pdus") if isinstance(body.get("pdus"), list) else []
                ids = [sender_event_id(p, stand_in.room_version) for p in pdus if isinstance(p, dict)]
                status = 500 if stand_in.failing else 200
                with stand_in._lock:
                    stand_in.attempts.append(SenderAttempt(txn_id, status, body, ids, peer=tuple(self.client_address)))
                if status == 500:
                    self._answer(500, {"errcode": "M_UNKNOWN", "error": "down for the test"})
                else:
                    self._answer(200, {"pdus": {i: {} for i in ids}})

            def do_POST(self) -> None:  # noqa: N802
                raw = self._body()
                stand_in.other_requests.append(("POST", self.path))
                if self.path.startswith("/_matrix/federation/v1/get_missing_events/"):
                    if not stand_in.serving:
                        self._answer(500, {"errcode": "M_UNKNOWN", "error": "down for the test"})
                        return
                    body = json.loads(raw or b"{}")
                    earliest = set(body.get("earliest_events", []))
                    # Walk back from the latest events through the ones we made.
                    out, todo, seen = [], list(body.get("latest_events", [])), set()
                    while todo:
                        for prev in stand_in.events.get(todo.pop(), {}).get("prev_events", []):
                            if prev in seen or prev in earliest or prev not in stand_in.events:
                                continue
                            seen.add(prev)
                            out.append(stand_in.events[prev])
                            todo.append(prev)
                    self._answer(200, {"events": out})
                    return
                self._answer(404, {"errcode": "M_UNRECOGNIZED", "error": "Not here"})

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.server_name = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ keys and signing

    def sign_json(self, obj: dict) -> dict:
        """``obj`` with our signature added (spec: appendices, "Signing JSON")."""
        unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        sig = sender_b64(self.key.sign(encode_canonical_json(unsigned)).signature)
        out = dict(obj)
        out.setdefault("signatures", {}).setdefault(self.server_name, {})[KEY_ID] = sig
        return out

    def key_document(self) -> dict:
        doc = {
            "server_name": self.server_name,
            "valid_until_ts": int(time.time() * 1000) + 24 * 3600 * 1000,
            "verify_keys": {KEY_ID: {"key": sender_b64(bytes(self.key.verify_key))}},
            "old_verify_keys": {},
        }
        return self.sign_json(doc)

    def request(self, base: str, destination: str, method: str, path: str, body: Any = None) -> requests.Response:
        """A request to a Stratus server signed with ``X-Matrix`` (spec: "Request Authentication")."""
        signed: dict[str, Any] = {"method": method, "uri": path, "origin": self.server_name, "destination": destination}
        if body is not None:
            signed["content"] = body
        sig = sender_b64(self.key.sign(encode_canonical_json(signed)).signature)
        header = f'X-Matrix origin="{self.server_name}",destination="{destination}",key="{KEY_ID}",sig="{sig}"'
        headers = {"Authorization": header}
        data = None
        if body is not None:
            data = encode_canonical_json(body)
            headers["Content-Type"] = "application/json"
        return requests.request(method, base + path, data=data, headers=headers, timeout=60)

    # ------------------------------------------------------------------ joining

    def join(self, base: str, destination: str, room_id: str, localpart: str) -> str:
        """Joins ``@localpart:<us>`` to ``room_id`` on the Stratus server (make_join,
        send_join). Returns the join event's ID; raises AssertionError with the response."""
        user_id = f"@{localpart}:{self.server_name}"
        path = (
            f"/_matrix/federation/v1/make_join/{quote(room_id, safe='')}/{quote(user_id, safe='')}"
            + "".join(f"{'&' if i else '?'}ver={v}" for i, v in enumerate(["12", "11", "10"]))
        )
        r = self.request(base, destination, "GET", path)
        assert r.status_code == 200, f"make_join: {r.status_code} {r.text[:500]}"
        answer = r.json()
        self.room_version = str(answer.get("room_version", "12"))
        event = answer["event"]
        event.setdefault("origin_server_ts", int(time.time() * 1000))
        if not (self.room_version.isdigit() and int(self.room_version) >= 11):
            event.setdefault("origin", self.server_name)
        event_id = self.finish(event)
        self.join_event = event
        path = f"/_matrix/federation/v2/send_join/{quote(room_id, safe='')}/{quote(event_id, safe='')}"
        r = self.request(base, destination, "PUT", path, event)
        assert r.status_code == 200, f"send_join: {r.status_code} {r.text[:500]}"
        return event_id

    def finish(self, event: dict) -> str:
        """Hashes and signs ``event`` in place, keeps it to serve, returns its event ID."""
        event.pop("hashes", None)
        event.pop("signatures", None)
        event.pop("unsigned", None)
        event["hashes"] = {"sha256": sender_b64(hashlib.sha256(encode_canonical_json(event)).digest())}
        # The signature covers the redacted event; the full event carries it.
        signed_red = self.sign_json(sender_redact(event, self.room_version))
        event["signatures"] = signed_red["signatures"]
        event_id = sender_event_id(event, self.room_version)
        self.events[event_id] = event
        return event_id

    def build_event(self, room_id: str, localpart: str, kind: str, content: dict, prev: list[str], auth: list[str], depth: int) -> tuple[str, dict]:
        """A signed event of ours in ``room_id`` (kept to serve)."""
        event = {
            "type": kind, "room_id": room_id, "sender": f"@{localpart}:{self.server_name}", "content": content,
            "prev_events": prev, "auth_events": auth, "depth": depth, "origin_server_ts": int(time.time() * 1000),
        }
        return self.finish(event), event

    # ------------------------------------------------------------------ what arrived

    def snapshot(self) -> list[SenderAttempt]:
        with self._lock:
            return list(self.attempts)

    def delivered_ids(self) -> list[str]:
        """Event IDs of accepted transactions, in arrival order, each transaction once."""
        seen_txns: set[str] = set()
        out: list[str] = []
        for a in self.snapshot():
            if a.status == 200 and a.txn_id not in seen_txns:
                seen_txns.add(a.txn_id)
                out.extend(a.event_ids)
        return out

    def wait_for(self, event_ids: list[str], timeout: float) -> list[str]:
        """Waits until all ``event_ids`` were delivered; returns the delivered IDs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered_ids()
            if set(event_ids) <= set(got):
                return got
            time.sleep(0.25)
        return self.delivered_ids()

    def wait_failed_attempts(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            failed = sum(1 for a in self.snapshot() if a.status != 200)
            if failed >= n:
                return failed
            time.sleep(0.25)
        return sum(1 for a in self.snapshot() if a.status != 200)
