"""The backend contract, after Django's mail backends.

A backend is opened, sends batches of messages, reports one :class:`~digest.models.DeliveryResult`
per message, and is closed; it works as a context manager. ``send_batch`` never raises for a
problem with one recipient: it reports ``failed`` (permanent: the server refused this address) or
``retry`` (transient: try again later) for that message and carries on. It raises
:class:`~digest.errors.DeliveryConfigError` when the whole send must stop (bad credentials, a
wrong host), in which case the messages of that batch are not marked sent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType

from digest.config import DeliverySettings
from digest.models import DeliveryResult


@dataclass(frozen=True)
class OutgoingMessage:
    recipient: str
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class Backend(ABC):
    name = "backend"

    def open(self) -> None:  # noqa: B027 - optional hook
        """Make connections; called once before the first batch."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; always called, also after an error."""

    @abstractmethod
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send the messages; one result per message, in order."""

    def __enter__(self) -> "Backend":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def backend_from_settings(settings: DeliverySettings, *, issue_key: str) -> Backend:
    from digest.delivery.outbox import OutboxBackend
    from digest.delivery.smtp import SMTPBackend

    if settings.backend == "smtp":
        return SMTPBackend(settings.smtp)
    return OutboxBackend(settings.outbox.path / issue_key)
