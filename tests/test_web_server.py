"""The server under serve and preview (waitress through digest.web.wsgi): bounded threads, idle and
stalled connections closed after the timeout, a body-size cap, and the security headers on every
response. Real sockets on 127.0.0.1; the idle timeout is driven by a clock of the test's own."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from digest.web.wsgi import MAX_BODY, ServerLimits, WebServer, make_wsgi_server


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Reads whatever body it is given: any size cap must come from the server."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REQUEST_METHOD']} {len(body)}".encode()]


@pytest.fixture
def server() -> Iterator[WebServer]:
    srv = make_wsgi_server(echo_app, "127.0.0.1", 0, ServerLimits(threads=4, idle_timeout=30))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def request(port: int, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, "/", body=body)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (read gives EOF or a reset) within the socket's timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_and_stalled_connections_hold_no_thread_and_are_closed_after_the_timeout(server: WebServer) -> None:
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(40)]
    # A request whose Content-Length promises more body than ever comes.
    stalled = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(10)]
    for s in stalled:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
    try:
        for _ in range(10):  # every request is answered meanwhile
            assert request(server.server_port, "POST", b"hello")[:1] == (200,)
        # No thread per connection: the server's worker threads, at most.
        assert threading.active_count() - before <= server.limits.threads
        server.close_idle(time.time() + server.limits.idle_timeout + 1)
        for s in idle + stalled:
            s.settimeout(10)
            assert closed_by_server(s)
        assert request(server.server_port)[2] == b"GET 0"
    finally:
        for s in idle + stalled:
            s.close()


def test_a_fresh_connection_is_not_closed_as_idle(server: WebServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as fresh:
        server.close_idle(time.time())  # 30 s not yet passed
        fresh.settimeout(0.3)
        assert not closed_by_server(fresh)
        fresh.settimeout(10)
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert fresh.recv(100).startswith(b"HTTP/1.1 200")


def test_a_body_over_the_cap_is_refused_before_the_app_reads_it(server: WebServer) -> None:
    assert request(server.server_port, "POST", b"x" * MAX_BODY)[2] == f"POST {MAX_BODY}".encode()
    status, _, _ = request(server.server_port, "POST", b"x" * (MAX_BODY + 1))
    assert status == 413


def test_every_response_says_nosniff_and_cannot_be_framed(server: WebServer) -> None:
    _, headers, _ = request(server.server_port)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none' covers scripts
    assert "default-src 'none'" in headers["Content-Security-Policy"]
