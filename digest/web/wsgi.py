"""A few WSGI helpers shared by the preview and the subscriber apps, the security headers every page
carries, and the server both run on: waitress, with bounded threads, idle and request timeouts and a
body-size cap. It writes no access log, so query strings (they carry unsubscribe tokens) stay out of logs."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import jinja2
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

# Forms here are a token and a button or an address; anything bigger is not for us.
MAX_BODY = 64 * 1024

StartResponse = Callable[..., Any]

pages = jinja2.Environment(
    loader=jinja2.PackageLoader("digest.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    environ: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET")).upper()

    @property
    def base(self) -> str:
        """Where the app is mounted (SCRIPT_NAME), for links back into it."""
        return str(self.environ.get("SCRIPT_NAME", "")).rstrip("/")

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", "/")) or "/"

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    def body(self) -> bytes:
        """The raw request body (read once), at most MAX_BODY bytes."""
        if "digest.body" in self.environ:
            return self.environ["digest.body"]  # type: ignore[no-any-return]
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest(413, "request body too large")
        body: bytes = self.environ["wsgi.input"].read(length) if length > 0 else b""
        self.environ["digest.body"] = body
        return body

    def form(self) -> dict[str, str]:
        """The POST body's fields: application/x-www-form-urlencoded or multipart/form-data (RFC
        8058 says one-click unsubscribe POSTs should be multipart)."""
        if "digest.form" in self.environ:
            return self.environ["digest.form"]  # type: ignore[no-any-return]
        body = self.body()
        ctype = str(self.environ.get("CONTENT_TYPE", ""))
        fields: dict[str, str] = {}
        if ctype.lower().startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body
            )
            if not message.is_multipart():
                raise BadRequest(400, "malformed multipart body")
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if isinstance(name, str) and name not in fields:
                    payload = part.get_payload(decode=True)
                    fields[name] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        else:
            for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
                fields[k] = v[0]
        self.environ["digest.form"] = fields
        return fields


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, start_response: StartResponse) -> Iterable[bytes]:
        phrase = HTTPStatus(self.status).phrase
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))), *self.headers]
        start_response(f"{self.status} {phrase}", headers)
        return [self.body]


def page(template: str, status: int = 200, headers: list[tuple[str, str]] | None = None, **context: Any) -> Response:
    return Response(status, pages.get_template(template).render(**context).encode("utf-8"), headers=list(headers or []))


def text(body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, body.encode("utf-8"), content_type)


def as_json(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode("utf-8"), "application/json", [("Cache-Control", "no-store")])


def redirect(location: str) -> Response:
    return Response(303, b"", headers=[("Location", location)])


# Every page: no MIME sniffing, no framing by other sites, and a policy that allows no script and
# no form target elsewhere unless the response sets its own (and then it must say frame-ancestors).
NOSNIFF = ("X-Content-Type-Options", "nosniff")
DEFAULT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def with_security_headers(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app`` with X-Content-Type-Options and a Content-Security-Policy (DEFAULT_CSP when the
    response sets none) on every response, error pages included; each request logged as method,
    path and status, never the query string (it can hold a subscriber's token)."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {name.lower() for name, _ in headers}
            extra = [NOSNIFF] if "x-content-type-options" not in names else []
            if "content-security-policy" not in names:
                extra.append(("Content-Security-Policy", DEFAULT_CSP))
            log.info("%s %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), status.split(" ", 1)[0])
            return start_response(status, [*headers, *extra], exc_info)

        return app(environ, start)

    return wrapped


@dataclass(frozen=True)
class ServerLimits:
    """How much one server takes on. A connection that sends nothing for ``idle_timeout`` seconds
    is closed, whether idle between requests or stalled mid-body (a Content-Length larger than the
    body): waitress reads each request whole before a worker thread sees it, so a slow client holds
    a socket, never a thread. Bodies over ``max_body`` get 413."""

    threads: int = 8
    idle_timeout: int = 30
    max_body: int = MAX_BODY
    connections: int = 1000


class WebServer:
    """``app`` served by waitress on host:port (port 0: any free port; see ``server_port``), with
    the security headers. ``serve_forever`` in one thread; ``shutdown`` from another stops it."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], host: str, port: int, limits: ServerLimits = ServerLimits()
    ) -> None:
        self.app = app
        self.limits = limits
        self._map: dict[int, Any] = {}  # waitress's socket map, ours so we can run and stop its loop
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self.server = create_server(
            with_security_headers(app),
            map=self._map,
            host=host,
            port=port,
            threads=limits.threads,
            channel_timeout=limits.idle_timeout,
            # How often idle connections are looked for: a fraction of the timeout.
            cleanup_interval=max(1, limits.idle_timeout // 4),
            # waitress refuses a body of exactly its limit; ours is the largest allowed.
            max_request_body_size=limits.max_body + 1,
            connection_limit=limits.connections,
            # select() cannot watch more than 1024 sockets; poll() can.
            asyncore_use_poll=True,
            ident="digest",
            expose_tracebacks=False,
            # Keep X-Forwarded-For: the sign-up's rate limit trusts it from a loopback peer only (the
            # publication's own web server in front), and decides that itself (digest.web.signup).
            clear_untrusted_proxy_headers=False,
        )
        # A host name with several addresses (localhost: IPv4 and IPv6) gets one socket for each.
        single = self.server if isinstance(self.server, BaseWSGIServer) else None
        self._single = single
        if single is not None:
            self.server_port = int(single.getsockname()[1])
        else:
            assert not isinstance(self.server, BaseWSGIServer)
            self.server_port = int(self.server.effective_listen[0][1])

    def get_app(self) -> Callable[..., Iterable[bytes]]:
        return self.app

    def serve_forever(self) -> None:
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever (running in another thread) and wait for it."""
        self._stop.set()
        if self._single:
            self._single.pull_trigger()  # wakes the loop at once (else within its half-second poll)
        self._stopped.wait()

    def close_idle(self, now: float) -> None:
        """Close the connections idle since before ``now - idle_timeout`` (a time.time() value).
        The server does this by itself every ``idle_timeout // 4`` seconds; tests call it with a
        clock of their own instead of waiting."""
        servers = [self._single] if self._single else [s for s in self._map.values() if isinstance(s, BaseWSGIServer)]
        for server in servers:
            server.maintenance(int(now))
            server.pull_trigger()

    def server_close(self) -> None:
        self.server.task_dispatcher.shutdown()
        wasyncore.close_all(self._map)


def make_wsgi_server(
    app: Callable[..., Iterable[bytes]], host: str, port: int, limits: ServerLimits = ServerLimits()
) -> WebServer:
    """The server for ``app`` on host:port, with the security headers and the limits."""
    return WebServer(app, host, port, limits)
