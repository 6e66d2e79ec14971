"""The backend contract, after Django's mail backends.

A backend is opened, sends batches of messages, reports one :class:`~digest.models.DeliveryResult`
per message, and is closed; it works as a context manager. ``send_batch`` never raises for a
problem with one recipient: it reports ``failed`` (permanent: the server refused this address) or
``retry`` (transient: try again later) for that message and carries on. A result may carry hints
in ``extra``: ``retry_after`` (seconds the service asked us to wait), ``throttle`` (the service
said we are going too fast: the pace slows down) and ``bounce`` (the address does not exist: the
subscriber is marked bounced).

It raises :class:`SendStopped` (a :class:`~digest.errors.DeliveryConfigError`) when the whole
send must stop — bad credentials, a sender the relay refuses, a wrong host — carrying the results
of the messages of that batch that did go out; the others are not marked sent.

Messages arrive as :class:`OutgoingMessage`: the issue's :class:`~digest.delivery.mime.MessageTemplate`
plus one recipient's values. Backends that send MIME call :meth:`OutgoingMessage.as_bytes`;
e-mail-service backends build their request from the template and the per-recipient values,
in the service's own substitution syntax.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from digest.config import DeliverySettings, NewsletterSettings
from digest.delivery.mime import MessageTemplate, needs_smtputf8, wire_address
from digest.errors import DeliveryConfigError, StateError
from digest.models import DeliveryResult

if TYPE_CHECKING:
    from digest.delivery.ratelimit import Pace


@dataclass(frozen=True)
class OutgoingMessage:
    recipient: str
    template: MessageTemplate
    token: str
    message_id: str
    date: datetime
    #: The subscriber's name, if they gave one (the To: display name and the templates' recipient_name).
    name: str | None = None

    @property
    def wire_recipient(self) -> str:
        """The envelope recipient: an internationalised domain in IDNA form (ValueError when it
        cannot be written)."""
        return wire_address(self.recipient)

    @property
    def needs_smtputf8(self) -> bool:
        return needs_smtputf8(self.recipient)

    @property
    def unsubscribe_url(self) -> str:
        return self.template.unsubscribe_url(self.token)

    @property
    def envelope_from(self) -> str:
        return self.template.envelope_from

    def as_bytes(self) -> bytes:
        """The whole RFC 5322 message (CRLF line ends), built by the fast path."""
        return self.template.render(
            to=self.recipient, token=self.token, date=self.date, message_id=self.message_id, name=self.name
        )

    def smtp_data(self) -> bytes:
        """:meth:`as_bytes` as SMTP DATA carries it (dot-stuffed, with the end-of-data line),
        made without a pass over the whole message."""
        return self.template.render_for_smtp(
            to=self.recipient, token=self.token, date=self.date, message_id=self.message_id, name=self.name
        )


class NotDurable(StateError):
    """An answered message's outcome could not be made durable: its connection sends nothing more
    (what it would send could not be accounted for either). A state database error, reported in
    one line like any other."""


class SendStopped(DeliveryConfigError):
    """The send must stop (credentials, configuration). ``done``: the results of the messages
    of the current batch that were handled before it stopped; the rest were not sent."""

    def __init__(self, message: str, done: Sequence[DeliveryResult] = ()) -> None:
        super().__init__(message)
        self.done = list(done)


class Backend(ABC):
    #: The ``[delivery] backend`` value that selects this backend (see digest.delivery.registry).
    name = "backend"
    #: The most messages one ``send_batch`` call takes (an API's per-request limit).
    max_batch = 100
    #: Set by the pipeline before ``open``: the shared pace (messages per second).
    pace: Pace | None = None
    #: Set by the send engine: called with each message's result as soon as the server answered
    #: it, from the thread that sent it. It queues the outcome to be made durable and returns a
    #: function that waits until it is (or None when there is nothing to wait for). That
    #: connection must not end its next message's content (send the line that makes the server
    #: accept it) before the wait returned: a crash then repeats only what was in flight.
    #: Backends that send a batch in one request need not call it: their batch is recorded when
    #: it returns.
    on_result: Callable[[DeliveryResult], Callable[[], None] | None] | None = None
    #: Whether the backend calls ``on_hand_over`` for each message right before its content goes
    #: out. Then only messages so marked count as possibly delivered after a crash; otherwise
    #: every claimed one does.
    reports_hand_over = False
    #: Set by the send engine: called with a message's recipient right before its content goes
    #: out; returns the wait for that mark to be durable, which the end of the content must not
    #: precede.
    on_hand_over: Callable[[str], Callable[[], None]] | None = None

    def open(self) -> None:  # noqa: B027 - optional hook
        """Make connections; called once before the first batch."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; always called, also after an error."""

    @abstractmethod
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send the messages; one result per message, in order."""

    @classmethod
    def from_settings(
        cls, settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
    ) -> Backend:
        """The backend as ``[delivery]`` configures it, for the issue ``issue_key``. With
        ``newsletter`` given and ``[delivery.dkim]`` set, backends that send MIME themselves sign
        it. The backends in digest.delivery.registry define this; the others (a test's in-memory
        backend) are built in code only."""
        raise DeliveryConfigError(f"the {cls.name} backend is not one [delivery] backend can name")

    def _answered(self, result: DeliveryResult) -> DeliveryResult:
        """Report ``result`` and wait until it is durable."""
        wait = self._report(result)
        if wait is not None:
            wait()
        return result

    def _hand_over(self, recipient: str) -> Callable[[], None] | None:
        """Mark ``recipient``'s message as going out; returns the wait for the mark."""
        return self.on_hand_over(recipient) if self.on_hand_over is not None else None

    def _report(self, result: DeliveryResult) -> Callable[[], None] | None:
        """Report ``result``; returns the wait for its durability (None: nothing to wait for)."""
        return self.on_result(result) if self.on_result is not None else None

    def _pace(self, n: int = 1) -> None:
        if self.pace is not None:
            self.pace.acquire(n)

    def __enter__(self) -> Backend:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
