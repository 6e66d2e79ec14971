"""Postmark through its batch endpoint: up to 500 messages per request, 50 MB at most.

Postmark's batch call has no substitution tags (that is its template API), so each message of
the batch carries its recipient's own bodies and List-Unsubscribe header. The answer reports
each message in order: ``ErrorCode`` 0 is accepted; 406 is an inactive (bounced or complained)
recipient; 429 asks us to slow down.

- Batch endpoint, 500 messages, 50 MB, ``X-Postmark-Server-Token``:
  https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
- Message fields (From, To, Subject, HtmlBody, TextBody, ReplyTo, Headers, MessageStream) and 401:
  https://postmarkapp.com/developer/user-guide/sending-with-api
- Error codes: https://postmarkapp.com/developer/api/overview#error-codes
"""

from __future__ import annotations

import html as htmllib
import json
from collections.abc import Sequence

import requests

from digest.config import PostmarkSettings
from digest.delivery.api import APIBackend
from digest.delivery.base import OutgoingMessage
from digest.delivery.mime import api_to_field
from digest.errors import DeliveryConfigError
from digest.models import DeliveryResult

MAX_PAYLOAD = 50 * 1000 * 1000


class PostmarkBackend(APIBackend):
    name = "postmark"
    service = "Postmark"
    settings_key = "postmark"
    max_batch = 500

    def __init__(self, settings: PostmarkSettings, *, session: requests.Session | None = None) -> None:
        super().__init__(settings, session=session)
        self.stream = settings.message_stream

    def message(self, m: OutgoingMessage) -> dict[str, object]:
        t = m.template
        shown = t.recipient_name(m.name)
        text, html = t.bodies(
            token=m.token,
            email=m.recipient,
            email_html=htmllib.escape(m.recipient),
            name=shown,
            name_html=htmllib.escape(shown),
        )
        out: dict[str, object] = {
            "From": t.nl.sender,
            "To": api_to_field(m.recipient, m.name),
            "Subject": t.subject,
            "TextBody": text,
            "HtmlBody": html,
            "Headers": [
                {"Name": "List-Unsubscribe", "Value": t.list_unsubscribe(m.token)},
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                {"Name": "List-Id", "Value": t.list_id},
            ],
            "MessageStream": self.stream,
        }
        if t.nl.reply_to:
            out["ReplyTo"] = t.nl.reply_to
        return out

    def post(self, messages: Sequence[OutgoingMessage]) -> requests.Response:
        body = json.dumps([self.message(m) for m in messages]).encode("utf-8")
        if len(body) > MAX_PAYLOAD:
            raise DeliveryConfigError(
                f"Postmark takes at most 50 MB per batch; {len(messages)} messages make {len(body) / 1e6:.0f} MB; "
                "lower delivery.batch_size"
            )
        return self.session.post(
            self.url("/email/batch"),
            data=body,
            headers={
                "X-Postmark-Server-Token": self.api_key,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=self.timeout,
        )

    def read(self, messages: Sequence[OutgoingMessage], resp: requests.Response) -> list[DeliveryResult]:
        try:
            answers = resp.json()
        except ValueError:
            answers = None
        if not isinstance(answers, list) or len(answers) != len(messages):
            # Accepted, but not in the documented form: the messages are taken as sent.
            return self.every(messages, "sent", f"Postmark: HTTP {resp.status_code}, unexpected answer")
        results = []
        for m, a in zip(messages, answers):
            code = a.get("ErrorCode", 0) if isinstance(a, dict) else 0
            words = f"Postmark: {code} {a.get('Message', '')}".strip() if isinstance(a, dict) else "Postmark"
            if code == 0:
                results.append(DeliveryResult(m.recipient, "sent", a.get("MessageID"), words))
            elif code == 429:
                results.append(DeliveryResult(m.recipient, "retry", None, words, {"throttle": "1"}))
            elif code == 406:
                results.append(DeliveryResult(m.recipient, "failed", None, words, {"bounce": "1"}))
            else:
                results.append(DeliveryResult(m.recipient, "failed", None, words))
        return results
