"""One contract, every delivery backend (the way Django runs one suite over its mail backends).

Each backend is built the way a config file builds it (through the registry; the memory backend,
which no config names, directly) and talks to a real peer on 127.0.0.1 where it has one: an
aiosmtpd server for SMTP, the local service stub for SendGrid, Mailgun and Postmark. Every
backend must: work as a context manager, and open again after closing; return one result per
message, in order; report a recipient the peer refuses as ``failed`` with the peer's words,
without raising; and deliver each message's subject, text and HTML intact, with the recipient's
own token and address filled in.
"""

from __future__ import annotations

import email
import html as htmllib
import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr, quote
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from renderdata import SLOT, golden_issue, make_settings
from servicestub import DOCUMENTED, KEY, Answer, Request, ServiceStub
from smtpserver import RecordingHandler, SMTPServer

from digest.delivery.base import Backend, OutgoingMessage
from digest.delivery.console import ConsoleBackend
from digest.delivery.memory import MemoryBackend
from digest.delivery.mime import MessageTemplate
from digest.delivery.registry import BACKENDS, backend_from_settings
from digest.models import NAME_MARK, DeliveryResult, RenderedIssue
from digest.render.issue import render_issue

SERVICES = ("sendgrid", "mailgun", "postmark")
REFUSAL = "550 5.1.1 No such user here"


@dataclass(frozen=True)
class Arrival:
    """What reached the peer for one recipient."""

    subject: str
    text: str
    html: str


@dataclass
class Peer:
    """A backend and the far end it talks to."""

    backend: Backend
    # Everything that arrived so far, per recipient.
    arrived: Callable[[], dict[str, Arrival]]
    # Refuse this recipient from now on (None: this peer accepts every address).
    refuse: Callable[[str], None] | None = None


def _from_mime(raw: bytes) -> tuple[str, Arrival]:
    msg: EmailMessage = email.message_from_bytes(raw, policy=policy.default)  # type: ignore[assignment]
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return str(msg["To"]), Arrival(str(msg["Subject"]), text.get_content(), html.get_content())


def _configured(tmp_path: Path, backend: str, **tables: dict[str, Any]) -> Backend:
    settings = make_settings(tmp_path, {"delivery": {"backend": backend, **tables}})
    return backend_from_settings(settings.delivery, issue_key="2025-W33", newsletter=settings.newsletter)


def console_peer(tmp_path: Path, stack: ExitStack) -> Peer:
    backend = _configured(tmp_path, "console")
    assert isinstance(backend, ConsoleBackend)
    backend.stream = out = io.BytesIO()

    def arrived() -> dict[str, Arrival]:
        chunks = out.getvalue().split(b"\n" + b"-" * 78 + b"\n")
        return dict(_from_mime(chunk) for chunk in chunks if chunk.strip())

    return Peer(backend, arrived)


def outbox_peer(tmp_path: Path, stack: ExitStack) -> Peer:
    folder = tmp_path / "outbox"
    backend = _configured(tmp_path, "outbox", outbox={"path": str(folder)})
    return Peer(backend, lambda: dict(_from_mime(p.read_bytes()) for p in (folder / "2025-W33").glob("*.eml")))


def memory_peer(tmp_path: Path, stack: ExitStack) -> Peer:
    refused: set[str] = set()

    def decide(m: OutgoingMessage) -> DeliveryResult | None:
        return DeliveryResult(m.recipient, "failed", None, REFUSAL) if m.recipient in refused else None

    backend = MemoryBackend(decide)
    return Peer(backend, lambda: dict(_from_mime(raw) for _, raw in backend.sent), refused.add)


def smtp_peer(tmp_path: Path, stack: ExitStack) -> Peer:
    handler = RecordingHandler()
    server = stack.enter_context(SMTPServer(handler))
    backend = _configured(tmp_path, "smtp", smtp={"host": "127.0.0.1", "port": server.port, "security": "none"})

    def refuse(address: str) -> None:
        handler.refuse[address] = REFUSAL

    return Peer(backend, lambda: dict(_from_mime(r.raw) for r in server.received), refuse)


# --- the e-mail services: a stub that answers as each service documents, and reads back what a
# recipient would receive from the request (the service's own substitutions applied) ------------


