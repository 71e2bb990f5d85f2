"""Federation transport and trust against a real ``wrangler dev`` Stratus and a Python
stand-in homeserver (transport_origin.py) on 127.0.0.1.

Outbound: asking Stratus, as a notary, for the stand-in's keys (``POST /_matrix/key/v2/query``)
makes Stratus resolve the stand-in's server name (``127.0.0.1:PORT``: the explicit-port rule),
sign a request with X-Matrix and fetch ``/_matrix/key/v2/server``; the stand-in checks that
signature with signedjson, and we check the key document Stratus returns (the stand-in's own
signature and Stratus's countersignature). Both transports run: ``fetch()`` and the TCP socket
that a deployed Worker needs for ports other than 443 (``FEDERATION_TRANSPORT=socket``).

The stand-ins speak plain HTTP (``FEDERATION_INSECURE_HTTP=1``, development only): see
test_socket_tls_to_a_self_signed_peer for what TLS to a local self-signed peer does.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from matrix_helpers import assert_error, assert_ok, call
from transport_origin import Origin, server_verify_keys

TRANSPORTS = ["fetch", "socket"]


@pytest.fixture(scope="module", params=TRANSPORTS)
def fed(request, stratus_factory):
    """A Stratus instance using the given outbound transport, talking plain HTTP."""
    server = stratus_factory(
        {
            "FEDERATION_INSECURE_HTTP": "1",
            "FEDERATION_TRANSPORT": request.param,
            "FEDERATION_TIMEOUT_MS": "5000",
            # Refused before any connection is made (see test_deny_list).
            "FEDERATION_DENY": "localhost",
        }
    )
    server.transport = request.param
    return server


def assert_transport(seen, transport):
    """Our HTTP/1.1 writer (the socket path) says `User-Agent: Stratus`; workerd's fetch does not."""
    assert (seen.user_agent == "Stratus") == (transport == "socket"), seen


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


def query(base: str, server: str, min_valid: int | None = None):
    criteria = {} if min_valid is None else {"minimum_valid_until_ts": min_valid}
    return call(base, "POST", "/_matrix/key/v2/query", {"server_keys": {server: {"ed25519:any": criteria}}})


def test_version(base):
    body = assert_ok(call(base, "GET", "/_matrix/federation/v1/version"))
    assert body["server"]["name"] == "Stratus", body
    assert isinstance(body["server"]["version"], str) and body["server"]["version"], body


def test_outbound_request_is_signed_and_keys_are_relayed(fed, origin):
    stratus_name, stratus_keys = server_verify_keys(fed.base)
    body = assert_ok(query(fed.base, origin.server_name))

    # The stand-in got one signed GET for its keys, Host = its server name.
    key_fetches = [s for s in origin.seen if s.path == "/_matrix/key/v2/server"]
    assert len(key_fetches) == 1, origin.seen
    seen = key_fetches[0]
    assert seen.method == "GET" and seen.host == origin.server_name, seen
    assert origin.check_signature(seen, stratus_name, stratus_keys) == "", seen
    assert_transport(seen, fed.transport)

    # The document: the stand-in's own, signed by it and countersigned by Stratus.
    docs = body["server_keys"]
    assert len(docs) == 1, body
    doc = docs[0]
    assert doc["server_name"] == origin.server_name
    assert set(doc["signatures"]) == {origin.server_name, stratus_name}, doc
    verify_signed_json(doc, origin.server_name, origin.verify_key())
    for key in stratus_keys.values():
        verify_signed_json(doc, stratus_name, key)

    # Cached: asking again (validity already covered) does not fetch again.
    assert_ok(query(fed.base, origin.server_name, min_valid=int(time.time() * 1000)))
    r = call(fed.base, "GET", f"/_matrix/key/v2/query/{origin.server_name}")
    assert assert_ok(r)["server_keys"][0]["verify_keys"] == doc["verify_keys"]
    assert len([s for s in origin.seen if s.path == "/_matrix/key/v2/server"]) == 1, origin.seen


def test_bad_self_signature_is_not_relayed(fed):
    def tamper(doc):
        doc["valid_until_ts"] += 1  # after signing: the signature no longer matches
        return doc

    o = Origin(key_doc_override=tamper)
    try:
        body = assert_ok(query(fed.base, o.server_name))
        assert body["server_keys"] == [], body
        assert any(s.path == "/_matrix/key/v2/server" for s in o.seen), o.seen
    finally:
        o.close()


def test_document_for_another_server_is_not_relayed(fed):
    def rename(doc):
        doc["server_name"] = "elsewhere.example"
        return doc

    o = Origin(key_doc_override=rename)
    try:
        assert assert_ok(query(fed.base, o.server_name))["server_keys"] == []
    finally:
        o.close()


def test_unreachable_server_gives_no_keys(fed):
    o = Origin()
    name = o.server_name
    o.close()  # nothing listens there any more
    t = time.monotonic()
    assert assert_ok(query(fed.base, name))["server_keys"] == []
    assert time.monotonic() - t < 20


def test_deny_list(fed, origin):
    # localhost:PORT reaches the same stand-in, but FEDERATION_DENY=localhost refuses it
    # before any connection.
    assert assert_ok(query(fed.base, f"localhost:{origin.port}"))["server_keys"] == []
    assert origin.seen == [], origin.seen


