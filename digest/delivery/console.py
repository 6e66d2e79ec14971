"""The console backend: each message written to standard output, for a look at what would go."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

from digest.config import DeliverySettings, NewsletterSettings
from digest.delivery.base import Backend, OutgoingMessage
from digest.models import DeliveryResult


class ConsoleBackend(Backend):
    name = "console"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self.stream = stream

    @classmethod
    def from_settings(
        cls, settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
    ) -> ConsoleBackend:
        return cls()

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        out = self.stream or sys.stdout.buffer
        results = []
        for m in messages:
            self._pace()
            out.write(m.as_bytes().replace(b"\r\n", b"\n"))
            out.write(b"\n" + b"-" * 78 + b"\n")
            results.append(DeliveryResult(m.recipient, "sent", m.message_id))
        out.flush()
        return results