def _sendgrid(requests: list[Request]) -> dict[str, Arrival]:
    out = {}
    for req in requests:
        body = json.loads(req.body)
        text, html = (c["value"] for c in body["content"])
        for p in body["personalizations"]:
            filled = [text, html, body["subject"]]
            for tag, value in p["substitutions"].items():
                filled = [s.replace(tag, value) for s in filled]
            to = p["to"][0]
            named = f'"{quote(to["name"])}" <{to["email"]}>' if to.get("name") else to["email"]
            out[named] = Arrival(filled[2], filled[0], filled[1])
    return out


def _mailgun(requests: list[Request]) -> dict[str, Arrival]:
    out = {}
    for req in requests:
        fields = parse_qsl(req.body.decode())
        form = dict(fields)
        variables = json.loads(form["recipient-variables"])
        for to in (v for k, v in fields if k == "to"):
            values = variables[parseaddr(to)[1]]
            filled = [form["text"], form["html"], form["subject"]]
            for name, value in values.items():
                filled = [s.replace(f"%recipient.{name}%", value) for s in filled]
            out[to] = Arrival(filled[2], filled[0], filled[1])
    return out


def _postmark(requests: list[Request]) -> dict[str, Arrival]:
    return {
        m["To"]: Arrival(m["Subject"], m["TextBody"], m["HtmlBody"]) for req in requests for m in json.loads(req.body)
    }


def _service_answer(service: str, refused: set[str], delivered: list[Request]) -> Callable[[Request], Answer]:
    """Answers as the service would; ``delivered`` gets each request the service accepted, with
    the messages it refused left out. A request that is not as the service documents it is
    answered 400 with what is wrong, which fails the contract's checks of the results."""

    def answer(req: Request) -> Answer:
        problem = DOCUMENTED[service](req)
        if problem is not None:
            return Answer(400, json.dumps({"message": f"not as documented: {problem}"}).encode())
        if service == "postmark":
            # Postmark answers a batch with one result per message.
            results = [
                {"ErrorCode": 300, "Message": REFUSAL}
                if parseaddr(m["To"])[1] in refused
                else {"To": m["To"], "MessageID": f"pm-{i}", "ErrorCode": 0, "Message": "OK"}
                for i, m in enumerate(json.loads(req.body))
            ]
            kept = [m for m in json.loads(req.body) if parseaddr(m["To"])[1] not in refused]
            delivered.append(Request(req.method, req.path, req.headers, json.dumps(kept).encode()))
            return Answer(200, json.dumps(results).encode())
        to = (
            [p["to"][0]["email"] for p in json.loads(req.body)["personalizations"]]
            if service == "sendgrid"
            else [parseaddr(v)[1] for k, v in parse_qsl(req.body.decode()) if k == "to"]
        )
        if refused & set(to):
            # SendGrid and Mailgun refuse a request as a whole: the batch fails together.
            return Answer(400, json.dumps({"message": REFUSAL}).encode())
        delivered.append(req)
        if service == "sendgrid":
            return Answer(202, b"", {"X-Message-Id": "sg-1"})
        return Answer(200, json.dumps({"id": "<1@mg.example.org>", "message": "Queued. Thank you."}).encode())

    return answer


def service_peer(service: str) -> Callable[[Path, ExitStack], Peer]:
    def make(tmp_path: Path, stack: ExitStack) -> Peer:
        refused: set[str] = set()
        delivered: list[Request] = []
        stub = stack.enter_context(ServiceStub(_service_answer(service, refused, delivered)))
        table: dict[str, Any] = {"base_url": stub.base_url, "api_key_env": "TEST_API_KEY"}
        if service == "mailgun":
            table["domain"] = "mg.example.org"
        backend = _configured(tmp_path, service, **{service: table})
        read = {"sendgrid": _sendgrid, "mailgun": _mailgun, "postmark": _postmark}[service]
        return Peer(backend, lambda: read(delivered), refused.add)

    return make


PEERS: dict[str, Callable[[Path, ExitStack], Peer]] = {
    "console": console_peer,
    "outbox": outbox_peer,
    "memory": memory_peer,
    "smtp": smtp_peer,
    **{service: service_peer(service) for service in SERVICES},
}
REFUSING = [name for name in PEERS if name not in ("console", "outbox")]


def test_every_configurable_backend_is_under_contract() -> None:
    assert set(BACKENDS) <= set(PEERS)


@pytest.fixture
def peer_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Peer]]:
    monkeypatch.setenv("TEST_API_KEY", KEY)
    with ExitStack() as stack:
        yield lambda name: PEERS[name](tmp_path, stack)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> MessageTemplate:
    settings = make_settings(tmp_path_factory.mktemp("render"))
    return MessageTemplate(render_issue(golden_issue(), settings), settings.newsletter)


