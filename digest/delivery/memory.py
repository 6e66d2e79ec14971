"""The memory backend: keeps every message it is given, for tests. An optional ``decide``
function scripts a server's answers per recipient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from digest.delivery.base import Backend, OutgoingMessage
from digest.models import DeliveryResult


class MemoryBackend(Backend):
    name = "memory"

    def __init__(
        self, decide: Callable[[OutgoingMessage], DeliveryResult | None] | None = None, *, max_batch: int = 100
    ) -> None:
        self.decide = decide
        self.max_batch = max_batch
        self.sent: list[tuple[str, bytes]] = []
        self.batches: list[int] = []
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        self.batches.append(len(messages))
        results = []
        for m in messages:
            self._pace()
            verdict = self.decide(m) if self.decide else None
            if verdict is None:
                self.sent.append((m.recipient, m.as_bytes()))
                verdict = DeliveryResult(m.recipient, "sent", m.message_id)
            results.append(self._answered(verdict))
        return results
