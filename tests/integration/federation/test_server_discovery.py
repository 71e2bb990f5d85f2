"""Server discovery (spec: server-server-api, "Resolving server names") end to end: a real
`wrangler dev` Stratus resolves server names without a port through
`https://<hostname>/.well-known/matrix/server` (a stand-in on 127.0.0.1:443) and SRV records
(a stand-in DNS-over-HTTPS resolver, `FEDERATION_DOH_URL`), then reaches a stand-in
homeserver (transport_origin.Origin, TLS) where they point.

Each case asks Stratus, as a notary, for the keys of a fresh server name (`POST
/_matrix/key/v2/query`: resolve, sign, connect, fetch `/_matrix/key/v2/server`); some then
make a second request to the same name (a remote profile, `GET
/_matrix/client/v3/profile/@x:<name>`) to show what was cached. The stand-in checks each
request's X-Matrix signature (destination = the original server name) and records its `Host`
header and the TLS SNI. Both outbound transports run (`fetch()`, and the TCP socket a
deployed Worker uses for ports other than 443).

Every name is a spelling of `localhost` (discovery_servers.localhost_names): the only
hostname that reaches 127.0.0.1 here, and distinct to Stratus's caches.
"""

from __future__ import annotations

import json

import pytest
from signedjson.sign import verify_signed_json

from discovery_servers import (
    NOT_FOUND,
    DohResolver,
    WellKnownHost,
    localhost_names,
    port_free,
    tls_context,
    well_known,
)
from matrix_helpers import assert_ok, call
from transport_origin import Origin, server_verify_keys

TRANSPORTS = ["fetch", "socket"]
NAMES = localhost_names()


@pytest.fixture(scope="module")
def wk_host(fed_cert):
    if not port_free(443):
        pytest.skip("127.0.0.1:443 is in use: the well-known stand-in needs it")
    h = WellKnownHost(fed_cert)
    yield h
    h.close()


@pytest.fixture(scope="module")
def doh():
    d = DohResolver()
    yield d
    d.close()


@pytest.fixture(scope="module", params=TRANSPORTS)
def fed(request, stratus_factory, fed_cert, wk_host, doh):
    server = stratus_factory(
        {"FEDERATION_TRANSPORT": request.param, "FEDERATION_DOH_URL": doh.url, "FEDERATION_TIMEOUT_MS": "5000"},
        {"NODE_EXTRA_CA_CERTS": str(fed_cert.ca)},
    )
    server.transport = request.param
    server.name, server.keys = server_verify_keys(server.base)
    return server


class Case:
    """One test's server name, its stand-in homeserver (named after it), and the stand-ins'
    records, cleared."""

    def __init__(self, fed, cert, wk_host: WellKnownHost, doh: DohResolver, bind_port: int = 0):
        self.fed, self.wk, self.doh = fed, wk_host, doh
        self.name = next(NAMES)
        self.sni: list[str | None] = []
        self.origin = Origin(tls_context=tls_context(cert, self.sni), bind_port=bind_port)
        self.origin.server_name = self.name  # its key document and X-Matrix destination
        wk_host.answer = lambda _path: NOT_FOUND
        wk_host.hits.clear()
        doh.srv.clear()
        doh.queries.clear()

    def fetch_keys(self) -> None:
        """Stratus fetches the stand-in's keys by its name and relays its document."""
        r = call(self.fed.base, "POST", "/_matrix/key/v2/query", {"server_keys": {self.name: {}}})
        docs = assert_ok(r)["server_keys"]
        assert len(docs) == 1, (docs, self.origin.seen, self.wk.hits, self.doh.queries, self.fed.log_tail(20))
        assert docs[0]["server_name"] == self.name
        verify_signed_json(docs[0], self.name, self.origin.verify_key())

    def ask_profile(self) -> None:
        """A second request to the same name (the stand-in answers 404, which is fine)."""
        call(self.fed.base, "GET", f"/_matrix/client/v3/profile/@someone:{self.name}")

    def assert_reached(self, host_header: str, count: int = 1, connected: str = "localhost") -> None:
        """The stand-in got `count` requests, each signed for our name and with the `Host` the
        spec asks for — except through `fetch()`, which sends the host and port connected to
        (Workers refuse to override `Host`; `FEDERATION_TRANSPORT=auto` uses a socket when
        that matters, see test_srv_target_on_443_gets_the_right_host)."""
        seen = self.origin.seen
        assert len(seen) == count, seen
        if self.fed.transport == "fetch":
            host_header = f"{connected.lower()}:{self.origin.port}"
        for s in seen:
            assert s.host == host_header, (s, self.fed.transport)
            assert self.origin.check_signature(s, self.fed.name, self.fed.keys) == "", s
            # Our HTTP/1.1 writer (the socket path) says `User-Agent: Stratus`; fetch does not.
            assert (s.user_agent == "Stratus") == (self.fed.transport == "socket"), s
        # TLS SNI: the host connected to (the runtime verifies the certificate for it, not
        # for the server name as the spec would have it).
        assert [n and n.lower() for n in self.sni] == [connected.lower()] * count, self.sni

    def close(self) -> None:
        self.origin.close()


