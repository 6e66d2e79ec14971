"""The outbox backend: one .eml file per recipient in a folder. No server needed."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from digest.config import DeliverySettings, NewsletterSettings
from digest.delivery.base import Backend, OutgoingMessage
from digest.errors import DeliveryConfigError, os_reason
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
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(self.folder, exc) from None

    @staticmethod
    def _unwritable(path: Path, exc: OSError) -> DeliveryConfigError:
        # A configuration problem (a folder digest may not write, a full disk): the send stops
        # with nothing marked sent; a message already written is written again on the next run.
        return DeliveryConfigError(
            f"delivery.outbox.path: cannot write {path}: {os_reason(exc)}; "
            "give a folder digest can write to (and free disk space)"
        )

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        results = []
        for m in messages:
            self._pace()
            path = self.folder / eml_name(m.recipient)
            tmp = path.with_suffix(".eml.tmp")
            # Write then rename, so a crash never leaves a half-written message behind.
            try:
                tmp.write_bytes(m.as_bytes())
                os.replace(tmp, path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise self._unwritable(path, exc) from None
            results.append(self._answered(DeliveryResult(m.recipient, "sent", m.message_id, str(path))))
        return results
