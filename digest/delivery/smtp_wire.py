"""One SMTP connection of a batch, as digest.delivery.smtp_lanes drives it: its socket (non-blocking,
watched by a selector), what it is waiting for, and the replies it reads.

Replies are parsed as smtplib parses them (RFC 5321 §4.2): ``ddd-`` lines continue a reply, a
line longer than 8,192 bytes is not SMTP, and a reply whose code is not a number has code -1.
"""

from __future__ import annotations

import selectors
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from digest.delivery.base import OutgoingMessage
from digest.models import DeliveryResult

MAXLINE = 8192  # as smtplib: a longer reply line is not SMTP
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE

# What a lane is waiting for. HELD: its content went out but for the end-of-data line, which
# waits until the lane's last outcome and this message's mark are durable.
IDLE, ENVELOPE, HELD, CONTENT, FINAL, CLOSING_DATA, RSET = range(7)


class CannotConnect(Exception):
    """A connection could not be made (refused, unreachable, a 421 greeting): the message waits
    for a retry. ``unknown_host``: the name does not resolve, a matter for the settings."""

    def __init__(self, message: str, *, unknown_host: bool = False) -> None:
        super().__init__(message)
        self.unknown_host = unknown_host


class Lost(Exception):
    """The connection failed (closed, reset, timed out, or a reply that is not SMTP)."""

    def __init__(self, reason: str, *, unreadable: bool = False) -> None:
        super().__init__(reason)
        self.unreadable = unreadable


Command = tuple[bytes, str, tuple[int, ...]]  # what is sent, the stage it is, the codes that accept it


def envelope_commands(envelope: tuple[str, str], utf8: bool) -> list[Command]:
    """MAIL FROM, RCPT TO and DATA for one message (``utf8``: the address needs SMTPUTF8)."""
    mail_from, rcpt_to = envelope
    encoding = "utf-8" if utf8 else "ascii"
    return [
        (f"MAIL FROM:{mail_from}{' SMTPUTF8' if utf8 else ''}\r\n".encode(encoding), "MAIL", (250,)),
        (f"RCPT TO:{rcpt_to}\r\n".encode(encoding), "RCPT", (250, 251)),
        (b"DATA\r\n", "DATA", (354,)),
    ]


class Ahead(NamedTuple):
    """A message taken for a lane before its current one ended: the envelope is sent in the same
    write as the current content (RFC 2920 allows content first in a group and DATA last)."""

    job: int
    msg: OutgoingMessage
    data: bytes
    envelope: tuple[str, str]
    utf8: bool
    commands: list[Command]


def ends_connection(code: int) -> bool:
    """A reply after which the connection is not used again: 421 (the server is closing, RFC 5321
    §3.8) or one that is not SMTP (smtplib's -1)."""
    return code == 421 or not 200 <= code <= 599


class Connections(Protocol):
    """What the loop needs of the backend (digest.delivery.smtp.SMTPBackend)."""

    where: str
    stopping: bool
    selector: selectors.BaseSelector

    def lanes_for(self, n: int) -> list[Lane]: ...

    def ready(self, lane: Lane) -> None:
        """Give ``lane`` a live connection (registered with the selector); raises CannotConnect
        or DeliveryConfigError."""

    def drop(self, lane: Lane) -> None: ...

    def count_message(self, lane: Lane) -> None: ...

    def smtp_data(self, m: OutgoingMessage) -> bytes: ...

    def envelope(self, m: OutgoingMessage) -> tuple[str, str]:
        """MAIL FROM's and RCPT TO's <address>."""

    def pace_one(self) -> None: ...

    def refusal(self, m: OutgoingMessage, code: int, text: bytes, stage: str) -> DeliveryResult: ...

    def report(self, result: DeliveryResult) -> Callable[[], None] | None: ...

    def hand_over(self, m: OutgoingMessage) -> Callable[[], None] | None:
        """Mark ``m`` as going out; returns the wait for the mark to be durable."""

    def room_for_another(self, lane: Lane) -> bool:
        """Whether ``lane``'s connection carries another message after the current one (else it
        is closed after it)."""


class Lane:
    """One connection and the transaction on it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.conn: smtplib.SMTP | None = None
        self.sock: socket.socket | None = None  # (an ssl.SSLSocket with TLS)
        self.inbuf = bytearray()
        self.lines: list[bytes] = []  # the lines of a multi-line reply so far
        self.out: memoryview | None = None  # what is still to be written
        self.job = -1
        self.msg: OutgoingMessage | None = None
        self.data = b""
        self.utf8 = False
        self.commands: list[Command] = []  # not sent yet (no PIPELINING)
        self.expect: list[tuple[str, tuple[int, ...]]] = []  # replies awaited: (stage, good codes)
        self.refusal: tuple[int, bytes, str] | None = None
        self.attempt = 1
        self.handed_over = False
        self.state = IDLE
        self.deadline = 0.0
        self.durable: Callable[[], None] | None = None  # the wait for the last outcome reported
        self.result: DeliveryResult | None = None  # decided, waiting for RSET's reply
        self.events = 0  # what the selector watches
        self.envelope = ("", "")  # MAIL FROM's and RCPT TO's <address>
        # The next message, whose envelope went out right behind this one's content.
        self.ahead: Ahead | None = None

    def flush(self, selector: selectors.BaseSelector) -> bool:
        """Write what is pending; True once all of it is written (else the selector watches for
        the socket to take more)."""
        out, sock = self.out, self.sock
        if out is None or sock is None:
            self.watch(selector, READ)
            return True
        try:
            while out:
                out = out[sock.send(out) :]
        except (BlockingIOError, ssl.SSLWantWriteError):
            self.out = out
            self.watch(selector, READ | WRITE)
            return False
        except ssl.SSLWantReadError:
            self.out = out
            self.watch(selector, READ)
            return False
        except OSError as exc:
            raise Lost(str(exc) or exc.__class__.__name__) from None
        self.out = None
        self.watch(selector, READ)
        return True

    def watch(self, selector: selectors.BaseSelector, events: int) -> None:
        if self.events != events and self.sock is not None:
            selector.modify(self.sock, events, self)
            self.events = events

    def receive(self) -> bytes:
        """What the server sent (b"" when nothing is there yet); raises Lost when it closed."""
        sock = self.sock
        assert sock is not None
        try:
            chunk = sock.recv(65536)
            while isinstance(sock, ssl.SSLSocket) and sock.pending():
                chunk += sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return b""
        except OSError as exc:
            raise Lost(str(exc) or exc.__class__.__name__) from None
        if not chunk:
            raise Lost("Connection unexpectedly closed")
        if self.state in (HELD, CONTENT, IDLE):
            raise Lost(f"unexpected reply before the message was sent: {chunk[:80]!r}", unreadable=True)
        return chunk

    def replies(self) -> Iterator[tuple[int, bytes]]:
        """The complete replies received (RFC 5321 §4.2: ``ddd-`` lines continue one), parsed as
        smtplib does: a reply whose code is not a number is code -1."""
        buf = self.inbuf
        buf += self.receive()
        while buf:
            end = buf.find(b"\n")
            if end < 0 or end >= MAXLINE:
                if len(buf) > MAXLINE:
                    raise Lost("reply line too long", unreadable=True)
                return
            line = bytes(buf[: end + 1])
            del buf[: end + 1]
            self.lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
            else:
                if line[3:4] == b"-":
                    continue  # more lines of the same reply
            text = b"\n".join(self.lines)
            self.lines = []
            yield code, text
