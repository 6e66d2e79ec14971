"""The delivery backends by name: the values ``[delivery] backend`` accepts.

This table is the one list of backends. Loading the config checks the name against it and reads
the secret its backend declares (:attr:`~digest.delivery.base.Backend.secret`) from the
environment; :func:`backend_from_settings` builds the backend it names. The contract module
(:mod:`digest.delivery.base`) imports no backend, so no backend imports back into a module that
imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.delivery.base import Backend
from digest.delivery.console import ConsoleBackend
from digest.delivery.mailgun import MailgunBackend
from digest.delivery.outbox import OutboxBackend
from digest.delivery.postmark import PostmarkBackend
from digest.delivery.sendgrid import SendGridBackend
from digest.delivery.smtp import SMTPBackend

if TYPE_CHECKING:
    from digest.config import DeliverySettings, NewsletterSettings

BACKENDS: dict[str, type[Backend]] = {
    backend.name: backend
    for backend in (OutboxBackend, SMTPBackend, SendGridBackend, MailgunBackend, PostmarkBackend, ConsoleBackend)
}


def backend_from_settings(
    settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
) -> Backend:
    """The configured backend, for the issue ``issue_key`` (see :meth:`Backend.from_settings`)."""
    return BACKENDS[settings.backend].from_settings(settings, issue_key=issue_key, newsletter=newsletter)
