"""The MIME message for one recipient: multipart/alternative (text first, then HTML), UTF-8,
quoted-printable, with the list headers mail providers expect of a newsletter."""

from __future__ import annotations

import html as htmllib
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from digest.config import NewsletterSettings
from digest.models import RenderedIssue
from digest.render.issue import EMAIL_MARK, TOKEN_MARK


def personalise(rendered: RenderedIssue, *, email: str, token: str) -> tuple[str, str]:
    """The issue's HTML and text with one recipient's token and address filled in."""
    html = rendered.html.replace(TOKEN_MARK, token).replace(EMAIL_MARK, htmllib.escape(email))
    text = rendered.text.replace(TOKEN_MARK, token).replace(EMAIL_MARK, email)
    return html, text


def list_id(nl: NewsletterSettings) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in nl.title.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{nl.title} <{slug or 'newsletter'}.{nl.sender_domain}>"


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
    # Header values must never carry a line break: a subject could otherwise add headers.
    msg["Subject"] = " ".join(f"{subject_prefix}{rendered.subject}".split())
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(idstring=rendered.key.replace(" ", ""), domain=nl.sender_domain)
    msg["List-ID"] = list_id(nl)
    unsubscribe = f"{nl.unsubscribe_base}?token={token}"
    mailto = nl.unsubscribe_mailto or nl.sender_address
    # RFC 8058 one-click unsubscribe: an https URI that accepts a POST, plus a mailto fallback.
    msg["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg
