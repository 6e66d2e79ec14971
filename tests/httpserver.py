"""A real HTTP server on 127.0.0.1 for tests (http.server), with scripted answers.

Each route is a function of the request that returns a :class:`Reply` (or raises nothing and
blocks, for a server that never answers). Every request is recorded with its headers.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Send the body gzip-encoded when the client accepts it.
    gzip: bool = False
    # Send the body in chunks with no Content-Length (Transfer-Encoding: chunked).
    chunked: bool = False
    # Seconds between two bytes of the body: a server that trickles (0: all at once).
    trickle: float = 0.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]


Route = Callable[[Request], Reply]


class TestServer:
    """``with TestServer({"/feed.xml": lambda req: Reply(body=...)}) as s: s.url("/feed.xml")``"""

    __test__ = False

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[Request] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()})
                with server._lock:
                    server.requests.append(req)
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    route = server.routes.get(self.path.split("?")[0])
                    reply = route(req) if route else Reply(404, b"not found")
                    self._send(reply, req)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.active -= 1

            def _send(self, reply: Reply, req: Request) -> None:
                body = reply.body
                headers = dict(reply.headers)
                if reply.gzip and "gzip" in req.headers.get("accept-encoding", ""):
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self.send_response_only(reply.status)
                headers.setdefault("Date", self.date_time_string())
                for k, v in headers.items():
                    self.send_header(k, v)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(body), 16 * 1024):
                        part = body[i : i + 16 * 1024]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    if "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if reply.trickle:
                        for i in range(len(body)):
                            if server.stopping.wait(reply.trickle):
                                return
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                    elif reply.status not in (204, 304):
                        self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def __enter__(self) -> TestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeTime:
    """A controllable clock and sleep for the fetcher: sleeping advances the clock at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 3))
            self.now += seconds