@pytest.fixture
def case(fed, fed_cert, wk_host, doh):
    c = Case(fed, fed_cert, wk_host, doh)
    yield c
    c.close()


def test_well_known_delegation_with_port(case):
    """Step 3.2: `m.server` = hostname:port → connect there, Host = the delegated name; the
    second request uses the cached outcome (no new well-known fetch, no DNS)."""
    delegated = f"localhost:{case.origin.port}"
    case.wk.answer = lambda _p: well_known(delegated, "max-age=3600")
    case.fetch_keys()
    assert [h.host.lower() for h in case.wk.hits] == ["localhost"], case.wk.hits
    assert case.wk.well_known_hits() == 1
    assert case.doh.queries == [], case.doh.queries
    case.assert_reached(delegated)

    case.ask_profile()
    assert case.wk.well_known_hits() == 1, case.wk.hits
    assert case.doh.queries == []
    case.assert_reached(delegated, count=2)
    assert case.origin.seen[1].path.startswith("/_matrix/federation/v1/query/profile?user_id=%40someone%3A"), case.origin.seen


def test_well_known_redirect_is_followed(case):
    """Step 3: 30x redirects of the well-known are followed."""
    delegated = f"localhost:{case.origin.port}"

    def answer(path):
        if path == "/.well-known/matrix/server":
            return 302, {"Location": "/moved/server.json"}, b""
        return well_known(delegated)

    case.wk.answer = answer
    case.fetch_keys()
    assert [h.path for h in case.wk.hits] == ["/.well-known/matrix/server", "/moved/server.json"], case.wk.hits
    case.assert_reached(delegated)


@pytest.mark.parametrize("legacy", [False, True], ids=["matrix-fed", "matrix-legacy"])
def test_delegation_to_a_hostname_uses_its_srv(case, legacy):
    """Steps 3.3/3.4: `m.server` without a port → SRV of the delegated hostname
    (`_matrix-fed._tcp`, then the deprecated `_matrix._tcp`); Host = the delegated hostname."""
    delegated = next(NAMES)
    case.wk.answer = lambda _p: well_known(delegated)
    srv = f"_matrix._tcp.{delegated}" if legacy else f"_matrix-fed._tcp.{delegated}"
    case.doh.srv[srv] = [(10, 5, case.origin.port, "localhost", 300)]
    case.fetch_keys()
    expected = [f"_matrix-fed._tcp.{delegated}"] + ([srv] if legacy else [])
    assert case.doh.names_asked() == expected, case.doh.queries
    assert all(q.type == "SRV" and q.accept == "application/dns-json" for q in case.doh.queries), case.doh.queries
    case.assert_reached(delegated)


