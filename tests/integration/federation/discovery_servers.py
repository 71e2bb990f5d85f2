"""Stand-ins for the discovery tests (test_server_discovery.py): the `/.well-known/matrix/server`
host on 127.0.0.1:443 (TLS) and a DNS-over-HTTPS resolver (JSON API, like Cloudflare's),
both recording what they were asked. The homeserver itself is transport_origin.Origin.

Distinct server names: Stratus caches per server name (and the well-known per hostname), so
each case needs its own name, and every name must reach 127.0.0.1 and match the certificate
(DNS:localhost). Hostnames are case-insensitive (DNS, /etc/hosts, certificates, URLs), the
caches are keyed by the name as written: `localhost` with different letters capitalised
(`lOcalhost`, `LoCalhost`, ...) are distinct server names that all work like `localhost`.
"""

from __future__ import annotations

import errno
import http.server
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from transport_origin import Seen


def localhost_names():
    """`lOcalhost`, `LOcalhost`, ... (never plain `localhost`): distinct names for 127.0.0.1."""
    base = "localhost"
    for i in range(1, 2 ** len(base)):
        yield "".join(c.upper() if i >> n & 1 else c for n, c in enumerate(base))


def tls_context(cert, sni_seen: list[str] | None = None) -> ssl.SSLContext:
    """A server context with the session certificate; records each handshake's SNI (None
    when the client sent none, as for IP literals) in `sni_seen`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    if sni_seen is not None:
        ctx.sni_callback = lambda _sock, name, _ctx: sni_seen.append(name)
    return ctx


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a) -> None:
        pass

    def reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


# What the well-known host answers: (status, headers, body).
Answer = tuple[int, dict[str, str], bytes]


def well_known(delegated: str, cache_control: str | None = None) -> Answer:
    headers = {"Content-Type": "application/json"}
    if cache_control:
        headers["Cache-Control"] = cache_control
    return 200, headers, json.dumps({"m.server": delegated}).encode()


NOT_FOUND: Answer = (404, {"Content-Type": "application/json"}, b'{"errcode":"M_NOT_FOUND"}')


@dataclass
class WellKnownHost:
    """HTTPS on 127.0.0.1:443 with the session certificate. `answer(path)` gives the reply
    (404 by default); `hits` records every request. It can serve a homeserver's paths too
    (a homeserver on 443)."""

    cert: object
    answer: Callable[[str], Answer] = lambda _path: NOT_FOUND
    hits: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        host = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                h = self.headers
                host.hits.append(Seen(self.command, self.path, h.get("Host"), h.get("Authorization"), b"", h.get("User-Agent")))
                status, headers, body = host.answer(self.path)
                self.reply(status, body, headers)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 443), Handler)
        self.httpd.socket = tls_context(self.cert).wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def well_known_hits(self) -> int:
        return len([h for h in self.hits if h.path == "/.well-known/matrix/server"])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class DohQuery:
    name: str
    type: str
    accept: str | None


@dataclass
class DohResolver:
    """DNS-over-HTTPS, JSON API (`GET ?name=..&type=SRV`, `application/dns-json`), plain HTTP
    on 127.0.0.1. `srv[name]` = [(priority, weight, port, target, ttl)]; any other name is
    NXDOMAIN (Status 3), as Cloudflare answers. `queries` records every question."""

    srv: dict[str, list[tuple[int, int, int, str, int]]] = field(default_factory=dict)
    queries: list[DohQuery] = field(default_factory=list)

    def __post_init__(self) -> None:
        doh = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                name, rtype = q.get("name", [""])[0], q.get("type", [""])[0]
                doh.queries.append(DohQuery(name, rtype, self.headers.get("Accept")))
                records = doh.srv.get(name) if rtype.upper() in ("SRV", "33") else None
                if records:
                    out = {
                        "Status": 0, "TC": False, "RD": True, "RA": True, "AD": False, "CD": False,
                        "Question": [{"name": name, "type": 33}],
                        "Answer": [{"name": name, "type": 33, "TTL": ttl, "data": f"{prio} {weight} {port} {target}."}
                                   for prio, weight, port, target, ttl in records],
                    }
                else:
                    out = {"Status": 3, "TC": False, "RD": True, "RA": True, "AD": False, "CD": False,
                           "Question": [{"name": name, "type": 33}]}
                self.reply(200, json.dumps(out).encode(), {"Content-Type": "application/dns-json"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dns-query"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def names_asked(self) -> list[str]:
        return [q.name for q in self.queries]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
