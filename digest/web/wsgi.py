"""A few WSGI helpers shared by the preview and the subscriber apps, and a threaded server from the
standard library whose log never shows query strings (they carry unsubscribe tokens)."""

from __future__ import annotations

import json
import logging
import socketserver
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jinja2

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


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    """Logs method, path and status only: the query string can hold a subscriber's token."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        log.info("%s %s %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s", format % args)


def make_wsgi_server(app: Callable[..., Iterable[bytes]], host: str, port: int) -> ThreadingWSGIServer:
    """A threaded server for ``app`` on host:port (port 0: any free port; see ``server_port``)."""
    return make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