FAILURES = {
    "404": NOT_FOUND,
    "500": (500, {"Content-Type": "text/plain"}, b"oops"),
    "not-json": (200, {"Content-Type": "application/json"}, b"{not json"),
    "no-m.server": (200, {"Content-Type": "application/json"}, b'{"m.homeserver": "x"}'),
    "bad-m.server": (200, {"Content-Type": "application/json"}, json.dumps({"m.server": "bad name!"}).encode()),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_failed_well_known_falls_back_to_srv(case, failure):
    """Step 4: no valid well-known → SRV `_matrix-fed._tcp.<hostname>`, Host = the server
    name. The outcome is cached: a second request, with a valid well-known now served,
    still goes where the SRV record pointed, without asking the well-known again. (That is
    the resolved destination's cache, which lives at most as long as the failure's back-off
    entry; the back-off steps themselves, a minute doubling up to an hour, are unit-tested
    in core::federation::discovery, too slow to wait for here.)"""
    case.wk.answer = lambda _p: FAILURES[failure]
    case.doh.srv[f"_matrix-fed._tcp.{case.name}"] = [(10, 5, case.origin.port, "localhost", 300)]
    case.fetch_keys()
    assert case.wk.well_known_hits() == 1, case.wk.hits
    assert case.doh.names_asked() == [f"_matrix-fed._tcp.{case.name}"], case.doh.queries
    case.assert_reached(case.name)

    elsewhere = Origin()
    try:
        case.wk.answer = lambda _p: well_known(elsewhere.server_name)
        case.ask_profile()
        assert case.wk.well_known_hits() == 1, case.wk.hits
        assert elsewhere.seen == [], elsewhere.seen
        case.assert_reached(case.name, count=2)
    finally:
        elsewhere.close()


def test_no_well_known_legacy_srv(case):
    """Step 5: no well-known, no `_matrix-fed._tcp` record → the deprecated `_matrix._tcp`."""
    legacy = f"_matrix._tcp.{case.name}"
    case.doh.srv[legacy] = [(10, 5, case.origin.port, "localhost", 300)]
    case.fetch_keys()
    assert case.doh.names_asked() == [f"_matrix-fed._tcp.{case.name}", legacy], case.doh.queries
    case.assert_reached(case.name)


def test_no_well_known_no_srv_uses_8448(fed, fed_cert, wk_host, doh):
    """Step 6: no well-known, no SRV record → the hostname on port 8448, Host = the name."""
    if not port_free(8448):
        pytest.skip("127.0.0.1:8448 is in use")
    c = Case(fed, fed_cert, wk_host, doh, bind_port=8448)
    try:
        c.fetch_keys()
        assert c.doh.names_asked() == [f"_matrix-fed._tcp.{c.name}", f"_matrix._tcp.{c.name}"], c.doh.queries
        c.assert_reached(c.name, connected=c.name)
    finally:
        c.close()


@pytest.fixture(scope="module")
def fed_auto(stratus_factory, fed_cert, wk_host, doh):
    server = stratus_factory(
        {"FEDERATION_TRANSPORT": "auto", "FEDERATION_DOH_URL": doh.url, "FEDERATION_TIMEOUT_MS": "5000"},
        {"NODE_EXTRA_CA_CERTS": str(fed_cert.ca)},
    )
    server.transport = "auto"
    server.name, server.keys = server_verify_keys(server.base)
    return server


def test_srv_target_on_443_gets_the_right_host(fed_auto, fed_cert, wk_host, doh):
    """`FEDERATION_TRANSPORT=auto` (production): port 443 normally goes through `fetch()`, but
    `fetch()` cannot send `Host: <server name>` to an SRV target, so such a request goes
    through the socket (User-Agent: Stratus) with the Host of step 4. The homeserver here is
    the stand-in on 127.0.0.1:443, which serves no well-known for this name."""
    c = Case(fed_auto, fed_cert, wk_host, doh)
    try:
        def answer(path):
            if path == "/_matrix/key/v2/server":
                return 200, {"Content-Type": "application/json"}, json.dumps(c.origin.key_document()).encode()
            return NOT_FOUND

        wk_host.answer = answer
        # The target is another host than the name (the names here are all `localhost`,
        # which fetch() would rightly send as the same Host).
        doh.srv[f"_matrix-fed._tcp.{c.name}"] = [(10, 5, 443, "127.0.0.1", 300)]
        c.fetch_keys()
        assert doh.names_asked() == [f"_matrix-fed._tcp.{c.name}"], doh.queries
        key_gets = [h for h in wk_host.hits if h.path == "/_matrix/key/v2/server"]
        assert len(key_gets) == 1, wk_host.hits
        got = key_gets[0]
        assert got.host == c.name and got.user_agent == "Stratus", got
        assert c.origin.check_signature(got, fed_auto.name, fed_auto.keys) == "", got
        assert c.origin.seen == []
    finally:
        c.close()
