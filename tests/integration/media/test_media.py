"""Media on R2 (issue 6): upload, authenticated download, thumbnails, URL previews.

Spec v1.19: client-server-api, "Content repository" (authed-content-repo.yaml and
content-repo.yaml).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import sqlite3
import time
import zlib
from urllib.parse import quote

import pytest
import requests
from PIL import Image

from local_state import sqlite_with_table
from matrix_helpers import (
    HTTP_TIMEOUT,
    admin_register_raw,
    assert_error,
    assert_ok,
    auth,
    describe,
    new_user,
    unique_username,
)
from stub_server import StubServer

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
V1 = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"


# --------------------------------------------------------------------------- helpers


def upload_raw(base, token, data, content_type="application/octet-stream", filename=None, path=UPLOAD, method="POST"):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers.update(auth(token))
    params = {"filename": filename} if filename is not None else None
    return requests.request(method, base + path, data=data, headers=headers, params=params, timeout=120)


def upload(base, token, data, content_type="application/octet-stream", filename=None):
    """Uploads and returns (server_name, media_id)."""
    body = assert_ok(upload_raw(base, token, data, content_type, filename))
    uri = body["content_uri"]
    assert uri.startswith("mxc://"), body
    server, media_id = uri[len("mxc://") :].split("/", 1)
    return server, media_id


def download(base, token, server, media_id, filename=None, params=None):
    path = f"{V1}/download/{quote(server, safe='')}/{quote(media_id, safe='')}"
    if filename is not None:
        path += "/" + quote(filename, safe="")
    headers = auth(token) if token else {}
    return requests.get(base + path, headers=headers, params=params, timeout=120)


def thumbnail(base, token, server, media_id, width, height, method=None, prefix=V1):
    params = {"width": width, "height": height}
    if method:
        params["method"] = method
    headers = auth(token) if token else {}
    return requests.get(
        f"{base}{prefix}/thumbnail/{quote(server, safe='')}/{media_id}", headers=headers, params=params, timeout=120
    )


def assert_safe_headers(r):
    assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers
    csp = r.headers.get("Content-Security-Policy", "")
    assert csp.startswith("sandbox"), r.headers
    assert "default-src 'none'" in csp, r.headers
    assert r.headers.get("Cross-Origin-Resource-Policy") == "cross-origin", r.headers


def image_bytes(fmt, size=(400, 300), frames=1):
    """A test image: a gradient, so resizing has something to do."""
    w, h = size
    imgs = []
    for f in range(frames):
        img = Image.new("RGB", size)
        px = img.load()
        for x in range(w):
            for y in range(h):
                px[x, y] = ((x * 255) // w, (y * 255) // h, 200 if f == 0 else 20)
        imgs.append(img)
    out = io.BytesIO()
    if fmt == "GIF" and frames > 1:
        imgs[0].save(out, format="GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    elif fmt == "WEBP":
        imgs[0].save(out, format="WEBP", lossless=True)
    else:
        imgs[0].save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def alice(base):
    return new_user(base, prefix="media")


@pytest.fixture(scope="module")
def bob(base):
    return new_user(base, prefix="media")


# --------------------------------------------------------------------------- config and auth


def test_config_reports_the_upload_limit(base, alice):
    body = assert_ok(requests.get(f"{base}{V1}/config", headers=auth(alice["access_token"]), timeout=HTTP_TIMEOUT))
    assert body["m.upload.size"] == 50 * 1024 * 1024, body


def test_auth_required_on_v1_endpoints(base, alice):
    server, media_id = upload(base, alice["access_token"], b"secret bytes", "text/plain")
    for path, params in [
        (f"{V1}/download/{server}/{media_id}", None),
        (f"{V1}/download/{server}/{media_id}/name.txt", None),
        (f"{V1}/thumbnail/{server}/{media_id}", {"width": 32, "height": 32}),
        (f"{V1}/config", None),
        (f"{V1}/preview_url", {"url": "https://example.org/"}),
    ]:
        r = requests.get(base + path, params=params, timeout=HTTP_TIMEOUT)
        assert_error(r, 401, "M_MISSING_TOKEN")
        assert b"secret bytes" not in r.content
        r = requests.get(base + path, params=params, headers=auth("not-a-token"), timeout=HTTP_TIMEOUT)
        assert_error(r, 401, "M_UNKNOWN_TOKEN")
    assert_error(upload_raw(base, None, b"x"), 401, "M_MISSING_TOKEN")
    assert_error(requests.post(base + CREATE, timeout=HTTP_TIMEOUT), 401, "M_MISSING_TOKEN")
    # Another user of the server may download (authenticated media is not per-user).
    other = new_user(base, prefix="media")
    r = download(base, other["access_token"], server, media_id)
    assert r.status_code == 200 and r.content == b"secret bytes", describe(r)


# --------------------------------------------------------------------------- round trips


def test_upload_download_round_trip(base, server_name, alice):
    data = os.urandom(300_000)
    server, media_id = upload(base, alice["access_token"], data, "application/pdf", "report 2024.pdf")
    assert server == server_name
    r = download(base, alice["access_token"], server, media_id)
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"] == 'attachment; filename="report 2024.pdf"'
    assert_safe_headers(r)
    # The file name in the path overrides the stored one.
    r = download(base, alice["access_token"], server, media_id, filename="other.pdf")
    assert r.status_code == 200 and r.content == data, describe(r)
    assert r.headers["Content-Disposition"] == 'attachment; filename="other.pdf"'


def test_inline_types_and_no_filename(base, alice):
    png = image_bytes("PNG", (20, 10))
    server, media_id = upload(base, alice["access_token"], png, "image/png")
    r = download(base, alice["access_token"], server, media_id)
    assert r.status_code == 200 and r.content == png, describe(r)
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"] == "inline"
    assert_safe_headers(r)
    # No Content-Type at all: application/octet-stream.
    r = requests.post(base + UPLOAD, data=b"raw", headers=auth(alice["access_token"]), timeout=HTTP_TIMEOUT)
    uri = assert_ok(r)["content_uri"]
    r = download(base, alice["access_token"], *uri[6:].split("/"))
    assert r.content == b"raw"
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == "attachment"


def test_head_request(base, alice):
    data = os.urandom(1234)
    server, media_id = upload(base, alice["access_token"], data, "image/png")
    r = requests.head(f"{base}{V1}/download/{server}/{media_id}", headers=auth(alice["access_token"]), timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, describe(r)
    assert r.content == b""
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Length"] == "1234"
    assert_safe_headers(r)


def test_range_requests(base, alice):
    tok = alice["access_token"]
    data = os.urandom(100_000)
    server, media_id = upload(base, tok, data, "video/mp4")
    url = f"{base}{V1}/download/{server}/{media_id}"

    def get(rng):
        return requests.get(url, headers={**auth(tok), "Range": rng}, timeout=HTTP_TIMEOUT)

    r = get("bytes=10-19")
    assert r.status_code == 206, describe(r)
    assert r.content == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/100000"
    assert r.headers["Content-Length"] == "10"
    assert_safe_headers(r)
    r = get("bytes=99990-")
    assert r.status_code == 206 and r.content == data[99990:], describe(r)
    r = get("bytes=-5")
    assert r.status_code == 206 and r.content == data[-5:], describe(r)
    r = get("bytes=100000-")
    assert r.status_code == 416, describe(r)
    assert r.headers["Content-Range"] == "bytes */100000"
    # Several ranges or nonsense: the whole content.
    for rng in ["bytes=0-1,5-6", "bytes=9-3", "pages=1-2"]:
        r = get(rng)
        assert r.status_code == 200 and r.content == data, (rng, describe(r))
    assert requests.get(url, headers=auth(tok), timeout=HTTP_TIMEOUT).headers["Accept-Ranges"] == "bytes"


def test_empty_upload(base, alice):
    server, media_id = upload(base, alice["access_token"], b"", "text/plain")
    r = download(base, alice["access_token"], server, media_id)
    assert r.status_code == 200 and r.content == b"", describe(r)


def test_large_streamed_upload_round_trip(stratus, alice, bob):
    """20 MiB: past one R2 part (8 MiB), so the multipart + copy path is used; the same
    bytes again are deduplicated on that path too, and no temporary object is left."""
    base = stratus.base
    data = os.urandom(20 * 1024 * 1024 + 123)
    digest = hashlib.sha256(data).hexdigest()
    server, media_id = upload(base, alice["access_token"], data, "video/mp4", "big.mp4")
    r = download(base, alice["access_token"], server, media_id)
    assert r.status_code == 200, describe(r)
    assert hashlib.sha256(r.content).hexdigest() == digest
    assert len(r.content) == len(data)
    assert r.headers["Content-Disposition"] == 'inline; filename="big.mp4"'
    server2, media_id2 = upload(base, bob["access_token"], data, "application/octet-stream")
    assert media_id2 != media_id
    r = download(base, bob["access_token"], server2, media_id2)
    assert hashlib.sha256(r.content).hexdigest() == digest
    keys = r2_keys(stratus)
    if keys is not None:
        assert keys.count(f"sha256/{digest}") == 1, keys
        assert not any(k.startswith("tmp/") for k in keys), keys


def test_chunked_upload_without_content_length(base, alice):
    data = os.urandom(9 * 1024 * 1024 + 7)

    def gen():
        for i in range(0, len(data), 256 * 1024):
            yield data[i : i + 256 * 1024]

    r = requests.post(
        base + UPLOAD,
        data=gen(),
        headers={**auth(alice["access_token"]), "Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert "Content-Length" not in r.request.headers
    uri = assert_ok(r)["content_uri"]
    r = download(base, alice["access_token"], *uri[6:].split("/"))
    assert r.status_code == 200 and r.content == data, describe(r)


def r2_keys(stratus) -> list[str] | None:
    """Object keys in the local R2 bucket."""
    dbs = sqlite_with_table(stratus, "_mf_objects", kind="r2")
    if dbs is None:
        return None
    keys: list[str] = []
    for db in dbs:
        con = sqlite3.connect(db)
        try:
            keys += [k for (k,) in con.execute("SELECT key FROM _mf_objects")]
        finally:
            con.close()
    return keys


def test_deduplication(stratus, alice, bob):
    base = stratus.base
    data = os.urandom(50_000)
    digest = hashlib.sha256(data).hexdigest()
    s1, id1 = upload(base, alice["access_token"], data, "application/octet-stream", "a.bin")
    s2, id2 = upload(base, bob["access_token"], data, "text/plain", "b.txt")
    assert id1 != id2
    r1 = download(base, alice["access_token"], s1, id1)
    r2 = download(base, alice["access_token"], s2, id2)
    assert r1.content == data and r2.content == data
    # Per-ID metadata survives sharing the bytes.
    assert r1.headers["Content-Type"] == "application/octet-stream"
    assert r2.headers["Content-Type"] == "text/plain"
    assert r2.headers["Content-Disposition"] == 'inline; filename="b.txt"'
    keys = r2_keys(stratus)
    if keys is None:
        pytest.skip("R2 storage not inspectable on an external server")
    assert keys.count(f"sha256/{digest}") == 1, keys
    assert not any(k.startswith("tmp/") for k in keys), keys


# --------------------------------------------------------------------------- create then upload


def test_create_then_upload(base, alice, bob):
    tok = alice["access_token"]
    body = assert_ok(requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    server, media_id = body["content_uri"][6:].split("/")
    assert isinstance(body["unused_expires_at"], int) and body["unused_expires_at"] > 0
    # Not uploaded yet: 504 M_NOT_YET_UPLOADED after timeout_ms.
    assert_error(download(base, tok, server, media_id, params={"timeout_ms": 300}), 504, "M_NOT_YET_UPLOADED")
    put = f"{UPLOAD}/{server}/{media_id}"
    # Another user may not fill it.
    assert_error(upload_raw(base, bob["access_token"], b"hijack", path=put, method="PUT"), 403, "M_FORBIDDEN")
    data = os.urandom(10_000)
    r = upload_raw(base, tok, data, "application/zip", "x.zip", path=put, method="PUT")
    assert assert_ok(r) == {}
    assert_error(upload_raw(base, tok, b"again", path=put, method="PUT"), 409, "M_CANNOT_OVERWRITE_MEDIA")
    r = download(base, tok, server, media_id)
    assert r.status_code == 200 and r.content == data, describe(r)
    assert r.headers["Content-Disposition"] == 'attachment; filename="x.zip"'
    assert_error(upload_raw(base, tok, b"x", path=f"{UPLOAD}/{server}/NOSUCHMEDIA", method="PUT"), 404, "M_NOT_FOUND")


def test_unknown_and_malformed_media(base, server_name, alice):
    tok = alice["access_token"]
    assert_error(download(base, tok, server_name, "doesnotexist"), 404, "M_NOT_FOUND")
    # Remote media is fetched over federation (tests/integration/federation/test_media_fed.py):
    # a server that cannot be reached is a bad gateway; a name that is no server name, 404.
    assert_error(download(base, tok, "other.example.org", "abc"), 502, "M_UNKNOWN")
    assert_error(download(base, tok, "not a server", "abc"), 404, "M_NOT_FOUND")
    r = requests.get(f"{base}{V1}/download/{server_name}/..%2F..%2Fetc%2Fpasswd", headers=auth(tok), timeout=HTTP_TIMEOUT)
    assert_error(r, 404, "M_NOT_FOUND")


# --------------------------------------------------------------------------- size limit

SMALL = {
    "MAX_UPLOAD_BYTES": "1000",
    "MAX_PENDING_UPLOADS": "2",
    "UNUSED_MEDIA_LIFETIME_SECS": "2",
    "MAX_THUMBNAIL_SOURCE_BYTES": "600",
}


@pytest.fixture(scope="module")
def small(stratus_factory):
    server = stratus_factory(SMALL)
    return server, new_user(server.base, prefix="small")


def test_oversize_uploads_refused(small):
    server, u = small
    base, tok = server.base, u["access_token"]
    body = assert_ok(requests.get(f"{base}{V1}/config", headers=auth(tok), timeout=HTTP_TIMEOUT))
    assert body["m.upload.size"] == 1000
    # Exactly the limit is fine.
    sn, mid = upload(base, tok, b"a" * 1000)
    assert download(base, tok, sn, mid).content == b"a" * 1000
    # One byte more, with Content-Length.
    assert_error(upload_raw(base, tok, b"a" * 1001), 413, "M_TOO_LARGE")
    # Chunked, without Content-Length: counted as it arrives.

    def gen():
        for _ in range(10):
            yield b"b" * 500

    r = requests.post(base + UPLOAD, data=gen(), headers={**auth(tok), "Content-Type": "text/plain"}, timeout=60)
    assert "Content-Length" not in r.request.headers
    assert_error(r, 413, "M_TOO_LARGE")
    # A chunked body under the limit passes.
    r = requests.post(base + UPLOAD, data=iter([b"c" * 400, b"d" * 400]), headers=auth(tok), timeout=60)
    uri = assert_ok(r)["content_uri"]
    assert download(base, tok, *uri[6:].split("/")).content == b"c" * 400 + b"d" * 400
    # Create-then-upload obeys the limit too.
    created = assert_ok(requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    s, m = created["content_uri"][6:].split("/")
    assert_error(upload_raw(base, tok, b"e" * 5000, path=f"{UPLOAD}/{s}/{m}", method="PUT"), 413, "M_TOO_LARGE")


def declare_and_stall(base: str, method: str, path: str, token: str, declared: int) -> tuple[int, dict, float]:
    """Sends headers declaring `declared` body bytes, then only a few, and waits for the
    answer without ever completing the body. Returns (status, JSON body, seconds taken)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        start = time.monotonic()
        conn.putrequest(method, path)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(declared))
        conn.endheaders(b"abc")
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}"), time.monotonic() - start
    finally:
        conn.close()


