"""Helpers of the federation tests: servers of either kind (Stratus, Synapse), users on
them, rooms, waiting for what another server sent, comparing room state across servers,
and a stand-in that forges PDUs as a real peer.

Every wait has a deadline (`DEADLINE`, 20 s) and fails with a message that names the servers
and what was awaited; nothing blocks without one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import quote

import requests

from matrix_helpers import CLIENT_V3, DEFAULT_PASSWORD, admin_register_raw, call, describe, json_of, qid

DEADLINE = 20.0
LABELS = ("stratus", "stratus2", "synapse", "synapse2")


def pair_id(local: str, remote: str) -> str:
    """Test ID of a (local, remote) pair: the room lives on `local`; `remote` joins it."""
    return f"{local}_to_{remote}"


@dataclass
class HS:
    """A homeserver under test. `base`: client API; `fed_base`: its federation API over TLS;
    `signing_key`: its `ed25519 <version> <seed>` key (the stand-in signs as it)."""

    kind: str
    label: str
    server_name: str
    base: str
    fed_base: str
    shared_secret: str
    signing_key: str
    stop_process: Callable[[], None]
    start_process: Callable[[], None]
    log_tail: Callable[..., str]

    def __str__(self) -> str:
        return f"{self.label} ({self.server_name})"


@dataclass
class User:
    hs: HS
    user_id: str
    token: str
    since: str | None = None
    # Everything this user's /sync has returned so far: (section, room ID, event).
    seen: list[tuple[str, str, dict]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.user_id} on {self.hs.label}"


def ok(r: requests.Response, what: str, status: int = 200) -> Any:
    if r.status_code != status:
        raise AssertionError(f"{what}: {describe(r)}")
    return json_of(r)


# --------------------------------------------------------------------------- users and rooms


def register_user(hs: HS, prefix: str = "u", admin: bool = False) -> User:
    """A fresh user through the shared-secret admin API (`/_synapse/admin/v1/register`, which
    both Synapse and Stratus serve)."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    body = ok(admin_register_raw(hs.base, hs.shared_secret, name, DEFAULT_PASSWORD, admin=admin), f"register {name} on {hs}")
    return User(hs=hs, user_id=body["user_id"], token=body["access_token"])


def api(u: User, method: str, path: str, body: Any = None, params: dict | None = None) -> requests.Response:
    return call(u.hs.base, method, path, body, token=u.token, params=params)


def rpath(room_id: str, *rest: str) -> str:
    return f"{CLIENT_V3}/rooms/{qid(room_id)}" + "".join("/" + qid(s) for s in rest)


def create_room(u: User, **body: Any) -> str:
    """createRoom on the user's server (public_chat unless `preset` says otherwise)."""
    body.setdefault("preset", "public_chat")
    return ok(api(u, "POST", f"{CLIENT_V3}/createRoom", body), f"createRoom by {u}")["room_id"]


def join_raw(u: User, room: str, via: Iterable[str] = ()) -> requests.Response:
    params = [("server_name", s) for s in via]
    return call(u.hs.base, "POST", f"{CLIENT_V3}/join/{qid(room)}", {}, token=u.token, params=params or None)


def join(u: User, room: str, via: Iterable[str] = ()) -> str:
    """Joins a room (by ID or alias; `via` = servers to join through); returns its ID."""
    via = list(via)
    return ok(join_raw(u, room, via), f"{u} joins {room} via {via}")["room_id"]


def membership(u: User, room_id: str, action: str, **body: Any) -> None:
    """invite / kick / ban / unban (body: user_id, reason) or leave (to reject an invite too)."""
    ok(api(u, "POST", rpath(room_id, action), body), f"{action} {body} by {u} in {room_id}")


def send_text(u: User, room_id: str, text: str) -> str:
    r = api(u, "PUT", rpath(room_id, "send", "m.room.message", uuid.uuid4().hex), {"msgtype": "m.text", "body": text})
    return ok(r, f"{u} sends {text!r} in {room_id}")["event_id"]


def put_state(u: User, room_id: str, etype: str, content: dict, state_key: str = "") -> str:
    return ok(api(u, "PUT", rpath(room_id, "state", etype, state_key), content), f"{u} sets {etype} in {room_id}")["event_id"]


def get_state(u: User, room_id: str, etype: str, state_key: str = "") -> dict:
    return ok(api(u, "GET", rpath(room_id, "state", etype, state_key)), f"{u} reads {etype} in {room_id}")


