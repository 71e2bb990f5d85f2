"""A small HTTP server on 127.0.0.1, in a thread, standing in for a remote service the Worker
calls (a web page for URL previews, a push gateway, Cloudflare's TURN API)."""

from __future__ import annotations

import http.server
import threading
from typing import Callable, Mapping

# (method, path, request headers, request body) -> (status, response headers, response body)
Respond = Callable[[str, str, Mapping[str, str], bytes], tuple[int, Mapping[str, str], bytes]]


class StubServer:
    """Answers the given methods with ``respond``; other methods get the standard library's 501.
    ``url`` is ``http://127.0.0.1:<port>`` (no trailing slash)."""

    def __init__(self, respond: Respond, methods: tuple[str, ...] = ("GET",)):
        def serve(handler: http.server.BaseHTTPRequestHandler) -> None:
            n = int(handler.headers.get("Content-Length", "0"))
            body = handler.rfile.read(n) if n else b""
            status, headers, out = respond(handler.command, handler.path, handler.headers, body)
            handler.send_response(status)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(out)))
            handler.end_headers()
            handler.wfile.write(out)

        def log_message(handler, *a) -> None:
            pass

        attrs = {f"do_{m}": serve for m in methods}
        attrs["log_message"] = log_message
        handler_class = type("Handler", (http.server.BaseHTTPRequestHandler,), attrs)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
