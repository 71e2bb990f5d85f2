"""A stand-in remote homeserver for test_fed_api.py: plain HTTP on 127.0.0.1 (Stratus runs
with ``FEDERATION_INSECURE_HTTP=1``), its own ed25519 key (signedjson), serving
``/_matrix/key/v2/server`` and answering ``make_leave``/``send_leave`` for the rooms it
invited to; it signs the requests the tests send to Stratus (X-Matrix) and builds signed
invite PDUs (room version 10)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

import requests
from canonicaljson import encode_canonical_json
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from unpaddedbase64 import encode_base64

ROOM_VERSION = "10"


def q(s: str) -> str:
    """A path segment as it goes on the wire."""
    return quote(s, safe="")


def content_hash(event: dict) -> str:
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return encode_base64(hashlib.sha256(encode_canonical_json(stripped)).digest())


def reference_event_id(event: dict) -> str:
    """Event ID of a v4+ event whose redacted form is itself (no content keys a redaction
    drops): the URL-safe hash of the event without signatures and unsigned."""
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures")}
    return "$" + encode_base64(hashlib.sha256(encode_canonical_json(stripped)).digest(), urlsafe=True)


class Origin:
    def __init__(self) -> None:
        self.key_version = "fedapi1"
        self.signing_key = generate_signing_key(self.key_version)
        self.seen: list[tuple[str, str, bytes]] = []
        # room_id -> the invite event it sent (for make_leave templates).
        self.invites: dict[str, dict] = {}
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(n) if n else b""
                origin.seen.append((self.command, self.path, body))
                status, out = origin.answer(self.command, self.path.split("?")[0], body)
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *a) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.server_name = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- what it serves ----

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/_matrix/key/v2/server":
            return 200, self.key_document()
        prefix = "/_matrix/federation/v1/make_leave/"
        if method == "GET" and path.startswith(prefix):
            room_id = requests.utils.unquote(path[len(prefix):].split("/")[0])
            invite = self.invites.get(room_id)
            if invite is None:
                return 404, {"errcode": "M_NOT_FOUND", "error": "stand-in: unknown room"}
            user = invite["state_key"]
            template = {
                "type": "m.room.member", "room_id": room_id, "sender": user, "state_key": user,
                "content": {"membership": "leave"}, "origin": self.server_name,
                "origin_server_ts": int(time.time() * 1000), "depth": invite["depth"] + 1,
                "prev_events": [reference_event_id(invite)], "auth_events": [reference_event_id(invite)],
            }
            return 200, {"room_version": ROOM_VERSION, "event": template}
        if method == "PUT" and path.startswith("/_matrix/federation/v2/send_leave/"):
            return 200, {}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "stand-in: not here"}

    def key_document(self) -> dict:
        doc = {
            "server_name": self.server_name,
            "valid_until_ts": int(time.time() * 1000) + 3600_000,
            "verify_keys": {f"ed25519:{self.key_version}": {"key": encode_verify_key_base64(get_verify_key(self.signing_key))}},
            "old_verify_keys": {},
        }
        return sign_json(doc, self.server_name, self.signing_key)

    # ---- what it sends ----

    def x_matrix(self, destination: str, method: str, uri: str, content: Any = None) -> str:
        obj: dict[str, Any] = {"method": method, "uri": uri, "origin": self.server_name, "destination": destination}
        if content is not None:
            obj["content"] = content
        sig = sign_json(obj, self.server_name, self.signing_key)["signatures"][self.server_name][f"ed25519:{self.key_version}"]
        return f'X-Matrix origin="{self.server_name}",destination="{destination}",key="ed25519:{self.key_version}",sig="{sig}"'

    def request(self, base: str, destination: str, method: str, uri: str, body: Any = None) -> requests.Response:
        """A request signed by this stand-in; ``uri`` is the path and query exactly as sent."""
        headers = {"Authorization": self.x_matrix(destination, method, uri, body)}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        return requests.request(method, base + uri, data=data, headers=headers, timeout=60)

    def new_room_id(self) -> str:
        return f"!fedapi{uuid.uuid4().hex[:12]}:{self.server_name}"

    def invite_event(self, room_id: str, invitee: str, sender_local: str = "alice") -> tuple[str, dict]:
        """A signed invite PDU from ``@alice`` of this server; (event ID, event)."""
        prev = "$" + encode_base64(hashlib.sha256(room_id.encode()).digest(), urlsafe=True)
        event = {
            "type": "m.room.member", "room_id": room_id, "sender": f"@{sender_local}:{self.server_name}",
            "state_key": invitee, "content": {"membership": "invite"}, "origin_server_ts": int(time.time() * 1000),
            "depth": 7, "prev_events": [prev], "auth_events": [prev],
        }
        event["hashes"] = {"sha256": content_hash(event)}
        event = sign_json(event, self.server_name, self.signing_key)
        return reference_event_id(event), event

    def invite_room_state(self, room_id: str, name: str) -> list[dict]:
        sender = f"@alice:{self.server_name}"
        return [
            {"type": "m.room.create", "state_key": "", "sender": sender, "content": {"room_version": ROOM_VERSION}},
            {"type": "m.room.name", "state_key": "", "sender": sender, "content": {"name": name}},
            {"type": "m.room.join_rules", "state_key": "", "sender": sender, "content": {"join_rule": "invite"}},
        ]
