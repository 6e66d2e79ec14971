"""A local HTTP server standing in for an e-mail service: records every request and answers
from a script (a queue of canned answers), else with ``default(request)``. ``DOCUMENTED`` checks
a request as each service documents it (the doc links are in each backend module):

- SendGrid v3 Mail Send: POST /v3/mail/send, ``Authorization: Bearer KEY``, JSON with at most
  1,000 personalizations.
- Mailgun messages API: POST /v3/DOMAIN/messages, Basic auth ``api:KEY``, form fields, at most
  1,000 recipients with recipient-variables.
- Postmark batch: POST /email/batch, ``X-Postmark-Server-Token``, a JSON array of at most 500
  messages.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class ServiceStub:
    def __init__(self, default: Callable[[Request], Answer]) -> None:
        self.default = default
        self.script: list[Answer] = []
        self.requests: list[Request] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                req = Request(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                stub.requests.append(req)
                answer = stub.script.pop(0) if stub.script else stub.default(req)
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServiceStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


KEY = "test-key-Zm9vYmFy"


def check_sendgrid(req: Request) -> str | None:
    if req.path != "/v3/mail/send":
        return f"path {req.path}"
    if req.headers.get("authorization") != f"Bearer {KEY}":
        return "authorization"
    if not req.headers.get("content-type", "").startswith("application/json"):
        return "content-type"
    body = json.loads(req.body)
    if not 1 <= len(body["personalizations"]) <= 1000:
        return "The personalization block is limited to 1000 personalizations per API request."
    if [c["type"] for c in body["content"]] != ["text/plain", "text/html"]:
        return "content order"
    for key in ("from", "subject"):
        if key not in body:
            return f"missing {key}"
    return None


def check_mailgun(req: Request) -> str | None:
    if req.path != "/v3/mg.example.org/messages":
        return f"path {req.path}"
    if req.headers.get("authorization") != "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode():
        return "authorization"
    if req.headers.get("content-type") != "application/x-www-form-urlencoded":
        return "content-type"
    fields = parse_qsl(req.body.decode())
    to = [v for k, v in fields if k == "to"]
    if not 1 <= len(to) <= 1000:
        return "too many recipients"
    variables = json.loads(dict(fields)["recipient-variables"])
    # A "to" may carry a display name ("Ann Lee <ann@example.org>"); variables are keyed by address.
    if sorted(variables) != sorted(parseaddr(t)[1] for t in to):
        return "recipient-variables do not match to"
    for key in ("from", "subject", "text", "html"):
        if key not in dict(fields):
            return f"missing {key}"
    return None


def check_postmark(req: Request) -> str | None:
    if req.path != "/email/batch":
        return f"path {req.path}"
    if req.headers.get("x-postmark-server-token") != KEY:
        return "token"
    if req.headers.get("accept") != "application/json" or req.headers.get("content-type") != "application/json":
        return "accept/content-type"
    body = json.loads(req.body)
    if not 1 <= len(body) <= 500:
        return "Too many batch messages"
    for m in body:
        for key in ("From", "To", "Subject", "HtmlBody", "TextBody", "MessageStream"):
            if key not in m:
                return f"missing {key}"
    return None


#: The check for each service: None when the request is as documented, else what is wrong.
DOCUMENTED: dict[str, Callable[[Request], str | None]] = {
    "sendgrid": check_sendgrid,
    "mailgun": check_mailgun,
    "postmark": check_postmark,
}
