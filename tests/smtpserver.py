"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), keeping what it receives, and a bare TCP
server for what aiosmtpd will not say (:class:`RawServer`).

:class:`RecordingHandler` records every accepted message and can refuse chosen recipients.
:class:`FaultyHandler` adds a misbehaving server: temporary refusals (421/451) and dropped
connections for a share of transactions, chosen by a seeded random generator, and hooks that
run when the n-th message arrives (the crash test kills the sender there).
"""

from __future__ import annotations

import email
import random
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply for RCPT
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pipelining: bool = False  # advertise RFC 2920 PIPELINING (aiosmtpd reads commands in order)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.record(envelope)
        return "250 Message accepted"

    def record(self, envelope: Any) -> None:
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content)
            )

    def per_recipient(self) -> Counter[str]:
        return Counter(r.rcpt_tos[0] for r in self.received)


@dataclass
class FaultyHandler(RecordingHandler):
    """Answers 421 or 451 to ``temporary`` of the transactions and drops the connection (no
    reply at all) in ``drops`` of them, at MAIL, RCPT or the end of DATA (then without keeping
    the message: a server that crashed before answering has not taken it)."""

    seed: int = 7
    temporary: float = 0.0
    drops: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    # Called with the number of messages kept so far, before (kill_before) or after (kill_after)
    # the n-th message is kept and before it is acknowledged.
    on_message: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _fault(self, server: Any, stage: str) -> str | None:
        with self.lock:
            x = self.rng.random()
        if x < self.drops:
            self.faults[f"drop at {stage}"] += 1
            server.transport.abort()
            return "drop"
        if x < self.drops + self.temporary:
            code = (
                "421 4.7.0 Too many messages, closing"
                if x < self.drops + self.temporary / 2
                else "451 4.3.0 Try again later"
            )
            self.faults[f"{code[:3]} at {stage}"] += 1
            return code
        return None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any) -> str:
        fault = self._fault(server, "MAIL")
        if fault == "drop":
            return "250 OK"  # never reaches the client: the connection is gone
        if fault:
            return fault
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        fault = self._fault(server, "RCPT")
        if fault == "drop":
            return "250 OK"
        if fault:
            return fault
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self._fault(server, "DATA")
        if fault == "drop":
            return "250 OK"
        if fault:
            return fault
        self.record(envelope)
        if self.on_message is not None:
            self.on_message(len(self.received))
        return "250 Message accepted"


class SMTPServer:
    def __init__(
        self,
        handler: RecordingHandler | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        logins: dict[str, str] | None = None,
        smtputf8: bool = False,
    ) -> None:
        self.handler = handler or RecordingHandler()
        self.port = free_port()
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if tls_context is not None and implicit_tls:
            kwargs["ssl_context"] = tls_context
        elif tls_context is not None:
            kwargs["tls_context"] = tls_context
            kwargs["require_starttls"] = True
        if logins is not None:
            kwargs["authenticator"] = _Authenticator(logins)
            # aiosmtpd only knows of STARTTLS; on an implicit-TLS port the whole session is TLS,
            # and there it offers AUTH (and checks the login) without insisting on it.
            kwargs["auth_required"] = not implicit_tls
            kwargs["auth_require_tls"] = tls_context is not None and not implicit_tls
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def received(self) -> list[Received]:
        return self.handler.received


class _Authenticator:
    def __init__(self, logins: dict[str, str]) -> None:
        self.logins = logins

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.logins.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class RawServer:
    """A bare TCP server on 127.0.0.1 for replies no SMTP server library gives (a greeting that is
    not SMTP, a relay that hangs): each accepted connection is handed to ``talk``, on the server's
    thread, and every connection is closed when the server stops."""

    def __init__(self, talk: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.talk = talk
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.talk(conn)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()
