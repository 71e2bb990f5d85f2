"""Media across servers (issue 14, Federation II).

Spec: server-server-api, "Content Repository" (`GET /_matrix/federation/v1/media/download/
{mediaId}` and `/thumbnail/{mediaId}`: X-Matrix, `multipart/mixed` of a JSON metadata part and
the media) and client-server-api, "Content repository" (`/_matrix/client/v1/media/download/
{serverName}/{mediaId}`, `/thumbnail/...`).

Stratus fetches other servers' media over the federation endpoints and caches it in R2; Synapse
fetches ours (which proves our multipart answer to a real peer's parser); Stratus↔Stratus2 both
ways; the size limit (`REMOTE_MEDIA_MAX_BYTES`), unknown media, and the X-Matrix requirement.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import quote

import pytest
from PIL import Image

from fed_helpers import HS, StandIn, User, api, ok, register_user
from matrix_helpers import CLIENT_V3, call, describe, qid

V1 = "/_matrix/client/v1/media"
FED = "/_matrix/federation/v1/media"


# --------------------------------------------------------------------------- helpers


def png(w: int, h: int, color=(200, 30, 90)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (w, h), color)
    # Some structure, so a thumbnail is not trivially the same bytes.
    for x in range(w):
        img.putpixel((x, x * h // max(w, 1)), (0, 0, 0))
    img.save(buf, format="PNG")
    return buf.getvalue()


def upload(u: User, data: bytes, content_type: str, filename: str | None = None) -> str:
    params = {"filename": filename} if filename else None
    r = call(u.hs.base, "POST", "/_matrix/media/v3/upload", token=u.token, data=data, headers={"Content-Type": content_type}, params=params)
    uri = ok(r, f"upload on {u.hs}")["content_uri"]
    assert uri.startswith("mxc://"), uri
    return uri


def split_mxc(mxc: str) -> tuple[str, str]:
    server, media_id = mxc[len("mxc://") :].split("/", 1)
    return server, media_id


def download(u: User, mxc: str, legacy: bool = False):
    server, media_id = split_mxc(mxc)
    if legacy:
        return call(u.hs.base, "GET", f"/_matrix/media/v3/download/{quote(server, safe='')}/{quote(media_id, safe='')}")
    return call(u.hs.base, "GET", f"{V1}/download/{quote(server, safe='')}/{quote(media_id, safe='')}", token=u.token)


def thumbnail(u: User, mxc: str, w: int, h: int, method: str = "scale"):
    server, media_id = split_mxc(mxc)
    params = {"width": w, "height": h, "method": method}
    return call(u.hs.base, "GET", f"{V1}/thumbnail/{quote(server, safe='')}/{quote(media_id, safe='')}", token=u.token, params=params)


def assert_same_media(r, data: bytes, content_type: str, what: str) -> None:
    assert r.status_code == 200, f"{what}: {describe(r)}"
    assert r.content == data, f"{what}: {len(r.content)} bytes, expected {len(data)}"
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == content_type, f"{what}: {r.headers.get('Content-Type')}"


def assert_error(r, status: int, errcode: str, what: str) -> None:
    assert r.status_code == status, f"{what}: {describe(r)}"
    assert r.json().get("errcode") == errcode, f"{what}: {describe(r)}"


def image_size(r) -> tuple[int, int]:
    assert r.status_code == 200, describe(r)
    assert r.headers.get("Content-Type", "").startswith("image/"), r.headers
    return Image.open(io.BytesIO(r.content)).size


def parse_multipart(content_type: str, body: bytes) -> list:
    """A third parser (Python's email package) over a federation media answer."""
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart(), content_type
    return list(msg.iter_parts())


# --------------------------------------------------------------------------- Synapse ↔ Stratus


def test_synapse_avatar_through_stratus_then_from_cache(synapse_fed: HS, stratus_fed: HS):
    alice = register_user(synapse_fed, "alice")
    bob = register_user(stratus_fed, "bob")
    data = png(64, 48)
    mxc = upload(alice, data, "image/png", "avatar.png")
    ok(api(alice, "PUT", f"{CLIENT_V3}/profile/{qid(alice.user_id)}/avatar_url", {"avatar_url": mxc}), "set avatar_url")

    # Bob sees the avatar through Stratus (profile over federation), then downloads it.
    profile = ok(api(bob, "GET", f"{CLIENT_V3}/profile/{qid(alice.user_id)}"), "remote profile via Stratus")
    assert profile.get("avatar_url") == mxc, profile
    first = download(bob, mxc)
    assert_same_media(first, data, "image/png", "first download via Stratus")
    assert "avatar.png" in first.headers.get("Content-Disposition", ""), first.headers
    _, media_id = split_mxc(mxc)
    assert f"GET /_matrix/federation/v1/media/download/{media_id}" in synapse_fed.log_tail(400), "Synapse was not asked"

    # With Synapse down, the second download can only come from Stratus's cache.
    synapse_fed.stop_process()
    try:
        again = download(bob, mxc)
        assert_same_media(again, data, "image/png", "second download with Synapse stopped")
        # Something never fetched cannot come from anywhere: not a cache that answers everything.
        missing = download(bob, f"mxc://{synapse_fed.server_name}/neverUploaded{uuid.uuid4().hex[:8]}")
        assert missing.status_code != 200, describe(missing)
    finally:
        synapse_fed.start_process()

    # The deprecated unauthenticated endpoint does not serve remote media (as Synapse with
    # enable_authenticated_media, its default): frozen, even though it is cached.
    assert_error(download(bob, mxc, legacy=True), 404, "M_NOT_FOUND", "legacy download of remote media")


def test_stratus_media_through_synapse(synapse_fed: HS, stratus_fed: HS):
    bob = register_user(stratus_fed, "bob")
    alice = register_user(synapse_fed, "alice")
    data = os.urandom(3000) + b"\r\n--not-a-boundary--\r\n" + os.urandom(100)
    mxc = upload(bob, data, "application/pdf", "report.pdf")
    # Synapse fetches it from our /_matrix/federation/v1/media/download: our multipart answer
    # parsed by Synapse's own parser.
    r = download(alice, mxc)
    assert_same_media(r, data, "application/pdf", "Stratus media via Synapse")
    assert "report.pdf" in r.headers.get("Content-Disposition", ""), r.headers
    # ... from the authenticated federation endpoint, not a fallback to the legacy one.
    _, media_id = split_mxc(mxc)
    log = stratus_fed.log_tail(400)
    assert f"GET /_matrix/federation/v1/media/download/{media_id} 200" in log, log[-3000:]
    assert f"/_matrix/media/v3/download/{quote(stratus_fed.server_name, safe='')}/{media_id}" not in log

    # An image: Synapse thumbnails it (from the original it fetched from us).
    img = png(80, 60)
    mxc_img = upload(bob, img, "image/png")
    w, h = image_size(thumbnail(alice, mxc_img, 32, 32, "scale"))
    assert w <= 80 and h <= 60 and (w, h) != (0, 0)


def test_our_multipart_answer_directly(synapse_fed: HS, stratus_fed: HS):
    """The federation endpoints as a signed peer sees them, parsed by Python's email package."""
    bob = register_user(stratus_fed, "bob", admin=True)
    data = b"hello federation\r\n" * 10
    _, media_id = split_mxc(upload(bob, data, "text/plain", "hello.txt"))
    peer = StandIn(synapse_fed)

    r = peer.request(stratus_fed, "GET", f"{FED}/download/{media_id}")
    assert r.status_code == 200, describe(r)
    ct = r.headers["Content-Type"]
    assert ct.startswith("multipart/mixed; boundary="), ct
    meta, media = parse_multipart(ct, r.content)
    assert meta.get_content_type() == "application/json" and meta.get_payload(decode=True).strip() == b"{}"
    assert media.get_content_type() == "text/plain"
    assert media.get_payload(decode=True) == data
    assert "hello.txt" in media["Content-Disposition"]
    if "Content-Length" in r.headers:  # wrangler dev may re-chunk a stream
        assert int(r.headers["Content-Length"]) == len(r.content)

    img = png(100, 50)
    _, img_id = split_mxc(upload(bob, img, "image/png"))
    r = peer.request(stratus_fed, "GET", f"{FED}/thumbnail/{img_id}?width=20&height=20&method=crop")
    assert r.status_code == 200, describe(r)
    meta, media = parse_multipart(r.headers["Content-Type"], r.content)
    assert media.get_content_type() == "image/png"
    assert Image.open(io.BytesIO(media.get_payload(decode=True))).size == (20, 20)

    # Unknown and quarantined media: 404 M_NOT_FOUND, like the client endpoints.
    assert_error(peer.request(stratus_fed, "GET", f"{FED}/download/nope{uuid.uuid4().hex[:8]}"), 404, "M_NOT_FOUND", "unknown media")
    ok(api(bob, "POST", f"/_synapse/admin/v1/media/quarantine/{quote(stratus_fed.server_name, safe='')}/{img_id}", {}), "quarantine")
    assert_error(peer.request(stratus_fed, "GET", f"{FED}/download/{img_id}"), 404, "M_NOT_FOUND", "quarantined media")
    assert_error(peer.request(stratus_fed, "GET", f"{FED}/thumbnail/{img_id}?width=20&height=20"), 404, "M_NOT_FOUND", "quarantined thumb")


def test_federation_media_requires_x_matrix(stratus_fed: HS):
    bob = register_user(stratus_fed, "bob")
    _, media_id = split_mxc(upload(bob, b"secret", "text/plain"))
    r = call(stratus_fed.fed_base, "GET", f"{FED}/download/{media_id}")
    assert_error(r, 401, "M_UNAUTHORIZED", "download without X-Matrix")
    r = call(stratus_fed.fed_base, "GET", f"{FED}/thumbnail/{media_id}", params={"width": 8, "height": 8})
    assert_error(r, 401, "M_UNAUTHORIZED", "thumbnail without X-Matrix")
    # A user's access token is not a server's signature either.
    r = call(stratus_fed.fed_base, "GET", f"{FED}/download/{media_id}", token=bob.token)
    assert r.status_code == 401, describe(r)


def test_remote_thumbnail_from_synapse(synapse_fed: HS, stratus_fed: HS):
    alice = register_user(synapse_fed, "alice")
    bob = register_user(stratus_fed, "bob")
    mxc = upload(alice, png(120, 90), "image/png")
    w, h = image_size(thumbnail(bob, mxc, 32, 32, "crop"))
    assert (w, h) != (120, 90) and w <= 120 and h <= 90, (w, h)
    # Cached per size: with Synapse down the same size still comes, from the cache.
    synapse_fed.stop_process()
    try:
        assert image_size(thumbnail(bob, mxc, 32, 32, "crop")) == (w, h)
    finally:
        synapse_fed.start_process()


def test_unknown_remote_media_is_404(synapse_fed: HS, stratus_fed: HS, stratus_fed2: HS):
    bob = register_user(stratus_fed, "bob")
    for remote in (synapse_fed, stratus_fed2):
        mxc = f"mxc://{remote.server_name}/unknown{uuid.uuid4().hex[:10]}"
        assert_error(download(bob, mxc), 404, "M_NOT_FOUND", f"unknown media on {remote}")
        assert_error(thumbnail(bob, mxc, 16, 16), 404, "M_NOT_FOUND", f"unknown thumbnail on {remote}")


# --------------------------------------------------------------------------- Stratus ↔ Stratus2


@pytest.mark.parametrize("direction", ["stratus_to_stratus2", "stratus2_to_stratus"])
def test_stratus_to_stratus(direction: str, stratus_fed: HS, stratus_fed2: HS):
    owner_hs, reader_hs = (stratus_fed, stratus_fed2) if direction == "stratus_to_stratus2" else (stratus_fed2, stratus_fed)
    owner = register_user(owner_hs, "owner")
    reader = register_user(reader_hs, "reader")
    data = os.urandom(20_000)
    mxc = upload(owner, data, "application/octet-stream", "blob.bin")
    # Concurrent first requests for one uncached item may each fetch it; all get the bytes and
    # the cache ends consistent (later downloads agree).
    with ThreadPoolExecutor(max_workers=3) as pool:
        for r in pool.map(lambda _: download(reader, mxc), range(3)):
            assert_same_media(r, data, "application/octet-stream", f"{direction} concurrent first download")
    assert_same_media(download(reader, mxc), data, "application/octet-stream", f"{direction} download from the cache")
    # The remote's thumbnail endpoint (Stratus asks Stratus's federation thumbnail).
    mxc_img = upload(owner, png(90, 90), "image/png")
    assert image_size(thumbnail(reader, mxc_img, 30, 30, "scale")) == (30, 30)
    assert image_size(thumbnail(reader, mxc_img, 45, 20, "crop")) == (45, 20)


# --------------------------------------------------------------------------- the size limit


@pytest.fixture(scope="module")
def small(stratus_factory, fed_cert) -> HS:
    """A Stratus (as conftest's instances) that accepts remote media of at most 4000 bytes and
    falls back to the deprecated unauthenticated endpoints."""
    limit = 4000
    from synapse_local import free_port

    port = free_port()
    name = f"127.0.0.1:{port}"
    key = f"ed25519 fed_small {base64.b64encode(os.urandom(32)).decode().rstrip('=')}"
    server = stratus_factory(
        {
            "LOGIN_FAILURES_IP_MAX": "100000",
            "SERVER_NAME": name,
            "PUBLIC_BASEURL": f"https://{name}",
            "SIGNING_KEY": key,
            "REMOTE_MEDIA_MAX_BYTES": str(limit),
            "REMOTE_MEDIA_LEGACY_FALLBACK": "on",
        },
        {"NODE_EXTRA_CA_CERTS": str(fed_cert.ca)},
        https={"key": str(fed_cert.key), "cert": str(fed_cert.cert), "ca": str(fed_cert.ca)},
        port=port,
    )
    return HS(kind="stratus", label="stratus-small", server_name=name, base=server.base, fed_base=server.base,
              shared_secret=server.shared_secret or "", signing_key=key,
              stop_process=server.stop_process, start_process=server.start_process, log_tail=server.log_tail)


def test_remote_media_over_the_limit_is_refused_and_not_cached(small: HS, stratus_fed: HS):
    owner = register_user(stratus_fed, "owner")
    reader = register_user(small, "reader")
    fits = os.urandom(3000)
    assert_same_media(download(reader, upload(owner, fits, "application/octet-stream")), fits, "application/octet-stream", "under the limit")
    big = upload(owner, os.urandom(6000), "application/octet-stream")
    assert_error(download(reader, big), 502, "M_TOO_LARGE", "over the limit")
    # Not cached: asked again, it is refused again (a cached copy would be served).
    assert_error(download(reader, big), 502, "M_TOO_LARGE", "over the limit, again")
    # Thumbnails of remote media are held to the same limit: noise does not compress, and a
    # thumbnail not smaller than the image is the original (over 4000 bytes).
    noise = Image.frombytes("RGB", (48, 48), os.urandom(48 * 48 * 3))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    assert len(buf.getvalue()) > 4000
    big_img = upload(owner, buf.getvalue(), "image/png")
    assert_error(thumbnail(reader, big_img, 96, 96, "scale"), 502, "M_TOO_LARGE", "thumbnail over the limit")


# --------------------------------------------------------------------------- a stand-in remote


class MediaStandIn:
    """A remote server over TLS (the session's certificate, named `127.0.0.1:<port>`) that
    has no federation media endpoints for `old` (404 M_UNRECOGNIZED, as servers before v1.11)
    but serves it on the deprecated `/_matrix/media/v3/download`, and answers `moved` with a
    multipart whose second part is a `Location`."""

    OLD = b"served by the legacy endpoint"
    MOVED = os.urandom(2000)

    def __init__(self, cert):
        import http.server
        import json
        import ssl
        import threading

        stand_in = self
        self.seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stand_in.seen.append(self.path)
                path = self.path.split("?")[0]
                ctype, body, status = "application/json", json.dumps({"errcode": "M_NOT_FOUND", "error": "no"}).encode(), 404
                if path == f"{FED}/download/old":
                    body = json.dumps({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}).encode()
                elif path == f"/_matrix/media/v3/download/{quote(stand_in.name, safe='')}/old":
                    ctype, body, status = "text/plain", MediaStandIn.OLD, 200
                elif path == f"{FED}/download/moved":
                    b = uuid.uuid4().hex
                    ctype, status = f"multipart/mixed; boundary={b}", 200
                    body = (f"--{b}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{b}\r\n"
                            f"Location: https://{stand_in.name}/cdn/moved\r\n\r\n\r\n--{b}--\r\n").encode()
                elif path == "/cdn/moved":
                    ctype, body, status = "application/octet-stream", MediaStandIn.MOVED, 200
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *a) -> None:
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.name = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_legacy_fallback_and_location_redirect(fed_cert, stratus_fed: HS, small: HS):
    remote = MediaStandIn(fed_cert)
    try:
        legacy_path = f"/_matrix/media/v3/download/{quote(remote.name, safe='')}/old?allow_remote=false"
        # Fallback off (the default): 404 M_UNRECOGNIZED from the federation endpoint is "not found".
        bob = register_user(stratus_fed, "bob")
        assert_error(download(bob, f"mxc://{remote.name}/old"), 404, "M_NOT_FOUND", "no fallback by default")
        assert not any(p.startswith("/_matrix/media/v3/") for p in remote.seen), remote.seen
        # REMOTE_MEDIA_LEGACY_FALLBACK=on: asked the deprecated endpoint, with allow_remote=false.
        carol = register_user(small, "carol")
        assert_same_media(download(carol, f"mxc://{remote.name}/old"), MediaStandIn.OLD, "text/plain", "legacy fallback")
        assert legacy_path in remote.seen, remote.seen
        # A Location part is followed with a plain GET, and its content cached like any other.
        assert_same_media(download(bob, f"mxc://{remote.name}/moved"), MediaStandIn.MOVED, "application/octet-stream", "redirect")
        assert "/cdn/moved" in remote.seen, remote.seen
    finally:
        remote.close()
    assert_same_media(download(bob, f"mxc://{remote.name}/moved"), MediaStandIn.MOVED, "application/octet-stream", "redirect, cached")
