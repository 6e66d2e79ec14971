"""The MIME message for one recipient: multipart/alternative (text first, then HTML), UTF-8,
quoted-printable, with the list headers mail providers expect of a newsletter."""

from __future__ import annotations

import binascii
import html as htmllib
import re
import secrets
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime

from digest.config import NewsletterSettings
from digest.models import RenderedIssue
from digest.render.environment import one_line
from digest.render.issue import EMAIL_MARK, MAX_SUBJECT, TOKEN_MARK, unsubscribe_url


class _FoldingPolicy(EmailPolicy):
    """The SMTP policy, minus one folding quirk: CPython moves a whole header value that would fit
    on a line of its own onto a continuation line ("Subject:" CRLF " The ..."). That is legal, but
    parsers then hand the value back with a leading space. Such ASCII values are folded between
    words instead."""

    def _fix(self, name: str, value: str, folded: str) -> str:
        quirk = f"{name}:{self.linesep} "
        text = str(value)
        if not folded.startswith(quirk) or not text.isascii() or "  " in text:
            return folded
        width = self.max_line_length or 78
        lines = [f"{name}:"]
        for word in text.split(" "):
            if len(lines[-1]) + 1 + len(word) > width and lines[-1] != f"{name}:":
                lines.append("")
            lines[-1] += " " + word
        return self.linesep.join(lines) + self.linesep

    def fold(self, name: str, value: str) -> str:
        return self._fix(name, value, super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = super().fold_binary(name, value)
        return self._fix(name, value, folded.decode("ascii", "surrogateescape")).encode("ascii", "surrogateescape")


POLICY = _FoldingPolicy(linesep="\r\n")


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
    msg = EmailMessage(policy=POLICY)
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
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/alternative"
    # Text first: clients show the last alternative they can display (RFC 2046 §5.1.4).
    msg.set_payload([_text_part(text, "plain"), _text_part(html, "html")])
    return msg


def normalise_body(text: str) -> str:
    """A body as mail carries it: lines split on CR, LF or CRLF alike, ending with a line break."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _text_part(body: str, subtype: str) -> MIMEPart:
    """A UTF-8, quoted-printable text part. binascii's C encoder does the work of the email
    package's pure-Python one about ten times faster; it wraps lines at 76 characters and
    encodes trailing white space, as RFC 2045 §6.7 asks."""
    body = normalise_body(body)
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part
