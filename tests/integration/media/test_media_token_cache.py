"""`POST /upload` serves a token it has seen from the isolate's cache and checks that it still
exists while the body is read, before anything is stored: revocation acts on the very next
upload, on every way out (a refused size included), and a live token's upload round-trips."""

import hashlib
import os

import requests

from matrix_helpers import CLIENT_V3, HTTP_TIMEOUT, assert_ok, assert_unknown_token, auth, call, login, new_user, qid, uia_password

UPLOAD = "/_matrix/media/v3/upload"
V1 = "/_matrix/client/v1/media"


def upload_raw(base, token, data, content_type="application/octet-stream"):
    return requests.post(base + UPLOAD, data=data, headers={**auth(token), "Content-Type": content_type}, timeout=120)


def test_cached_token_upload_round_trips_and_logout_kills_it(base):
    u = new_user(base)
    tok = u["access_token"]
    data = os.urandom(300_000)
    uri = assert_ok(upload_raw(base, tok, data, "image/png"))["content_uri"]  # the token is now cached
    uri2 = assert_ok(upload_raw(base, tok, data, "image/png"))["content_uri"]
    assert uri != uri2
    for u_ in (uri, uri2):
        server, media_id = u_[len("mxc://"):].split("/", 1)
        r = requests.get(f"{base}{V1}/download/{server}/{media_id}", headers=auth(tok), timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
        assert r.headers["Content-Type"] == "image/png"
    assert_ok(call(base, "POST", f"{CLIENT_V3}/logout", {}, token=tok))
    assert_unknown_token(upload_raw(base, tok, data), soft_logout=False)
    # Also on the other way in: a chunked body without Content-Length.
    assert_unknown_token(upload_raw(base, tok, iter([b"chunked ", b"body"])), soft_logout=False)


def test_device_deletion_kills_cached_token_for_uploads(base):
    u = new_user(base)
    other = login(base, u["username"], u["password"])
    assert_ok(upload_raw(base, other["access_token"], b"warm"))
    r = uia_password(base, "DELETE", f"{CLIENT_V3}/devices/{qid(other['device_id'])}", {}, u["access_token"], u["user_id"], u["password"])
    assert_ok(r)
    assert_unknown_token(upload_raw(base, other["access_token"], b"after"), soft_logout=False)
    assert_ok(upload_raw(base, u["access_token"], b"still fine"))