def set_alias(u: User, localpart: str, room_id: str) -> str:
    alias = f"#{localpart}:{u.hs.server_name}"
    ok(api(u, "PUT", f"{CLIENT_V3}/directory/room/{quote(alias, safe='')}", {"room_id": room_id}), f"alias {alias}")
    return alias


def room_state(u: User, room_id: str) -> dict[tuple[str, str], dict]:
    events = ok(api(u, "GET", rpath(room_id, "state")), f"{u} reads /state of {room_id}")
    return {(e["type"], e["state_key"]): e for e in events}


def messages(u: User, room_id: str, limit: int = 100) -> list[dict]:
    """Up to `limit` events from the end of the room, newest first (one /messages page and
    the next ones while they keep coming)."""
    out: list[dict] = []
    params: dict[str, Any] = {"dir": "b", "limit": str(min(limit, 100))}
    while len(out) < limit:
        body = ok(api(u, "GET", rpath(room_id, "messages"), params=params), f"{u} /messages in {room_id}")
        chunk = body.get("chunk", [])
        out += chunk
        if not chunk or not body.get("end"):
            break
        params["from"] = body["end"]
    return out


def bodies(events: Iterable[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e.get("type") == "m.room.message" and "body" in e.get("content", {})]


# --------------------------------------------------------------------------- waiting


def sync_once(u: User, timeout_ms: int) -> list[tuple[str, str, dict]]:
    """One /sync from the user's last position; records and returns what it brought."""
    params = {"timeout": str(timeout_ms), "filter": json.dumps({"room": {"timeline": {"limit": 100}}})}
    if u.since:
        params["since"] = u.since
    r = call(u.hs.base, "GET", f"{CLIENT_V3}/sync", token=u.token, params=params)
    body = ok(r, f"/sync of {u}")
    new: list[tuple[str, str, dict]] = []
    rooms = body.get("rooms", {})
    for section in ("join", "leave"):
        for room_id, room in rooms.get(section, {}).items():
            for e in room.get("state", {}).get("events", []) + room.get("timeline", {}).get("events", []):
                new.append((section, room_id, e))
    for room_id, room in rooms.get("invite", {}).items():
        for e in room.get("invite_state", {}).get("events", []):
            new.append(("invite", room_id, e))
    u.since = body["next_batch"]
    u.seen += new
    return new


def wait_for(u: User, pred: Callable[[str, str, dict], bool], what: str, timeout: float = DEADLINE) -> dict:
    """The first event (already seen or arriving in `timeout` s) for which
    pred(section, room_id, event) holds; fails naming `what` otherwise."""
    for s, r, e in u.seen:
        if pred(s, r, e):
            return e
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:.0f} s: {u} never saw {what} in /sync")
        for s, r, e in sync_once(u, int(min(left, 5) * 1000)):
            if pred(s, r, e):
                return e


def wait_for_message(u: User, room_id: str, text: str, timeout: float = DEADLINE) -> dict:
    return wait_for(u, lambda s, r, e: s == "join" and r == room_id and e.get("type") == "m.room.message"
                    and e.get("content", {}).get("body") == text, f"message {text!r} in {room_id}", timeout)


def wait_for_invite(u: User, room_id: str, timeout: float = DEADLINE) -> dict:
    return wait_for(u, lambda s, r, e: s == "invite" and r == room_id and e.get("type") == "m.room.member"
                    and e.get("state_key") == u.user_id, f"an invite to {room_id}", timeout)


def wait_for_membership(u: User, room_id: str, user_id: str, value: str, timeout: float = DEADLINE) -> dict:
    return wait_for(u, lambda s, r, e: r == room_id and e.get("type") == "m.room.member" and e.get("state_key") == user_id
                    and e.get("content", {}).get("membership") == value, f"{user_id} {value} in {room_id}", timeout)