def test_own_keys_through_the_notary_api(fed):
    stratus_name, stratus_keys = server_verify_keys(fed.base)
    for r in (
        call(fed.base, "GET", f"/_matrix/key/v2/query/{stratus_name}"),
        query(fed.base, stratus_name),
    ):
        docs = assert_ok(r)["server_keys"]
        assert len(docs) == 1 and docs[0]["server_name"] == stratus_name, docs
        for key in stratus_keys.values():
            verify_signed_json(docs[0], stratus_name, key)


def test_query_validation(base):
    assert_error(call(base, "POST", "/_matrix/key/v2/query", {}), 400, "M_BAD_JSON")
    assert_error(call(base, "POST", "/_matrix/key/v2/query", {"server_keys": {"a.org": 1}}), 400, "M_BAD_JSON")
    assert assert_ok(call(base, "POST", "/_matrix/key/v2/query", {"server_keys": {}}))["server_keys"] == []
    assert_error(call(base, "GET", "/_matrix/key/v2/query/bad%20name"), 400, "M_INVALID_PARAM")
    r = call(base, "GET", "/_matrix/key/v2/query/a.org?minimum_valid_until_ts=soon")
    assert_error(r, 400, "M_INVALID_PARAM")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    from transport_origin import make_tls_files

    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_to_a_peer_with_a_local_ca(stratus_factory, tls_files, transport):
    """TLS for real: the stand-in serves HTTPS with a certificate from a throwaway CA, which
    wrangler (miniflare) adds to workerd's trusted certificates from NODE_EXTRA_CA_CERTS."""
    ca_file, server_ctx = tls_files
    fed_tls = stratus_factory(
        {"FEDERATION_TRANSPORT": transport, "FEDERATION_TIMEOUT_MS": "5000"},
        process_env={"NODE_EXTRA_CA_CERTS": ca_file},
    )
    o = Origin(tls_context=server_ctx, name_host="localhost")
    try:
        stratus_name, stratus_keys = server_verify_keys(fed_tls.base)
        docs = assert_ok(query(fed_tls.base, o.server_name))["server_keys"]
        assert len(docs) == 1, (docs, o.seen, fed_tls.log_tail(30))
        verify_signed_json(docs[0], o.server_name, o.verify_key())
        assert o.check_signature(o.seen[0], stratus_name, stratus_keys) == ""
        assert_transport(o.seen[0], transport)
    finally:
        o.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_peer_with_an_unknown_ca_is_refused(stratus_factory, tls_files, transport):
    """The same peer without its CA trusted: the handshake fails, nothing is sent or relayed."""
    _, server_ctx = tls_files
    fed_tls = stratus_factory({"FEDERATION_TRANSPORT": transport, "FEDERATION_TIMEOUT_MS": "5000"})
    o = Origin(tls_context=server_ctx, name_host="localhost")
    try:
        assert assert_ok(query(fed_tls.base, o.server_name))["server_keys"] == []
        assert o.seen == [], o.seen
    finally:
        o.close()


def _server_rows():
    import re
    from pathlib import Path

    routes = Path(__file__).resolve().parents[3] / "src" / "routes.rs"
    row = re.compile(r'^\s*(Get|Put|Post|Delete) "([^"]+)" \[Server(?:, [\w, ]+)?\] =>', re.M)
    return [(m.upper(), re.sub(r"\{[^}]+\}", "x", p)) for m, p in row.findall(routes.read_text())]


def test_inbound_x_matrix_authentication(fed, origin):
    """Any `[Server]` row: the router's authenticate() accepts a request the stand-in signed
    (whatever the handler then answers, it is not 401) and refuses a bad signature, a wrong
    destination, an unknown key, a changed URI or body, and an origin on the deny list."""
    rows = _server_rows()
    if not rows:
        pytest.skip("no [Server] route in src/routes.rs yet")
    method, path = sorted(rows, key=lambda r: r[0] != "GET")[0]
    uri = f"{path}?probe=a%20b"
    content = None if method == "GET" else {}
    stratus_name, _ = server_verify_keys(fed.base)

    def send(header, send_uri=uri, body=content):
        data = None if body is None else json.dumps(body)
        return requests.request(method, fed.base + send_uri, data=data, headers={"Authorization": header}, timeout=30)

    good = origin.sign_request(stratus_name, method, uri, content)
    r = send(good)
    assert r.status_code != 401 and r.status_code < 500, r.text
    assert [s.path for s in origin.seen] == ["/_matrix/key/v2/server"], origin.seen

    from signedjson.key import generate_signing_key

    forged = origin.sign_request(stratus_name, method, uri, content, key=generate_signing_key(origin.key_version))
    assert_error(send(forged), 401, "M_UNAUTHORIZED")
    assert_error(send(origin.sign_request("elsewhere.example", method, uri, content)), 401, "M_UNAUTHORIZED")
    assert_error(send(good.replace(f"ed25519:{origin.key_version}", "ed25519:nokey")), 401, "M_UNAUTHORIZED")
    assert_error(send(good, send_uri=f"{path}?probe=other"), 401, "M_UNAUTHORIZED")
    if content is not None:
        assert_error(send(good, body={"changed": True}), 401, "M_UNAUTHORIZED")
    # Several credentials (joined by the runtime into one header): the valid one is used.
    r = send(f"{forged}, {good}")
    assert r.status_code != 401 and r.status_code < 500, r.text

    denied = Origin(name_host="localhost")
    try:
        h = denied.sign_request(stratus_name, method, uri, content)
        assert_error(send(h), 403, "M_FORBIDDEN")
        assert denied.seen == []
    finally:
        denied.close()
