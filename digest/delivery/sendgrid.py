"""SendGrid through its v3 Mail Send API.

One request carries up to 1,000 personalizations, one per recipient; each has its own
substitutions (the unsubscribe token and the address, replacing the issue's markers in the
content) and its own List-Unsubscribe header.

- Request, auth (``Authorization: Bearer``), 202 answer:
  https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
- Personalizations, substitutions and headers per personalization:
  https://www.twilio.com/docs/sendgrid/for-developers/sending-email/personalizations
- At most 1,000 personalizations and 1,000 recipients per request:
  https://twilio.com/docs/sendgrid/api-reference/mail-send/errors
"""

from __future__ import annotations

import html as htmllib
from collections.abc import Sequence
from typing import Any

import requests

from digest.delivery.api import APIBackend, sender_parts
from digest.delivery.base import OutgoingMessage
from digest.delivery.mime import display_name
from digest.models import DeliveryResult

TOKEN_TAG = "-digest_token-"
EMAIL_TAG = "-digest_email-"
EMAIL_HTML_TAG = "-digest_email_html-"
NAME_TAG = "-digest_name-"
NAME_HTML_TAG = "-digest_name_html-"


class SendGridBackend(APIBackend):
    name = "sendgrid"
    service = "SendGrid"
    settings_key = "sendgrid"
    max_batch = 1000

    def payload(self, messages: Sequence[OutgoingMessage]) -> dict[str, Any]:
        t = messages[0].template
        text, html = t.bodies(
            token=TOKEN_TAG, email=EMAIL_TAG, email_html=EMAIL_HTML_TAG, name=NAME_TAG, name_html=NAME_HTML_TAG
        )
        name, address = sender_parts(t.nl.sender)
        body: dict[str, Any] = {
            "personalizations": [
                {
                    "to": [{"email": m.recipient, **({"name": display_name(m.name)} if display_name(m.name) else {})}],
                    "substitutions": {
                        TOKEN_TAG: m.token,
                        EMAIL_TAG: m.recipient,
                        EMAIL_HTML_TAG: htmllib.escape(m.recipient),
                        NAME_TAG: t.recipient_name(m.name),
                        NAME_HTML_TAG: htmllib.escape(t.recipient_name(m.name)),
                    },
                    "headers": {"List-Unsubscribe": t.list_unsubscribe(m.token)},
                    "custom_args": {"digest_issue": t.rendered.key},
                }
                for m in messages
            ],
            "from": {"email": address, **({"name": name} if name else {})},
            "subject": t.subject,
            # text/plain must come before text/html.
            "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
            "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "List-Id": t.list_id},
        }
        if t.nl.reply_to:
            body["reply_to"] = {"email": t.nl.reply_to}
        return body

    def post(self, messages: Sequence[OutgoingMessage]) -> requests.Response:
        return self.session.post(
            self.url("/v3/mail/send"),
            json=self.payload(messages),
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=self.timeout,
        )

    def read(self, messages: Sequence[OutgoingMessage], resp: requests.Response) -> list[DeliveryResult]:
        # One X-Message-Id for the whole request; SendGrid appends a suffix per recipient.
        mid = resp.headers.get("X-Message-Id")
        return [DeliveryResult(m.recipient, "sent", mid, f"SendGrid: HTTP {resp.status_code}") for m in messages]