def messages(
    template: MessageTemplate, recipients: list[str], names: list[str | None] | None = None
) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(r, template, f"token-{i}", template.new_message_id(), SLOT, names[i] if names else None)
        for i, r in enumerate(recipients)
    ]


def _lines(text: str) -> str:
    """A body compared line by line: mail carries CRLF and ends with a line break."""
    return text.replace("\r\n", "\n").rstrip("\n")


@pytest.mark.parametrize("name", PEERS)
def test_a_context_manager_that_opens_again(name: str, peer_for: Callable[[str], Peer], template) -> None:
    peer = peer_for(name)
    first, second = messages(template, ["ann@example.org", "bob@example.org"])
    with peer.backend as backend:
        assert backend is peer.backend
        assert [r.status for r in backend.send_batch([first])] == ["sent"]
    with peer.backend as backend:
        assert [r.status for r in backend.send_batch([second])] == ["sent"]
    assert sorted(peer.arrived()) == ["ann@example.org", "bob@example.org"]


@pytest.mark.parametrize("name", PEERS)
def test_one_result_per_message_in_order_and_the_content_intact(
    name: str, peer_for: Callable[[str], Peer], template
) -> None:
    peer = peer_for(name)
    recipients = [f"reader{i:02d}@example.org" for i in range(12)] + ["o'neil&co@example.org"]
    batch = messages(template, recipients)
    with peer.backend as backend:
        results = backend.send_batch(batch)
    assert [r.recipient for r in results] == recipients
    assert {r.status for r in results} == {"sent"}
    arrived = peer.arrived()
    assert sorted(arrived) == sorted(recipients)
    for m in batch:
        name = template.recipient_name(None)
        text, html = template.bodies(
            token=m.token, email=m.recipient, email_html=htmllib.escape(m.recipient), name=name, name_html=name
        )
        got = arrived[m.recipient]
        assert got.subject == template.subject
        assert _lines(got.text) == _lines(text)
        assert _lines(got.html) == _lines(html)
        assert m.token in got.text and m.recipient in got.text


@pytest.mark.parametrize("name", PEERS)
def test_the_subscribers_name_in_to_and_in_the_body(name: str, peer_for: Callable[[str], Peer], tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rendered = RenderedIssue("2025-W33", "Hello", "", f"<p>Dear {NAME_MARK},</p>\n", f"Dear {NAME_MARK},\n")
    template = MessageTemplate(rendered, settings.newsletter)
    peer = peer_for(name)
    recipients = ["ann@example.org", "bob@example.org", "zoe@example.org"]
    batch = messages(template, recipients, ["Ann  Lee", None, 'Zoë "Z" <&>'])
    with peer.backend as backend:
        assert {r.status for r in backend.send_batch(batch)} == {"sent"}
    arrived = {parseaddr(to): a for to, a in peer.arrived().items()}
    ann = arrived[("Ann Lee", "ann@example.org")]
    assert _lines(ann.text) == "Dear Ann Lee," and "<p>Dear Ann Lee,</p>" in ann.html
    bob = arrived[("", "bob@example.org")]
    assert _lines(bob.text) == "Dear reader,"  # the newsletter's name_fallback
    zoe = arrived[('Zoë "Z" <&>', "zoe@example.org")]
    assert _lines(zoe.text) == 'Dear Zoë "Z" <&>,' and "<p>Dear Zoë &quot;Z&quot; &lt;&amp;&gt;,</p>" in zoe.html


@pytest.mark.parametrize("name", REFUSING)
def test_a_refused_recipient_is_reported_without_raising(name: str, peer_for: Callable[[str], Peer], template) -> None:
    peer = peer_for(name)
    assert peer.refuse is not None
    recipients = ["ann@example.org", "nobody@example.org", "bob@example.org"]
    peer.refuse("nobody@example.org")
    with peer.backend as backend:
        results = backend.send_batch(messages(template, recipients))
    assert [r.recipient for r in results] == recipients
    refused = results[1]
    assert refused.status == "failed" and REFUSAL in (refused.detail or ""), refused
    # SendGrid and Mailgun refuse a request with one bad recipient as a whole; the backend splits
    # the batch until the refusal is down to that recipient, so the others still get the message.
    assert [r.status for r in results] == ["sent", "failed", "sent"]
    assert sorted(peer.arrived()) == ["ann@example.org", "bob@example.org"]
