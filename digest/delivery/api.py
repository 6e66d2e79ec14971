"""What the e-mail-service backends share: a requests Session with timeouts, and one reading of
HTTP answers.

- 2xx: the service's own answer, read by the backend (per message where the service reports so).
- 401 and 403: bad credentials or a sender the account may not use. The send stops
  (:class:`~digest.delivery.base.SendStopped`), nothing of the batch is marked sent.
- 429 and 5xx: transient, every message of the batch is retried later, no sooner than the
  ``Retry-After`` the service gave; a 429 also slows the pace down.
- Other 4xx: permanent for the messages of that request, with the service's words.
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
            return self.every(messages, "failed", f"{self.service}: HTTP {status}: {answer_text(resp)}")
        return self.read(messages, resp)

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
