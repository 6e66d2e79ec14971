"""The delivery backends by name: the one table from a ``[delivery] backend`` value to its class.

The config accepts the names in :data:`digest.config.DELIVERY_BACKENDS` (it sits below the
backends and imports none of them; a test keeps that list equal to this table's keys) and reads
the secret each backend's settings declare; :func:`backend_from_settings` builds the backend the
name selects (:meth:`~digest.delivery.base.Backend.from_settings`). The contract module
(:mod:`digest.delivery.base`) imports no backend, so no backend imports back into a module that
imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from digest.config import DeliverySettings, NewsletterSettings
from digest.delivery.base import Backend

# Where each backend lives. A send imports only the one it uses: an SMTP send need not load the
# HTTP client the services use (time and memory at every start).
_WHERE: dict[str, tuple[str, str]] = {
    "outbox": ("digest.delivery.outbox", "OutboxBackend"),
    "smtp": ("digest.delivery.smtp", "SMTPBackend"),
    "sendgrid": ("digest.delivery.sendgrid", "SendGridBackend"),
    "mailgun": ("digest.delivery.mailgun", "MailgunBackend"),
    "postmark": ("digest.delivery.postmark", "PostmarkBackend"),
    "console": ("digest.delivery.console", "ConsoleBackend"),
}


class _Backends(Mapping[str, type[Backend]]):
    """The backend classes by name, each imported when first looked up."""

    def __getitem__(self, name: str) -> type[Backend]:
        module, attr = _WHERE[name]
        cls: type[Backend] = getattr(importlib.import_module(module), attr)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


BACKENDS: Mapping[str, type[Backend]] = _Backends()


def backend_from_settings(
    settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
) -> Backend:
    """The configured backend, for the issue ``issue_key`` (see :meth:`Backend.from_settings`)."""
    return BACKENDS[settings.backend].from_settings(settings, issue_key=issue_key, newsletter=newsletter)
