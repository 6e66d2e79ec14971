"""The delivery backends by name: the one table from a ``[delivery] backend`` value to its class.

The config accepts the names in :data:`digest.config.DELIVERY_BACKENDS` (it sits below the
backends and imports none of them; a test keeps that list equal to this table's keys) and reads
the secret each backend's settings declare; :func:`backend_from_settings` builds the backend the
name selects (:meth:`~digest.delivery.base.Backend.from_settings`). The contract module
(:mod:`digest.delivery.base`) imports no backend, so no backend imports back into a module that
imports it.
"""

from __future__ import annotations

from digest.config import DeliverySettings, NewsletterSettings
from digest.delivery.base import Backend
from digest.delivery.console import ConsoleBackend
from digest.delivery.mailgun import MailgunBackend
from digest.delivery.outbox import OutboxBackend
from digest.delivery.postmark import PostmarkBackend
from digest.delivery.sendgrid import SendGridBackend
from digest.delivery.smtp import SMTPBackend

BACKENDS: dict[str, type[Backend]] = {
    backend.name: backend
    for backend in (OutboxBackend, SMTPBackend, SendGridBackend, MailgunBackend, PostmarkBackend, ConsoleBackend)
}


def backend_from_settings(
    settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
) -> Backend:
    """The configured backend, for the issue ``issue_key`` (see :meth:`Backend.from_settings`)."""
    return BACKENDS[settings.backend].from_settings(settings, issue_key=issue_key, newsletter=newsletter)
