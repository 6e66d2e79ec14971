"""What the e-mail-service backends share: a requests Session with timeouts, and one reading of
HTTP answers.

- 2xx: the service's own answer, read by the backend (per message where the service reports so).
- 401 and 403: bad credentials or a sender the account may not use. The send stops
  (:class:`~digest.delivery.base.SendStopped`), nothing of the batch is marked sent.
- 429 and 5xx: transient, every message of the batch is retried later, no sooner than the
  ``Retry-After`` the service gave; a 429 also slows the pace down.
- Other 4xx (400, 422 …): the request was refused as a whole, which may be one malformed
  recipient or one malformed field. The batch is split in halves and each sent again, down to
  single messages; a single message refused is that recipient's failure, with the service's words.
  When every message of a batch of :data:`ALIKE` or more is refused on its own too, the request
  itself is wrong and the send stops (SendStopped), nothing of it marked — never a thousand
  failed subscribers for one malformed field.
- No answer (connection refused, timeout): transient.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

import requests

from digest.config import APISettings, DeliverySettings, NewsletterSettings
from digest.delivery.base import Backend, OutgoingMessage, SendStopped
from digest.errors import DeliveryConfigError
from digest.models import DeliveryResult
from digest.neterrors import connect_failure
from digest.retry_after import retry_after_seconds

#: A batch at least this large whose every message is refused on its own as well is taken as a
#: request the service cannot accept (a setting), not as that many bad recipients.
ALIKE = 4


def answer_text(resp: requests.Response, limit: int = 300) -> str:
    text = " ".join(resp.text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


class APIBackend(Backend):
    service = "service"
    settings_key = "service"

    def __init__(self, settings: APISettings, *, session: requests.Session | None = None) -> None:
        self.settings = settings
        if settings.api_key is None:
            raise DeliveryConfigError(
                f"delivery.{self.settings_key}: no API key; set the environment variable named by delivery.{self.settings_key}.api_key_env"
            )
        self.api_key = settings.api_key.get_secret_value()
        self.session = session or requests.Session()
        self.timeout = (min(10.0, settings.timeout), settings.timeout)

    @classmethod
    def from_settings(
        cls, settings: DeliverySettings, *, issue_key: str, newsletter: NewsletterSettings | None = None
    ) -> APIBackend:
        return cls(getattr(settings, cls.settings_key))

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        return self._send(messages, whole=True)

    def _send(self, messages: Sequence[OutgoingMessage], *, whole: bool) -> list[DeliveryResult]:
        """One request; ``whole``: the batch as the sender gave it (not a half of a split one)."""
        if len(messages) > self.max_batch:
            raise ValueError(f"{self.service} takes at most {self.max_batch} messages per request, got {len(messages)}")
        if not messages:
            return []
        self._pace(len(messages))
        try:
            resp = self.post(messages)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return self.every(messages, "retry", f"{self.service}: no answer: {connect_failure(exc)}")
        status = resp.status_code
        if status in (401, 403):
            raise SendStopped(
                f"{self.service} refused the request: HTTP {status}: {answer_text(resp)}; "
                f"check the API key in the variable named by delivery.{self.settings_key}.api_key_env and the sender address"
            )
        if status == 429 or status >= 500:
            extra = {"throttle": "1"} if status == 429 else {}
            after = retry_after_seconds(resp.headers.get("Retry-After"), date_header=resp.headers.get("Date"))
            if after is not None:
                extra["retry_after"] = f"{after:g}"
            return self.every(messages, "retry", f"{self.service}: HTTP {status}: {answer_text(resp)}", extra)
        if status >= 400:
            return self._split(messages, f"{self.service}: HTTP {status}: {answer_text(resp)}", whole=whole)
        return self.read(messages, resp)

    def _split(self, messages: Sequence[OutgoingMessage], words: str, *, whole: bool) -> list[DeliveryResult]:
        """Resolve a batch refused as a whole, recipient by recipient (see the module's notes)."""
        if len(messages) == 1:
            return [DeliveryResult(messages[0].recipient, "failed", None, words)]
        half = len(messages) // 2
        results: list[DeliveryResult] = []
        for part in (messages[:half], messages[half:]):
            try:
                results += self._send(part, whole=False)
            except SendStopped as exc:
                # What went out before the stop is reported, so it is recorded and not sent again.
                raise SendStopped(str(exc), results + exc.done) from None
        if whole and len(messages) >= ALIKE and all(r.status == "failed" for r in results):
            raise SendStopped(
                f"{words}; each of the {len(messages)} messages of the batch was refused on its own too, so the "
                "request itself is at fault, not the recipients; check [newsletter] and "
                f"[delivery.{self.settings_key}]"
            )
        return results

    @staticmethod
    def every(
        messages: Sequence[OutgoingMessage], status: Any, detail: str, extra: dict[str, str] | None = None
    ) -> list[DeliveryResult]:
        return [DeliveryResult(m.recipient, status, None, detail, dict(extra or {})) for m in messages]

    def post(self, messages: Sequence[OutgoingMessage]) -> requests.Response:
        raise NotImplementedError

    def read(self, messages: Sequence[OutgoingMessage], resp: requests.Response) -> list[DeliveryResult]:
        """Results from a 2xx answer; by default every message was accepted."""
        return self.every(messages, "sent", f"{self.service}: HTTP {resp.status_code}")


def sender_parts(sender: str) -> tuple[str, str]:
    """(display name, address) of the newsletter's sender."""
    return parseaddr(sender)