def wait_for_state(u: User, room_id: str, etype: str, pred: Callable[[dict], bool], what: str, timeout: float = DEADLINE) -> dict:
    return wait_for(u, lambda s, r, e: s == "join" and r == room_id and e.get("type") == etype and "state_key" in e
                    and pred(e.get("content", {})), f"{what} in {room_id}", timeout)


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE, interval: float = 0.5) -> Any:
    """Polls `check` until it returns something truthy; fails with its last error otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            got = check()
            if got:
                return got
            last = got
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last}")
        time.sleep(interval)


def state_diff(a: User, b: User, room_id: str) -> str:
    """'' when both users' servers give the same client /state (type, state_key -> event ID)."""
    sa = {k: e["event_id"] for k, e in room_state(a, room_id).items()}
    sb = {k: e["event_id"] for k, e in room_state(b, room_id).items()}
    if sa == sb:
        return ""
    lines = [f"{k}: {a.hs.label}={sa.get(k)} {b.hs.label}={sb.get(k)}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    return "\n".join(lines)


def wait_same_state(a: User, b: User, room_id: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while True:
        diff = state_diff(a, b, room_id)
        if not diff:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{a.hs} and {b.hs} disagree on the state of {room_id} after {timeout:.0f} s:\n{diff}")
        time.sleep(0.5)


def joined_pair(local: HS, remote: HS, **room: Any) -> tuple[User, User, str]:
    """A room on `local` (created by a fresh local user) that a fresh `remote` user has
    joined by ID through `local`; both have seen the join."""
    a, b = register_user(local, "a"), register_user(remote, "b")
    room_id = create_room(a, **room)
    join(b, room_id, via=[local.server_name])
    wait_for_membership(a, room_id, b.user_id, "join")
    # b's /sync position from before anything else happens in the room: a kick or ban that
    # lands before b's first (initial) sync would be left out of it (left rooms come only
    # with include_leave) and a test waiting for it would time out.
    wait_for_membership(b, room_id, b.user_id, "join")
    return a, b, room_id


# --------------------------------------------------------------------------- keys


def server_key(hs: HS) -> dict:
    """The server's own key document (`GET /_matrix/key/v2/server` over TLS)."""
    return ok(call(hs.fed_base, "GET", "/_matrix/key/v2/server"), f"key document of {hs}")


def notary_query(notary: HS, target: HS, key_id: str) -> dict:
    """Asks `notary` for `target`'s key `key_id`; a key ID with minimum_valid_until_ts makes
    Synapse fetch it from the target (an empty criteria object only returns its cache)."""
    body = {"server_keys": {target.server_name: {key_id: {"minimum_valid_until_ts": int(time.time() * 1000)}}}}
    return ok(call(notary.fed_base, "POST", "/_matrix/key/v2/query", body), f"{notary} notary query for {target}")


# --------------------------------------------------------------------------- forging


def b64u(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


# Keys kept by the redaction algorithm of room versions 11 and 12 (the versions used here).
_TOP_KEYS = {"event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures", "depth", "prev_events",
             "auth_events", "origin_server_ts"}
_CONTENT_KEYS = {
    "m.room.member": {"membership", "join_authorised_via_users_server", "third_party_invite"},
    "m.room.create": None,  # all
    "m.room.join_rules": {"join_rule", "allow"},
    "m.room.power_levels": {"ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users",
                            "users_default"},
    "m.room.history_visibility": {"history_visibility"},
    "m.room.redaction": {"redacts"},
}


def redact(ev: dict) -> dict:
    out = {k: v for k, v in ev.items() if k in _TOP_KEYS}
    keep = _CONTENT_KEYS.get(ev["type"], set())
    content = ev.get("content", {})
    out["content"] = dict(content) if keep is None else {k: v for k, v in content.items() if k in keep}
    return out


def content_hash(ev: dict) -> str:
    stripped = {k: v for k, v in ev.items() if k not in ("unsigned", "signatures", "hashes")}
    return b64u(hashlib.sha256(canonical(stripped)).digest())


def event_id_of(ev: dict) -> str:
    """Reference hash event ID (room versions 4 and later)."""
    r = redact(ev)
    r.pop("signatures", None)
    r.pop("unsigned", None)
    return "$" + base64.urlsafe_b64encode(hashlib.sha256(canonical(r)).digest()).decode().rstrip("=")


class StandIn:
    """Signs as a real server (with its signing key): PDUs and X-Matrix-authenticated
    requests, e.g. a `/send` transaction of forged PDUs to another server."""

    def __init__(self, hs: HS):
        import signedjson.key

        alg, version, seed = hs.signing_key.split()
        self.name = hs.server_name
        self.key = signedjson.key.decode_signing_key_base64(alg, version, seed)
        self.key_id = f"{alg}:{version}"

    def sign_pdu(self, ev: dict, as_server: str | None = None, key=None) -> dict:
        """Adds the content hash and a signature over the redacted event (by `key`, under
        this server's key ID, for `as_server`; this server and its key by default)."""
        import signedjson.sign

        ev = dict(ev)
        ev["hashes"] = {"sha256": content_hash(ev)}
        signed = signedjson.sign.sign_json(redact(ev), as_server or self.name, key or self.key)
        ev["signatures"] = signed["signatures"]
        return ev

    def request(self, dest: HS, method: str, path: str, body: Any = None) -> requests.Response:
        import signedjson.sign

        req: dict[str, Any] = {"method": method, "uri": path, "origin": self.name, "destination": dest.server_name}
        if body is not None:
            req["content"] = body
        sig = signedjson.sign.sign_json(req, self.name, self.key)["signatures"][self.name][self.key_id]
        header = f'X-Matrix origin="{self.name}",destination="{dest.server_name}",key="{self.key_id}",sig="{sig}"'
        # Synapse takes one transaction at a time from an origin (429 while the real server's
        # is in flight): come back, as a server would.
        for _ in range(40):
            r = call(dest.fed_base, method, path, body, headers={"Authorization": header})
            if r.status_code != 429:
                break
            time.sleep(0.25)
        return r

    def send_pdus(self, dest: HS, pdus: list[dict]) -> requests.Response:
        txn = uuid.uuid4().hex
        body = {"origin": self.name, "origin_server_ts": int(time.time() * 1000), "pdus": pdus, "edus": []}
        return self.request(dest, "PUT", f"/_matrix/federation/v1/send/{txn}", body)


def room_context(u: User, room_id: str) -> dict:
    """What a new PDU in the room needs, from the user's server: room version, latest event,
    and the state events' IDs (type, state_key) -> event ID."""
    state = room_state(u, room_id)
    version = state[("m.room.create", "")]["content"].get("room_version", "1")
    latest = messages(u, room_id, limit=1)
    prev = [latest[0]["event_id"]] if latest else []
    return {"version": version, "prev_events": prev, "state": {k: e["event_id"] for k, e in state.items()}}


def build_pdu(ctx: dict, room_id: str, sender: str, etype: str, content: dict, state_key: str | None = None,
              depth: int = 1000) -> dict:
    """An unsigned PDU on top of the room's latest event, with the auth events the rules ask
    for (create — not in v12, where the room ID stands for it —, power levels, the sender's
    membership, and join rules for a membership event)."""
    st = ctx["state"]
    auth = []
    if ctx["version"] not in ("12",):
        auth.append(st[("m.room.create", "")])
    for key in (("m.room.power_levels", ""), ("m.room.member", sender)):
        if key in st:
            auth.append(st[key])
    if etype == "m.room.member" and ("m.room.join_rules", "") in st:
        auth.append(st[("m.room.join_rules", "")])
    ev: dict[str, Any] = {"room_id": room_id, "sender": sender, "type": etype, "content": content,
                          "origin_server_ts": int(time.time() * 1000), "prev_events": ctx["prev_events"],
                          "auth_events": auth, "depth": depth}
    if state_key is not None:
        ev["state_key"] = state_key
    return ev


# --------------------------------------------------------------------------- devices


def signed_device_keys(user_id: str, device_id: str) -> dict:
    """Device keys signed by the device's own (fresh) ed25519 key, as a client uploads them."""
    import nacl.signing
    import signedjson.key
    import signedjson.sign

    key = signedjson.key.decode_signing_key_base64("ed25519", device_id,
                                                   signedjson.key.encode_signing_key_base64(nacl.signing.SigningKey.generate()))
    curve = signedjson.key.encode_verify_key_base64(nacl.signing.SigningKey.generate().verify_key)  # any 32-byte key
    keys = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device_id}": curve, f"ed25519:{device_id}": signedjson.key.encode_verify_key_base64(key.verify_key)},
    }
    return signedjson.sign.sign_json(keys, user_id, key)


def login_device(hs: HS, user_id: str, password: str = DEFAULT_PASSWORD) -> tuple[str, str]:
    """Signs in a new device: (access token, device ID)."""
    localpart = user_id.split(":", 1)[0].lstrip("@")
    body = ok(call(hs.base, "POST", f"{CLIENT_V3}/login",
                   {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password}),
              f"login of {user_id} on {hs}")
    return body["access_token"], body["device_id"]