@pytest.fixture(scope="module")
def undrained(stratus_factory):
    """A small-limit instance without wrangler dev's request-body draining: in dev, wrangler
    wraps the Worker in a middleware (ensure-req-body-drained) that reads every unread
    request body to its end before the response leaves, so an early answer waits for the
    whole upload there. Production has no such middleware; this instance behaves like it."""
    return stratus_factory({"MAX_UPLOAD_BYTES": "1000"}, {"WRANGLER_DISABLE_REQUEST_BODY_DRAINING": "1"})


@pytest.mark.parametrize("declared", [1001, 10**12])
def test_declared_oversize_upload_refused_before_the_body(undrained, declared):
    """A `Content-Length` over MAX_UPLOAD_BYTES is 413 at once: the Worker does not wait for
    a body it will refuse (spec: content-repo.yaml `uploadContent`, 413 `M_TOO_LARGE`)."""
    server = undrained
    tok = new_user(server.base, prefix="big")["access_token"]
    status, body, took = declare_and_stall(server.base, "POST", UPLOAD, tok, declared)
    assert (status, body.get("errcode")) == (413, "M_TOO_LARGE"), body
    assert took < 5, took
    created = assert_ok(requests.post(server.base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    s, m = created["content_uri"][6:].split("/")
    status, body, took = declare_and_stall(server.base, "PUT", f"{UPLOAD}/{s}/{m}", tok, declared)
    assert (status, body.get("errcode")) == (413, "M_TOO_LARGE"), body
    assert took < 5, took


def test_pending_uploads_are_limited_and_expire(small):
    server, _ = small
    base = server.base
    u = new_user(base, prefix="pend")
    tok = u["access_token"]
    first = assert_ok(requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    assert_ok(requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    r = requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT)
    body = assert_error(r, 429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] > 0
    # Another user is not affected.
    other = new_user(base, prefix="pend")
    assert_ok(requests.post(base + CREATE, headers=auth(other["access_token"]), json={}, timeout=HTTP_TIMEOUT))
    # UNUSED_MEDIA_LIFETIME_SECS=2: after that the IDs are dead and no longer count.
    time.sleep(2.5)
    s, m = first["content_uri"][6:].split("/")
    assert_error(upload_raw(base, tok, b"late", path=f"{UPLOAD}/{s}/{m}", method="PUT"), 404, "M_NOT_FOUND")
    assert_error(download(base, tok, s, m, params={"timeout_ms": 100}), 404, "M_NOT_FOUND")
    again = assert_ok(requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    s, m = again["content_uri"][6:].split("/")
    assert assert_ok(upload_raw(base, tok, b"on time", path=f"{UPLOAD}/{s}/{m}", method="PUT")) == {}
    assert download(base, tok, s, m).content == b"on time"


# --------------------------------------------------------------------------- safe serving


def test_hostile_file_names_and_types(base, alice):
    tok = alice["access_token"]
    html = b"<script>alert(document.cookie)</script>"
    evil_name = 'evil"; filename="x.png"\r\nSet-Cookie: session=stolen\r\n.html'
    server, media_id = upload(base, tok, html, "text/html", evil_name)
    r = download(base, tok, server, media_id)
    assert r.status_code == 200 and r.content == html, describe(r)
    cd = r.headers["Content-Disposition"]
    assert cd.startswith("attachment"), cd
    assert "\r" not in cd and "\n" not in cd
    assert cd.count('"') == 2, cd  # one quoted filename, no injected second one
    assert "Set-Cookie" not in r.headers
    assert r.headers["Content-Type"] == "text/html"
    assert_safe_headers(r)
    # A file name override with encoded CR/LF in the path.
    r = download(base, tok, server, media_id, filename="a\r\nX-Injected: 1.txt")
    assert r.status_code == 200, describe(r)
    assert "X-Injected" not in r.headers
    assert "\n" not in r.headers["Content-Disposition"]
    # Unicode names use RFC 8187 encoding.
    server2, id2 = upload(base, tok, b"hi", "text/plain", "résumé.txt")
    r = download(base, tok, server2, id2)
    assert r.headers["Content-Disposition"] == "inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
    # Script-capable types are attachments whatever the name says.
    for ctype in ["image/svg+xml", "application/javascript", "application/xhtml+xml", "text/xml"]:
        s, m = upload(base, tok, b"<svg onload=alert(1)/>", ctype, "pic.png")
        r = download(base, tok, s, m)
        assert r.headers["Content-Type"] == ctype
        assert r.headers["Content-Disposition"].startswith("attachment"), (ctype, r.headers)
        assert_safe_headers(r)
    # Malformed content types are served as octet-stream.
    s, m = upload(base, tok, b"x", "not a type")
    r = download(base, tok, s, m)
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == "attachment"


# --------------------------------------------------------------------------- legacy endpoints


def test_legacy_download_frozen_by_default(base, alice):
    data = b"new media after the freeze"
    server, media_id = upload(base, alice["access_token"], data, "text/plain")
    r = requests.get(f"{base}{LEGACY}/download/{server}/{media_id}", timeout=HTTP_TIMEOUT)
    assert_error(r, 404, "M_NOT_FOUND")
    r = requests.get(f"{base}{LEGACY}/thumbnail/{server}/{media_id}?width=1&height=1", timeout=HTTP_TIMEOUT)
    assert_error(r, 404, "M_NOT_FOUND")
    # The authenticated endpoint serves it.
    assert download(base, alice["access_token"], server, media_id).content == data


def test_legacy_download_of_pending_media_is_404_at_once(base, server_name, alice):
    """With the freeze, the unauthenticated endpoints answer a created-but-not-uploaded
    media ID like an unknown one, at once: no 20 s wait, nothing that says it exists."""
    tok = alice["access_token"]
    created = assert_ok(requests.post(base + CREATE, headers=auth(tok), json={}, timeout=HTTP_TIMEOUT))
    sn, mid = created["content_uri"][6:].split("/")
    unknown = "A" * 24
    for path in ["download/{}/{}", "download/{}/{}/f.txt", "thumbnail/{}/{}?width=8&height=8"]:
        start = time.monotonic()
        r = requests.get(f"{base}{LEGACY}/" + path.format(sn, mid), timeout=HTTP_TIMEOUT)
        took = time.monotonic() - start
        body = assert_error(r, 404, "M_NOT_FOUND")
        assert took < 3, (path, took)
        other = requests.get(f"{base}{LEGACY}/" + path.format(sn, unknown), timeout=HTTP_TIMEOUT)
        assert other.status_code == 404 and other.json() == body, (body, other.text)


def test_legacy_download_served_when_configured(stratus_factory):
    server = stratus_factory({"LEGACY_MEDIA": "serve"})
    u = new_user(server.base, prefix="legacy")
    data = os.urandom(4096)
    sn, mid = upload(server.base, u["access_token"], data, "application/octet-stream", "f.bin")
    r = requests.get(f"{server.base}{LEGACY}/download/{sn}/{mid}", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.content == data, describe(r)
    assert r.headers["Content-Disposition"] == 'attachment; filename="f.bin"'
    assert_safe_headers(r)
    r = requests.get(f"{server.base}{LEGACY}/download/{sn}/{mid}/g.bin", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Disposition"] == 'attachment; filename="g.bin"'
    png = image_bytes("PNG")
    sn, mid = upload(server.base, u["access_token"], png, "image/png")
    r = thumbnail(server.base, None, sn, mid, 96, 96, "crop", prefix=LEGACY)
    assert r.status_code == 200, describe(r)
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)


# --------------------------------------------------------------------------- thumbnails

FORMATS = [
    ("PNG", "image/png", "image/png"),
    ("JPEG", "image/jpeg", "image/jpeg"),
    ("GIF", "image/gif", "image/png"),
    ("WEBP", "image/webp", "image/png"),
]


@pytest.mark.parametrize("fmt,ctype,thumb_type", FORMATS, ids=[f[0] for f in FORMATS])
def test_thumbnails_of_each_format(base, alice, fmt, ctype, thumb_type):
    tok = alice["access_token"]
    data = image_bytes(fmt, (400, 300), frames=2 if fmt == "GIF" else 1)
    server, media_id = upload(base, tok, data, ctype, f"pic.{fmt.lower()}")
    cases = [
        ((96, 96, "crop"), (96, 96)),
        ((32, 32, "crop"), (32, 32)),
        ((200, 50, "crop"), (200, 50)),
        ((100, 100, "scale"), (134, 100)),
        ((320, 240, "scale"), (320, 240)),
        ((200, 100, None), (200, 150)),  # method defaults to scale
    ]
    for (w, h, method), expected in cases:
        for attempt in ("generated", "cached"):
            r = thumbnail(base, tok, server, media_id, w, h, method)
            assert r.status_code == 200, (attempt, describe(r))
            assert r.headers["Content-Type"] == thumb_type, (attempt, r.headers)
            assert r.headers["Content-Disposition"].startswith("inline"), r.headers
            assert_safe_headers(r)
            img = Image.open(io.BytesIO(r.content))
            assert img.size == expected, (fmt, w, h, method, attempt, img.size)
            assert img.format == thumb_type.split("/")[1].upper()
    if fmt == "GIF":
        # The first frame (blue channel 200), not the second (20).
        img = Image.open(io.BytesIO(thumbnail(base, tok, server, media_id, 96, 96, "crop").content)).convert("RGB")
        assert img.getpixel((48, 48))[2] > 150
    # Larger than the original: the original itself.
    for w, h, method in [(800, 600, "scale"), (400, 300, "crop"), (1000, 10, "crop")]:
        r = thumbnail(base, tok, server, media_id, w, h, method)
        assert r.status_code == 200, describe(r)
        assert r.content == data
        assert r.headers["Content-Type"] == ctype
        assert Image.open(io.BytesIO(r.content)).size == (400, 300)


def test_thumbnail_errors(base, alice):
    tok = alice["access_token"]
    server, media_id = upload(base, tok, b"just text", "text/plain")
    assert_error(thumbnail(base, tok, server, media_id, 32, 32, "crop"), 400, "M_UNKNOWN")
    png_server, png_id = upload(base, tok, image_bytes("PNG", (50, 50)), "image/png")
    assert_error(thumbnail(base, tok, png_server, png_id, 32, 32, "zoom"), 400, "M_INVALID_PARAM")
    assert_error(thumbnail(base, tok, png_server, png_id, -1, 32, "crop"), 400, "M_INVALID_PARAM")
    assert_error(thumbnail(base, tok, png_server, png_id, "x", 32, "crop"), 400, "M_INVALID_PARAM")
    r = requests.get(f"{base}{V1}/thumbnail/{png_server}/{png_id}?width=10", headers=auth(tok), timeout=HTTP_TIMEOUT)
    assert_error(r, 400, "M_MISSING_PARAM")
    # Claims to be a PNG but is not one.
    s, m = upload(base, tok, b"\x89PNG garbage", "image/png")
    assert_error(thumbnail(base, tok, s, m, 32, 32, "crop"), 400, "M_UNKNOWN")
    # A valid header claiming 12000x12000 pixels (a decompression bomb): refused before decoding.
    s, m = upload(base, tok, png_claiming(12000, 12000), "image/png")
    assert_error(thumbnail(base, tok, s, m, 32, 32, "crop"), 413, "M_TOO_LARGE")


def noise_png(width, height):
    """A PNG of random pixels (does not compress: its size is predictable)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width, height):
    """A small PNG whose IHDR (with a correct CRC) claims width x height."""
    png = bytearray(image_bytes("PNG", (2, 2)))
    png[16:20] = width.to_bytes(4, "big")
    png[20:24] = height.to_bytes(4, "big")
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    return bytes(png)


def test_thumbnail_source_size_limit(small):
    server, u = small
    # MAX_THUMBNAIL_SOURCE_BYTES=600 there: a larger original is not thumbnailed.
    big = noise_png(16, 16)
    assert 600 < len(big) <= 1000, len(big)
    s, m = upload(server.base, u["access_token"], big, "image/png")
    assert_error(thumbnail(server.base, u["access_token"], s, m, 8, 8, "crop"), 413, "M_TOO_LARGE")
    tiny = noise_png(12, 12)
    assert len(tiny) <= 600, len(tiny)
    s, m = upload(server.base, u["access_token"], tiny, "image/png")
    r = thumbnail(server.base, u["access_token"], s, m, 8, 8, "crop")
    assert r.status_code == 200, describe(r)
    assert Image.open(io.BytesIO(r.content)).size == (8, 8)


# --------------------------------------------------------------------------- quarantine


def test_quarantined_media_is_not_served(stratus, alice, bob):
    base = stratus.base
    if not stratus.shared_secret:
        pytest.skip("no shared secret")
    name = unique_username("madmin")
    admin = assert_ok(admin_register_raw(base, stratus.shared_secret, name, admin=True))
    server, media_id = upload(base, alice["access_token"], image_bytes("PNG", (100, 100)), "image/png")
    assert download(base, bob["access_token"], server, media_id).status_code == 200
    path = f"/_synapse/admin/v1/media/quarantine/{server}/{media_id}"
    r = requests.post(base + path, headers=auth(bob["access_token"]), json={}, timeout=HTTP_TIMEOUT)
    assert_error(r, 403, "M_FORBIDDEN")
    assert_ok(requests.post(base + path, headers=auth(admin["access_token"]), json={}, timeout=HTTP_TIMEOUT))
    assert_error(download(base, bob["access_token"], server, media_id), 404, "M_NOT_FOUND")
    assert_error(thumbnail(base, bob["access_token"], server, media_id, 32, 32, "crop"), 404, "M_NOT_FOUND")
    r = requests.post(base + f"/_synapse/admin/v1/media/quarantine/{server}/NOPE", headers=auth(admin["access_token"]), timeout=HTTP_TIMEOUT)
    assert_error(r, 404, "M_NOT_FOUND")


# --------------------------------------------------------------------------- URL previews


def preview(base, token, url):
    return requests.get(f"{base}{V1}/preview_url", params={"url": url}, headers=auth(token), timeout=60)


class _Site:
    """A tiny HTTP server on 127.0.0.1 serving pages and redirects for the preview tests."""

    def __init__(self):
        self.pages: dict[str, tuple[int, dict, bytes]] = {}
        self.hits: list[str] = []

        def respond(method, path, headers, body):
            self.hits.append(path)
            return self.pages.get(path, (404, {}, b"not found"))

        self.server = StubServer(respond, methods=("GET",))
        self.port = self.server.port
        self.url = self.server.url

    def close(self):
        self.server.close()


@pytest.fixture(scope="module")
def site():
    s = _Site()
    yield s
    s.close()


def test_preview_refuses_private_addresses(base, alice, site):
    tok = alice["access_token"]
    site.pages["/"] = (200, {"Content-Type": "text/html"}, b"<title>loopback secret</title>")
    for url in [
        site.url + "/",
        f"http://localhost:{site.port}/",
        f"http://[::1]:{site.port}/",
        f"http://2130706433:{site.port}/",
        f"http://0x7f.0.0.1:{site.port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
        "ftp://example.org/",
    ]:
        r = preview(base, tok, url)
        assert_error(r, 403, "M_FORBIDDEN")
        assert "loopback secret" not in r.text
    assert site.hits == [], "the server fetched a refused URL"
    assert_error(preview(base, tok, "not a url"), 400, "M_INVALID_PARAM")


ALLOW = {"URL_PREVIEW_IP_ALLOWLIST": "127.0.0.1"}


def test_preview_reads_opengraph_and_refuses_redirects_to_loopback(stratus_factory, site):
    """With 127.0.0.1 allow-listed (as an operator could), a real fetch: OpenGraph, the image
    stored as media, the KV cache, and redirects to other loopback names refused."""
    server = stratus_factory(ALLOW)
    u = new_user(server.base, prefix="pv")
    tok = u["access_token"]
    logo = image_bytes("PNG", (48, 32))
    site.pages["/logo.png"] = (200, {"Content-Type": "image/png"}, logo)
    site.pages["/page"] = (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        b"""<html><head><title>ignored</title>
        <meta property="og:title" content="Stratus &amp; R2">
        <meta property="og:description" content="Media on the edge">
        <meta property="og:image" content="/logo.png">
        </head><body>hello</body></html>""",
    )
    body = assert_ok(preview(server.base, tok, site.url + "/page"))
    assert body["og:title"] == "Stratus & R2", body
    assert body["og:description"] == "Media on the edge", body
    assert body["og:image"].startswith("mxc://"), body
    assert body["matrix:image:size"] == len(logo), body
    assert (body["og:image:width"], body["og:image:height"]) == (48, 32), body
    s, m = body["og:image"][6:].split("/")
    assert download(server.base, tok, s, m).content == logo
    # Cached: a changed page is not fetched again within the hour.
    hits = len(site.hits)
    site.pages["/page"] = (200, {"Content-Type": "text/html"}, b"<title>changed</title>")
    assert assert_ok(preview(server.base, tok, site.url + "/page"))["og:title"] == "Stratus & R2"
    assert len(site.hits) == hits
    # Redirects are followed by hand, and each target is checked.
    site.pages["/hop"] = (302, {"Location": "/page2"}, b"")
    site.pages["/page2"] = (200, {"Content-Type": "text/html"}, b"<title>after a hop</title>")
    assert assert_ok(preview(server.base, tok, site.url + "/hop"))["og:title"] == "after a hop"
    for target in [f"http://127.0.0.2:{site.port}/page2", f"http://localhost:{site.port}/page2", "http://169.254.169.254/"]:
        path = f"/redir-{abs(hash(target))}"
        site.pages[path] = (302, {"Location": target}, b"")
        before = list(site.hits)
        r = preview(server.base, tok, site.url + path)
        assert_error(r, 403, "M_FORBIDDEN")
        assert site.hits[len(before):] == [path], "the redirect target was fetched"
    # A redirect loop ends.
    site.pages["/loop"] = (302, {"Location": "/loop"}, b"")
    r = preview(server.base, tok, site.url + "/loop")
    assert r.status_code >= 400, describe(r)
    assert site.hits.count("/loop") <= 6
    # An og:image on a refused address is not fetched: the preview has no image.
    site.pages["/private-image"] = (
        200,
        {"Content-Type": "text/html"},
        f'<meta property="og:title" content="t"><meta property="og:image" content="http://127.0.0.2:{site.port}/logo.png">'.encode(),
    )
    hits = len(site.hits)
    body = assert_ok(preview(server.base, tok, site.url + "/private-image"))
    assert body == {"og:title": "t"}, body
    assert site.hits[hits:] == ["/private-image"]
    # A page bigger than the cap is cut, not refused: the head still parses.
    site.pages["/huge"] = (200, {"Content-Type": "text/html"}, b"<title>huge</title>" + b"x" * (3 * 1024 * 1024))
    assert assert_ok(preview(server.base, tok, site.url + "/huge"))["og:title"] == "huge"
