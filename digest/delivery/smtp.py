"""SMTP: several connections, each reused for many messages, driven by one thread.

smtplib makes each connection (TLS, login); the transactions of a batch then run over all
``delivery.smtp.connections`` connections at once in digest.delivery.smtp_lanes, each
connection taking the next message when it is done. A connection is closed and opened again
after ``delivery.pace.messages_per_connection`` messages, and after a 421 (RFC 5321 §3.8: the
server is closing the channel). A connection found dropped before the message was handed over
is opened again and the message sent at once; one that drops while the server is answering the
end of DATA may have delivered it, so that message becomes a retry like any other transient
failure.

The transaction is driven step by step (MAIL, RCPT, DATA) so the backend knows how far each
message got, and the message goes out as the exact bytes it was given. When the server offers
PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write. **DKIM**: pass ``sign``
(bytes → bytes) to :class:`SMTPBackend`; it is applied to the finished message right before
DATA (:meth:`SMTPBackend.smtp_data`), so what is signed is exactly what is sent.
"""

from __future__ import annotations

import re
import selectors
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence

from digest.config import DeliverySettings, NewsletterSettings, SMTPSettings
from digest.delivery.base import Backend, OutgoingMessage, SendStopped
from digest.delivery.dkim import signer_from_settings
from digest.delivery.mime import smtp_data
from digest.delivery.smtp_lanes import LaneLoop
from digest.delivery.smtp_wire import CannotConnect, Lane
from digest.delivery.verp import verp_address
from digest.errors import DeliveryConfigError, DeliveryUnavailable
from digest.models import DeliveryResult

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def _words(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


def connect(s: SMTPSettings, ssl_context: ssl.SSLContext | None, local_hostname: str) -> smtplib.SMTP:
    """A ready connection (TLS and login done). Raises DeliveryConfigError when the settings
    are wrong (login, certificate, missing STARTTLS) and CannotConnect when the server
    cannot be reached."""
    where = f"{s.host}:{s.port}"
    assert ssl_context is not None or s.security == "none", "TLS needs a context"
    conn: smtplib.SMTP | None = None
    try:
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl_context, local_hostname=local_hostname
            )
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout, local_hostname=local_hostname)
        # Small writes (commands, the final dot) go out at once rather than waiting for the
        # previous segment's ACK (Nagle): with one round trip per reply that wait dominates.
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.ehlo()
        if s.security == "starttls":
            conn.starttls(context=ssl_context)
            conn.ehlo()
        if s.username:
            password = s.password.get_secret_value() if s.password else ""
            conn.login(s.username, password)
        return conn
    except smtplib.SMTPAuthenticationError as exc:
        _abandon(conn)
        raise DeliveryConfigError(
            f"SMTP server {where} refused the login for {s.username!r}: {_words(exc.smtp_code, exc.smtp_error)}; "
            "check delivery.smtp.username and the password variable"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        _abandon(conn)
        raise DeliveryConfigError(f"SMTP server {where}: {exc}; check delivery.smtp.security") from None
    except ssl.SSLCertVerificationError as exc:
        _abandon(conn)
        raise DeliveryConfigError(
            f"SMTP server {where}: certificate check failed ({exc.verify_message}); "
            "check delivery.smtp.host, or give the relay's CA bundle in delivery.smtp.ca_file"
        ) from None
    except ssl.SSLError as exc:
        _abandon(conn)
        raise DeliveryConfigError(
            f"SMTP server {where}: TLS failed ({exc}); check delivery.smtp.security and port"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        _abandon(conn)
        raise CannotConnect(
            f"cannot connect to SMTP server {where}: {exc}", unknown_host=isinstance(exc, socket.gaierror)
        ) from None


def _abandon(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


class SMTPBackend(Backend):
    name = "smtp"
    # Claims of 500: a claim is one transaction, which the outcomes' commits wait for; with
    # outcomes recorded one by one the batch no longer bounds what a crash repeats.
    max_batch = 500
    reports_hand_over = True

    def __init__(
        self,
        settings: SMTPSettings,
        *,
        messages_per_connection: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.per_connection = messages_per_connection
        cafile = str(settings.ca_file) if settings.ca_file else None
        # Certificates and host names are always checked (create_default_context). A relay without
        # TLS needs no context: loading the system's CA certificates takes a twentieth of a second.
        if ssl_context is None and settings.security != "none":
            ssl_context = ssl.create_default_context(cafile=cafile)
        self.ssl_context = ssl_context
        self.sign = sign
        self.where = f"{settings.host}:{settings.port}"
        self.lanes = [Lane(i) for i in range(settings.connections)]
        self._counts = [0] * settings.connections
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self.stopping = False
        self._local_hostname: str | None = None

    @classmethod
    def from_settings(
        cls, settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
    ) -> SMTPBackend:
        """DKIM-signed when ``newsletter`` is given and ``[delivery.dkim]`` is set (the services
        sign on their side)."""
        signer = signer_from_settings(settings.dkim, newsletter) if newsletter is not None else None
        return cls(
            settings.smtp,
            messages_per_connection=settings.pace.messages_per_connection,
            sign=signer.sign if signer is not None else None,
        )

    # --- connections (what digest.delivery.smtp_lanes.LaneLoop asks of the backend) ----------

    def _connect(self) -> smtplib.SMTP:
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        return connect(self.settings, self.ssl_context, self._local_hostname)

    def open(self) -> None:
        self.stopping = False
        try:
            # The first connection is made now, so wrong settings stop the send before any claim.
            self.ready(self.lanes[0])
        except CannotConnect as exc:
            if exc.unknown_host:
                raise DeliveryConfigError(f"{exc}; check delivery.smtp.host") from None
            # Refused, busy (a 421 greeting) or unreadable: the server's state, not the settings'.
            raise DeliveryUnavailable(str(exc)) from None

    def close(self) -> None:
        for lane in self.lanes:
            if lane.conn is not None:
                self._quit(lane)
        self.selector.close()
        self.selector = selectors.DefaultSelector()

    def lanes_for(self, n: int) -> list[Lane]:
        return self.lanes[: max(1, min(len(self.lanes), n))]

    def ready(self, lane: Lane) -> None:
        if lane.conn is not None and self._counts[lane.index] >= self.per_connection:
            self._quit(lane)
        if lane.conn is None:
            conn = self._connect()
            sock = conn.sock
            assert sock is not None
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, lane)
            lane.conn, lane.sock, lane.events = conn, sock, selectors.EVENT_READ  # (buffers: see _forget)
            self._counts[lane.index] = 0

    def _quit(self, lane: Lane) -> None:
        """Say QUIT (blocking, with the configured timeout) and forget the connection."""
        conn, sock = lane.conn, lane.sock
        self._forget(lane)
        if conn is None:
            return
        try:
            if sock is not None:
                sock.settimeout(self.settings.timeout)
            conn.quit()
        except (OSError, smtplib.SMTPException):
            _abandon(conn)

    def drop(self, lane: Lane) -> None:
        conn = lane.conn
        self._forget(lane)
        _abandon(conn)

    def _forget(self, lane: Lane) -> None:
        if lane.sock is not None and lane.events:
            try:
                self.selector.unregister(lane.sock)
            except (KeyError, ValueError):
                pass
        lane.conn, lane.sock, lane.events, lane.out = None, None, 0, None
        lane.inbuf.clear()
        lane.lines = []

    def count_message(self, lane: Lane) -> None:
        self._counts[lane.index] += 1

    def room_for_another(self, lane: Lane) -> bool:
        return self._counts[lane.index] + 1 < self.per_connection

    # --- messages ------------------------------------------------------------------------------

    def smtp_data(self, m: OutgoingMessage) -> bytes:
        if self.sign is None:
            return m.smtp_data()
        # DKIM goes here: what is signed is exactly what DATA carries (before stuffing).
        return smtp_data(self.sign(m.as_bytes()))

    def envelope(self, m: OutgoingMessage) -> tuple[str, str]:
        recipient = m.wire_recipient
        sender = verp_address(m.envelope_from, recipient) if self.settings.verp else m.envelope_from
        return angle_address(sender), angle_address(recipient)

    def pace_one(self) -> None:
        self._pace()

    def refusal(self, m: OutgoingMessage, code: int, text: bytes, stage: str) -> DeliveryResult:
        return refusal_result(m, code, text, stage, where=self.where)

    def report(self, result: DeliveryResult) -> Callable[[], None] | None:
        return self._report(result)

    def hand_over(self, m: OutgoingMessage) -> Callable[[], None] | None:
        return self._hand_over(m.recipient)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        loop = LaneLoop(self, messages, timeout=float(self.settings.timeout))
        try:
            results = loop.run()
        except DeliveryConfigError as exc:
            raise SendStopped(str(exc), [r for r in loop.results if r is not None]) from None
        return [r for r in results if r is not None]


# A dot-atom address with an ordinary domain (RFC 5321 §4.1.2): what every address digest keeps is,
# once normalised, and what smtplib.quoteaddr would only wrap in angle brackets after parsing it.
_DOT_ATOM_ADDRESS = re.compile(
    r"[!#-'*+\-/-9=?A-Z^-~]+(?:\.[!#-'*+\-/-9=?A-Z^-~]+)*@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)


def angle_address(address: str) -> str:
    """``<address>`` for MAIL FROM and RCPT TO. A plain address is wrapped as it is: smtplib's
    quoteaddr parses every address first (RFC 5322), which cost more CPU than the rest of the
    envelope; anything unusual still goes through it."""
    if _DOT_ATOM_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def refusal_result(m: OutgoingMessage, code: int, resp: bytes, stage: str, *, where: str) -> DeliveryResult:
    """What a refusal at ``stage`` means for message ``m``: a retry (4xx, or a reply that could not
    be read), a permanent failure (5xx; a bounce when its enhanced code is 5.1.x), or, for a sender
    or login the server refuses, a DeliveryConfigError that stops the send."""
    text = _words(code, resp)
    if not 200 <= code <= 599:
        # Nothing is known; the message is tried later like after any transient failure.
        return DeliveryResult(m.recipient, "retry", None, f"unreadable reply from {where} at {stage}: {text}")
    enhanced = _ENHANCED.match(resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp))
    if code in (530, 535, 538) or (stage == "MAIL" and code >= 500):
        raise DeliveryConfigError(
            f"SMTP server {where} refused the sender {m.envelope_from} at {stage}: {text}; "
            "check newsletter.sender and the relay's login settings (delivery.smtp)"
        )
    if 400 <= code < 500:
        extra: dict[str, str] = {}
        if code == 421 or (enhanced and enhanced.group(2) == "7"):
            extra["throttle"] = "1"
        return DeliveryResult(m.recipient, "retry", None, text, extra)
    extra = {"bounce": "1"} if enhanced and enhanced.group(1) == "5" and enhanced.group(2) == "1" else {}
    return DeliveryResult(m.recipient, "failed", None, text, extra)
