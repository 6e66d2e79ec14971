"""The outbox backend: one .eml file per recipient in a folder. No server needed."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from digest.config import DeliverySettings, NewsletterSettings
from digest.delivery.base import Backend, OutgoingMessage
from digest.models import DeliveryResult

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def eml_name(address: str) -> str:
    return _UNSAFE.sub("_", address.lower()) + ".eml"


class OutboxBackend(Backend):
    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def from_settings(
        cls, settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
    ) -> OutboxBackend:
        return cls(settings.outbox.path / issue_key)

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        results = []
        for m in messages:
            self._pace()
            path = self.folder / eml_name(m.recipient)
            tmp = path.with_suffix(".eml.tmp")
            # Write then rename, so a crash never leaves a half-written message behind.
            tmp.write_bytes(m.as_bytes())
            os.replace(tmp, path)
            results.append(self._answered(DeliveryResult(m.recipient, "sent", m.message_id, str(path))))
        return results
