"""The MIME message for one recipient: multipart/alternative (text first, then HTML), UTF-8,
quoted-printable, with the list headers mail providers expect of a newsletter."""

from __future__ import annotations

import html as htmllib
import re
import secrets
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from digest.config import NewsletterSettings
from digest.models import RenderedIssue
from digest.render.environment import one_line
from digest.render.issue import EMAIL_MARK, MAX_SUBJECT, TOKEN_MARK, unsubscribe_url


def personalise(rendered: RenderedIssue, *, email: str, token: str) -> tuple[str, str]:
    """The issue's HTML and text with one recipient's token and address filled in."""
    html = rendered.html.replace(TOKEN_MARK, token).replace(EMAIL_MARK, htmllib.escape(email))
    text = rendered.text.replace(TOKEN_MARK, token).replace(EMAIL_MARK, email)
    return html, text


def message_id(key: str, domain: str) -> str:
    """A new Message-ID on the sender's domain: the issue key and 80 random bits, short enough that
    the header stays on one line (make_msgid's time and process id would fold it)."""
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '', key)[:40] or 'issue'}.{secrets.token_hex(10)}@{domain}>"


def list_id(nl: NewsletterSettings) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in nl.title.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{one_line(nl.title)} <{slug or 'newsletter'}.{nl.sender_domain}>"


def build_message(
    rendered: RenderedIssue,
    nl: NewsletterSettings,
    *,
    to: str,
    token: str,
    now: datetime,
    subject_prefix: str = "",
) -> EmailMessage:
    html, text = personalise(rendered, email=to, token=token)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = nl.sender
    msg["To"] = to
    if nl.reply_to:
        msg["Reply-To"] = nl.reply_to
    # Header values must never carry a line break or a control character: a subject could
    # otherwise add headers of its own.
    msg["Subject"] = one_line(subject_prefix + one_line(rendered.subject, MAX_SUBJECT))
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(rendered.key, nl.sender_domain)
    msg["List-ID"] = list_id(nl)
    unsubscribe = unsubscribe_url(nl, token)
    mailto = nl.unsubscribe_mailto or nl.sender_address
    # RFC 8058 one-click unsubscribe: an https URI that accepts a POST, plus a mailto fallback.
    msg["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg
