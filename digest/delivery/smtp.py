"""SMTP through smtplib: several connections, each reused for many messages.

A batch is spread over ``delivery.smtp.connections`` connections, one thread each (the work is
waiting on the network, so threads overlap well). A connection is closed and opened again after
``delivery.pace.messages_per_connection`` messages, and after a 421 (RFC 5321 §3.8: the server
is closing the channel). A connection found dropped before the message was handed over is
opened again and the message sent at once; one that drops while the server is answering the
end of DATA may have delivered it, so that message becomes a retry like any other transient
failure.

The transaction is driven step by step (MAIL, RCPT, DATA) rather than through ``sendmail`` so the
backend knows how far each message got, and the message goes out as the exact bytes it was
given. When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write. **DKIM**: pass ``sign`` (bytes → bytes) to :class:`SMTPBackend`; it is applied in
:meth:`SMTPBackend._send_one` to the finished message right before DATA, so what is signed is
exactly what is sent.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from digest.config import DeliverySettings, NewsletterSettings, SMTPSettings
from digest.delivery.base import Backend, NotDurable, OutgoingMessage, SendStopped
from digest.delivery.dkim import signer_from_settings
from digest.delivery.mime import smtp_data
from digest.delivery.verp import verp_address
from digest.errors import DeliveryConfigError, DeliveryUnavailable
from digest.models import DeliveryResult

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def _words(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


class _Dropped(Exception):
    """The connection went away. ``handed_over``: the whole message had been sent."""

    def __init__(self, cause: BaseException, *, handed_over: bool) -> None:
        super().__init__(str(cause) or cause.__class__.__name__)
        self.handed_over = handed_over


class _CannotConnect(Exception):
    """The server could not be reached or would not talk. ``unknown_host``: the name does not
    resolve, which is a matter for the settings rather than for waiting."""

    def __init__(self, message: str, *, unknown_host: bool = False) -> None:
        super().__init__(message)
        self.unknown_host = unknown_host


def connect(s: SMTPSettings, ssl_context: ssl.SSLContext, local_hostname: str) -> smtplib.SMTP:
    """A ready connection (TLS and login done). Raises DeliveryConfigError when the settings
    are wrong (login, certificate, missing STARTTLS) and _CannotConnect when the server
    cannot be reached."""
    where = f"{s.host}:{s.port}"
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
        raise _CannotConnect(
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
    # Claims of 500: a claim is one transaction, which the recorder's commits wait for; with
    # outcomes recorded one by one the batch no longer bounds what a crash repeats.
    max_batch = 500

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
        # Certificates and host names are always checked (create_default_context).
        self.ssl_context = ssl_context or ssl.create_default_context(cafile=cafile)
        self.sign = sign
        self.lanes = settings.connections
        self._conns: list[smtplib.SMTP | None] = [None] * self.lanes
        self._counts = [0] * self.lanes
        # Per connection: the wait for its last reported outcome to be durable (see _before_content).
        self._durable: list[Callable[[], None] | None] = [None] * self.lanes
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
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

    def _return_path(self, m: OutgoingMessage) -> str:
        return verp_address(m.envelope_from, m.wire_recipient) if self.settings.verp else m.envelope_from

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # --- connections -------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        return connect(self.settings, self.ssl_context, self._local_hostname)

    def open(self) -> None:
        self._stop.clear()
        try:
            # The first connection is made now, so wrong settings stop the send before any claim.
            self._conns[0] = self._connect()
        except _CannotConnect as exc:
            if exc.unknown_host:
                raise DeliveryConfigError(f"{exc}; check delivery.smtp.host") from None
            # Refused, busy (a 421 greeting) or unreadable: the server's state, not the settings'.
            raise DeliveryUnavailable(str(exc)) from None
        self._counts[0] = 0
        if self.lanes > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="smtp")

    def close(self) -> None:
        for i, conn in enumerate(self._conns):
            if conn is not None:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    _abandon(conn)
                self._conns[i] = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _lane(self, lane: int) -> smtplib.SMTP:
        conn = self._conns[lane]
        if conn is not None and self._counts[lane] >= self.per_connection:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                _abandon(conn)
            conn = None
        if conn is None:
            conn = self._connect()
            self._conns[lane] = conn
            self._counts[lane] = 0
        return conn

    def _drop(self, lane: int) -> None:
        _abandon(self._conns[lane])
        self._conns[lane] = None

    # --- sending -----------------------------------------------------------------------------

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult | None] = [None] * len(messages)
        lanes = min(self.lanes, len(messages))
        # The connections take the next message as they become free, so none idles at the end of
        # a batch while another still has a queue of its own.
        work = iter(range(len(messages)))

        def run(lane: int) -> None:
            try:
                for j in work:
                    if self._stop.is_set():
                        return
                    result = self._send_guarded(lane, messages[j])
                    results[j] = result
                    self._settle(lane)  # (done already if this message's content went out)
                    # Made durable while this connection opens the next transaction; the next
                    # message's content waits for it (see _before_content).
                    self._durable[lane] = self._report(result)
            finally:
                self._settle(lane)

        errors: list[BaseException] = []
        if self._pool is None or lanes <= 1:
            try:
                run(0) if lanes else None
            except DeliveryConfigError as exc:
                errors.append(exc)
        else:
            for f in [self._pool.submit(run, lane) for lane in range(lanes)]:
                try:
                    f.result()
                except DeliveryConfigError as exc:
                    self._stop.set()
                    errors.append(exc)
        if errors:
            self._stop.set()
            raise SendStopped(str(errors[0]), [r for r in results if r is not None])
        return [r for r in results if r is not None]

    def _settle(self, lane: int) -> None:
        """Wait until the lane's last reported outcome is durable."""
        wait, self._durable[lane] = self._durable[lane], None
        if wait is not None:
            wait()

    def _before_content(self, lane: int) -> None:
        """Called once the server is ready for a message's content: the previous message's outcome
        on this connection must be durable before any of this one goes out. Waiting here, not
        as soon as the previous answer came, lets the commit overlap the envelope's round trip."""
        self._settle(lane)

    def _send_one(self, lane: int, m: OutgoingMessage) -> DeliveryResult:
        try:
            utf8 = m.needs_smtputf8
            if self.sign is None:
                data = m.smtp_data()
            else:
                # DKIM goes here: what is signed is exactly what DATA carries (before stuffing).
                data = smtp_data(self.sign(m.as_bytes()))
        except Exception as exc:  # noqa: BLE001 - one recipient's problem never stops a batch
            return DeliveryResult(
                m.recipient, "failed", None, f"no message could be made for this address: {exc}", {"ours": "1"}
            )
        self._pace()
        for attempt in (1, 2):
            try:
                conn = self._lane(lane)
            except _CannotConnect as exc:
                return DeliveryResult(m.recipient, "retry", None, str(exc))
            try:
                return self._transaction(lane, conn, m, data, utf8=utf8)
            except DeliveryConfigError:
                raise
            except _Dropped as exc:
                self._drop(lane)
                if exc.handed_over:
                    # The whole message went out and no answer came: it may have been delivered.
                    return DeliveryResult(
                        m.recipient,
                        "retry",
                        None,
                        f"connection to {self._where} lost after the message was sent: {exc}",
                        {"possibly_delivered": "1"},
                    )
                if attempt == 2:
                    return DeliveryResult(m.recipient, "retry", None, f"connection to {self._where} lost: {exc}")
        raise AssertionError("unreachable")

    def _send_guarded(self, lane: int, m: OutgoingMessage) -> DeliveryResult:
        """:meth:`_send_one`, with anything unexpected turned into this one message's result, so
        no recipient's problem stops the batch (and the connection, in an unknown state, is
        dropped)."""
        try:
            return self._send_one(lane, m)
        except DeliveryConfigError:
            raise
        except NotDurable:
            self._drop(lane)  # the server waits for content that will not come
            raise
        except smtplib.SMTPException as exc:
            # A reply smtplib could not make sense of: transient, like a dropped connection.
            self._drop(lane)
            return DeliveryResult(m.recipient, "retry", None, f"SMTP server {self._where}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one recipient's problem never stops a batch
            self._drop(lane)
            return DeliveryResult(
                m.recipient, "failed", None, f"not sent: {exc.__class__.__name__}: {exc}", {"ours": "1"}
            )

    def _transaction(
        self, lane: int, conn: smtplib.SMTP, m: OutgoingMessage, data: bytes, *, utf8: bool
    ) -> DeliveryResult:
        if utf8 and not conn.has_extn("smtputf8"):
            return DeliveryResult(
                m.recipient,
                "failed",
                None,
                f"the address needs SMTPUTF8 (RFC 6531), which SMTP server {self._where} does not offer",
                {"ours": "1"},
            )
        try:
            if conn.has_extn("pipelining") and not utf8:
                refused = self._pipelined_envelope(lane, conn, m)
                if refused is not None:
                    return refused
            else:
                # RFC 6531: with SMTPUTF8 on MAIL, smtplib sends the envelope in UTF-8 and the
                # message carries RFC 6532 header fields.
                code, resp = conn.mail(self._return_path(m), ["SMTPUTF8"] if utf8 else [])
                if code != 250:
                    return self._refused(lane, conn, m, code, resp, "MAIL")
                code, resp = conn.rcpt(m.wire_recipient)
                if code not in (250, 251):
                    return self._refused(lane, conn, m, code, resp, "RCPT")
                conn.putcmd("data")
                code, resp = conn.getreply()
                if code != 354:
                    return self._refused(lane, conn, m, code, resp, "DATA")
            self._before_content(lane)
            conn.send(data)  # dot-stuffed, with the end-of-data line (RFC 5321 §4.5.2)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Dropped(exc, handed_over=False) from None
        try:
            code, resp = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _Dropped(exc, handed_over=True) from None
        self._counts[lane] += 1
        if code != 250:
            return self._refused(lane, conn, m, code, resp, "end of DATA")
        return DeliveryResult(m.recipient, "sent", m.message_id)

    def _pipelined_envelope(self, lane: int, conn: smtplib.SMTP, m: OutgoingMessage) -> DeliveryResult | None:
        """MAIL, RCPT and DATA in one write (RFC 2920); None when the server is ready for the message."""
        refusal = pipelined_envelope(conn, self._return_path(m), m.wire_recipient)
        return None if refusal is None else self._refused(lane, conn, m, *refusal)

    def _refused(
        self, lane: int, conn: smtplib.SMTP, m: OutgoingMessage, code: int, resp: bytes, stage: str
    ) -> DeliveryResult:
        if not 200 <= code <= 599 or code == 421:
            # An unreadable reply (smtplib's -1) or a server that is closing: the connection is
            # not trusted again.
            self._drop(lane)
        else:
            try:
                conn.rset()
            except (smtplib.SMTPException, OSError):
                self._drop(lane)
        return refusal_result(m, code, resp, stage, where=self._where)


def pipelined_envelope(conn: smtplib.SMTP, return_path: str, recipient: str) -> tuple[int, bytes, str] | None:
    """Send MAIL, RCPT and DATA in one write (RFC 2920), then read their three replies in order:
    two round trips fewer per message. The first refusal as (code, reply, stage), or None when
    the server is ready for the message."""
    conn.send(
        f"MAIL FROM:{angle_address(return_path)}\r\nRCPT TO:{angle_address(recipient)}\r\nDATA\r\n".encode("ascii")
    )
    refusal: tuple[int, bytes, str] | None = None
    for stage, ok in (("MAIL", (250,)), ("RCPT", (250, 251)), ("DATA", (354,))):
        code, resp = conn.getreply()
        if code == 421:
            # The server is closing: the replies still owed will not come.
            return code, resp, stage
        if stage == "DATA" and code == 354 and refusal is not None:
            # A server that opened DATA after refusing the envelope: close it empty.
            conn.send(b".\r\n")
            conn.getreply()
        if code not in ok and refusal is None:
            refusal = (code, resp, stage)
    return refusal


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
