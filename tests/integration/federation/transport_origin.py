"""A stand-in remote homeserver for the federation transport tests: an HTTP(S) server on
127.0.0.1 with its own ed25519 key (signedjson), serving ``/_matrix/key/v2/server`` and
recording every request it gets, each with the result of checking its ``X-Matrix``
signature against the calling server's published key."""

from __future__ import annotations

import http.server
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
from canonicaljson import encode_canonical_json
from signedjson.key import decode_verify_key_bytes, generate_signing_key, get_verify_key, encode_verify_key_base64
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from unpaddedbase64 import decode_base64

import json

# One X-Matrix parameter: name=value, value quoted (with escapes) or a token (colons allowed).
_PARAM = re.compile(r'\s*([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')


def parse_x_matrix(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme.lower() == "x-matrix", header
    out = {}
    for name, value in _PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[name.lower()] = value
    return out


def server_verify_keys(base: str) -> tuple[str, dict[str, Any]]:
    """(server name, {key_id: VerifyKey}) of a server, from its ``/_matrix/key/v2/server``."""
    doc = requests.get(f"{base}/_matrix/key/v2/server", timeout=30).json()
    keys = {kid: decode_verify_key_bytes(kid, decode_base64(v["key"])) for kid, v in doc["verify_keys"].items()}
    return doc["server_name"], keys


@dataclass
class Seen:
    method: str
    path: str
    host: str | None
    authorization: str | None
    body: bytes
    user_agent: str | None = None
    # Set by check_signature(): None if not checked, else the error ("" = valid).
    signature_error: str | None = None


@dataclass
class Origin:
    """The stand-in. ``server_name`` is ``127.0.0.1:<port>`` unless ``name_host`` says
    otherwise (e.g. ``localhost``). ``key_doc`` can be replaced to serve a bad document."""

    tls_context: ssl.SSLContext | None = None
    name_host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    key_version: str = "stand1"
    key_doc_override: Callable[[dict], dict] | None = None
    # The port to listen on (0: any free one).
    bind_port: int = 0

    def __post_init__(self) -> None:
        self.signing_key = generate_signing_key(self.key_version)
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                n = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(n) if n else b""
                origin.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        self.headers.get("Host"),
                        self.headers.get("Authorization"),
                        body,
                        self.headers.get("User-Agent"),
                    )
                )
                if self.path.split("?")[0] == "/_matrix/key/v2/server":
                    status, out = 200, origin.key_document()
                else:
                    status, out = 404, {"errcode": "M_UNRECOGNIZED", "error": "stand-in: not here"}
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

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.bind_port), Handler)
        if self.tls_context is not None:
            self.httpd.socket = self.tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.server_name = f"{self.name_host}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def key_document(self) -> dict:
        doc = {
            "server_name": self.server_name,
            "valid_until_ts": int(time.time() * 1000) + 3600_000,
            "verify_keys": {f"ed25519:{self.key_version}": {"key": encode_verify_key_base64(get_verify_key(self.signing_key))}},
            "old_verify_keys": {},
        }
        doc = sign_json(doc, self.server_name, self.signing_key)
        if self.key_doc_override:
            doc = self.key_doc_override(doc)
        return doc

    def verify_key(self):
        return get_verify_key(self.signing_key)

    def sign_request(self, destination: str, method: str, uri: str, content: Any = None, key=None) -> str:
        """An X-Matrix header for a request from this stand-in."""
        obj = {"method": method, "uri": uri, "origin": self.server_name, "destination": destination}
        if content is not None:
            obj["content"] = content
        signed = sign_json(obj, self.server_name, key or self.signing_key)
        sig = signed["signatures"][self.server_name][f"ed25519:{self.key_version}"]
        return f'X-Matrix origin="{self.server_name}",destination="{destination}",key="ed25519:{self.key_version}",sig="{sig}"'

    def check_signature(self, seen: Seen, caller_name: str, caller_keys: dict[str, Any]) -> str:
        """Checks a received request's X-Matrix signature as a real server would; "" if valid."""
        try:
            if not seen.authorization:
                return "no Authorization header"
            x = parse_x_matrix(seen.authorization)
            if x.get("origin") != caller_name:
                return f"origin {x.get('origin')!r} is not {caller_name!r}"
            if x.get("destination") != self.server_name:
                return f"destination {x.get('destination')!r} is not {self.server_name!r}"
            key = caller_keys.get(x.get("key", ""))
            if key is None:
                return f"unknown key {x.get('key')!r}"
            obj = {"method": seen.method, "uri": seen.path, "origin": caller_name, "destination": self.server_name}
            if seen.body:
                obj["content"] = json.loads(seen.body)
            obj["signatures"] = {caller_name: {x["key"]: x["sig"]}}
            verify_signed_json(obj, caller_name, key)
            return ""
        except SignatureVerifyException as e:
            return f"bad signature: {e}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def canonical(obj: Any) -> bytes:
    return encode_canonical_json(obj)


def make_tls_files(directory) -> tuple[str, ssl.SSLContext]:
    """A throwaway CA and a certificate it signed for localhost and 127.0.0.1 (openssl CLI).
    Returns the CA file (for NODE_EXTRA_CA_CERTS) and a server context with the leaf."""
    import subprocess
    from pathlib import Path

    d = Path(directory)
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=Stratus test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem",
        "-days", "2", "-extfile", "ext.cnf")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / "leaf.pem"), str(d / "leaf.key"))
    return str(d / "ca.pem"), ctx
