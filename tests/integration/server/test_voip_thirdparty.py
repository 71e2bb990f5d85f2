"""What Element asks for at start-up besides sync: third-party protocols, 3PIDs and TURN
credentials (`/voip/turnServer`, from a shared secret or from Cloudflare's TURN service)."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from matrix_helpers import CLIENT_V3, assert_error, assert_ok, call, new_user
from stub_server import StubServer


def test_thirdparty_protocols_empty(base, user):
    assert assert_ok(call(base, "GET", f"{CLIENT_V3}/thirdparty/protocols", token=user["access_token"])) == {}
    assert_error(call(base, "GET", f"{CLIENT_V3}/thirdparty/protocols"), 401, "M_MISSING_TOKEN")


def test_account_3pid_empty(base, user):
    assert assert_ok(call(base, "GET", f"{CLIENT_V3}/account/3pid", token=user["access_token"])) == {"threepids": []}
    assert_error(call(base, "GET", f"{CLIENT_V3}/account/3pid"), 401, "M_MISSING_TOKEN")


def test_turn_server_unconfigured_is_empty(base, user):
    # As Synapse: no TURN configured, an empty object.
    assert assert_ok(call(base, "GET", f"{CLIENT_V3}/voip/turnServer", token=user["access_token"])) == {}
    assert_error(call(base, "GET", f"{CLIENT_V3}/voip/turnServer"), 401, "M_MISSING_TOKEN")


TURN_SECRET = "turn-test-secret"
TURN_URIS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]


def test_turn_server_shared_secret(stratus_factory):
    server = stratus_factory(
        {"TURN_URIS": ",".join(TURN_URIS), "TURN_SHARED_SECRET": TURN_SECRET, "TURN_USER_LIFETIME_SECS": "600"}
    )
    u = new_user(server.base)
    body = assert_ok(call(server.base, "GET", f"{CLIENT_V3}/voip/turnServer", token=u["access_token"]))
    assert body["uris"] == TURN_URIS, body
    assert body["ttl"] == 600, body
    # coturn's use-auth-secret scheme: "<expiry>:<user>" and base64(HMAC-SHA1(secret, username)).
    expiry, _, who = body["username"].partition(":")
    assert who == u["user_id"], body
    assert abs(int(expiry) - (time.time() + 600)) < 60, body
    want = base64.b64encode(hmac.new(TURN_SECRET.encode(), body["username"].encode(), hashlib.sha1).digest()).decode()
    assert body["password"] == want, body


class _CloudflareTurnStandIn:
    """Answers like Cloudflare's `POST /v1/turn/keys/{id}/credentials/generate-ice-servers`
    (documented request and response shapes), on 127.0.0.1: the real service can't be
    reached from here. Records each request so the test checks what the Worker sent."""

    KEY_ID = "0123456789abcdef0123456789abcdef"
    TOKEN = "cf-turn-api-token"

    def __init__(self):
        self.requests: list[tuple[str, dict, dict]] = []

        def respond(method, path, headers, body):
            self.requests.append((path, dict(headers), json.loads(body or b"{}")))
            ok = (
                path == f"/v1/turn/keys/{self.KEY_ID}/credentials/generate-ice-servers"
                and headers.get("Authorization") == f"Bearer {self.TOKEN}"
            )
            out = (
                {
                    "iceServers": [
                        {"urls": ["stun:stun.cloudflare.com:3478"]},
                        {
                            "urls": [
                                "turn:turn.cloudflare.com:3478?transport=udp",
                                "turns:turn.cloudflare.com:443?transport=tcp",
                            ],
                            "username": f"cf-user-{len(self.requests)}",
                            "credential": "cf-credential",
                        },
                    ]
                }
                if ok
                else {"error": "unauthorised"}
            )
            return 201 if ok else 401, {"Content-Type": "application/json"}, json.dumps(out).encode()

        self.server = StubServer(respond, methods=("POST",))
        self.url = f"{self.server.url}/v1"

    def close(self):
        self.server.close()


@pytest.fixture(scope="module")
def cloudflare():
    s = _CloudflareTurnStandIn()
    yield s
    s.close()


def test_turn_server_cloudflare(stratus_factory, cloudflare):
    server = stratus_factory(
        {
            "CLOUDFLARE_TURN_KEY_ID": cloudflare.KEY_ID,
            "CLOUDFLARE_TURN_API_TOKEN": cloudflare.TOKEN,
            "CLOUDFLARE_TURN_API_URL": cloudflare.url,
            "TURN_USER_LIFETIME_SECS": "86400",
        }
    )
    u = new_user(server.base)
    body = assert_ok(call(server.base, "GET", f"{CLIENT_V3}/voip/turnServer", token=u["access_token"]))
    assert body == {
        "username": "cf-user-1",
        "password": "cf-credential",
        "uris": ["turn:turn.cloudflare.com:3478?transport=udp", "turns:turn.cloudflare.com:443?transport=tcp"],
        "ttl": 86400,
    }, body
    path, headers, sent = cloudflare.requests[0]
    assert sent == {"ttl": 86400}, sent
    # Credentials are reused on the isolate for half their lifetime: a second user's call
    # costs no further request to Cloudflare.
    u2 = new_user(server.base)
    again = assert_ok(call(server.base, "GET", f"{CLIENT_V3}/voip/turnServer", token=u2["access_token"]))
    assert again["username"] == "cf-user-1", again
    assert len(cloudflare.requests) == 1, cloudflare.requests


def test_turn_server_cloudflare_refusal_is_empty(stratus_factory, cloudflare):
    server = stratus_factory(
        {
            "CLOUDFLARE_TURN_KEY_ID": cloudflare.KEY_ID,
            "CLOUDFLARE_TURN_API_TOKEN": "wrong-token",
            "CLOUDFLARE_TURN_API_URL": cloudflare.url,
        }
    )
    u = new_user(server.base)
    # A refused key leaves calls without a relay rather than failing the client.
    assert assert_ok(call(server.base, "GET", f"{CLIENT_V3}/voip/turnServer", token=u["access_token"])) == {}
