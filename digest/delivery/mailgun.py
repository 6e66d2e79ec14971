"""Mailgun through its messages API, batch-sending with recipient variables.

One request names up to 1,000 recipients (``to`` repeated) and gives each its own values in
``recipient-variables``; ``%recipient.NAME%`` in the content and in ``h:`` headers is replaced
per recipient, and each recipient gets a message of its own.

- Messages API, ``h:`` headers, Basic auth as ``api``:
  https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages
- Batch sending, recipient variables, at most 1,000 recipients:
  https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
"""

from __future__ import annotations

import html as htmllib
import json
from collections.abc import Sequence

import requests

from digest.config import MailgunSettings
from digest.delivery.api import APIBackend
from digest.delivery.base import OutgoingMessage
from digest.delivery.mime import api_to_field
from digest.models import DeliveryResult


class MailgunBackend(APIBackend):
    name = "mailgun"
    service = "Mailgun"
    settings_key = "mailgun"
    max_batch = 1000

    def __init__(self, settings: MailgunSettings, *, session: requests.Session | None = None) -> None:
        super().__init__(settings, session=session)
        self.domain = settings.domain

    def form(self, messages: Sequence[OutgoingMessage]) -> list[tuple[str, str]]:
        t = messages[0].template
        text, html = t.bodies(
            token="%recipient.token%",
            email="%recipient.email%",
            email_html="%recipient.email_html%",
            name="%recipient.name%",
            name_html="%recipient.name_html%",
        )
        fields = [("from", t.nl.sender)]
        fields += [("to", api_to_field(m.recipient, m.name)) for m in messages]
        fields += [
            ("subject", t.subject),
            ("text", text),
            ("html", html),
            ("h:List-Unsubscribe", f"<%recipient.unsubscribe_url%>, <mailto:{t.mailto}?subject=unsubscribe>"),
            ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("h:List-Id", t.list_id),
            (
                "recipient-variables",
                json.dumps(
                    {
                        m.recipient: {
                            "token": m.token,
                            "email": m.recipient,
                            "email_html": htmllib.escape(m.recipient),
                            "name": t.recipient_name(m.name),
                            "name_html": htmllib.escape(t.recipient_name(m.name)),
                            "unsubscribe_url": m.unsubscribe_url,
                        }
                        for m in messages
                    }
                ),
            ),
        ]
        if t.nl.reply_to:
            fields.append(("h:Reply-To", t.nl.reply_to))
        return fields

    def post(self, messages: Sequence[OutgoingMessage]) -> requests.Response:
        return self.session.post(
            self.url(f"/v3/{self.domain}/messages"),
            data=self.form(messages),
            auth=("api", self.api_key),
            timeout=self.timeout,
        )

    def read(self, messages: Sequence[OutgoingMessage], resp: requests.Response) -> list[DeliveryResult]:
        try:
            mid = resp.json().get("id")
        except ValueError:
            mid = None
        return [DeliveryResult(m.recipient, "sent", mid, f"Mailgun: HTTP {resp.status_code}") for m in messages]
