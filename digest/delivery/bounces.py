"""The bounce mailbox: delivery status notifications, feedback-loop reports and unsubscribe mails.

``digest bounces process PATH`` reads a Maildir (a folder with cur/, new/, tmp/) or an mbox file
and turns each message it understands into :class:`~digest.delivery.feedback.Feedback`:

- a DSN (RFC 3464: multipart/report; report-type=delivery-status): each per-recipient block with
  ``Action: failed`` is a hard bounce when its ``Status`` is 5.x.x, a soft one when 4.x.x
  (https://www.rfc-editor.org/rfc/rfc3464#section-2.3);
- an ARF report (RFC 5965: multipart/report; report-type=feedback-report) with
  ``Feedback-Type: abuse`` is a complaint (https://www.rfc-editor.org/rfc/rfc5965#section-3.5);
- a mail to the List-Unsubscribe mailto address whose subject is "unsubscribe" unsubscribes its sender.

Who it is about: the per-recipient Return-Path (VERP, ``bounces+ana=example.org@…``) the report
was sent back to, else the Message-ID of the returned message matched to its delivery, else the
address the report names (providers often redact it in complaints).
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path

from digest.config import Settings
from digest.delivery.feedback import Feedback, Kind, apply_feedback
from digest.delivery.verp import recipient_from_verp
from digest.errors import DigestError
from digest.store import Store


@dataclass(frozen=True)
class MailboxItem:
    """One message of the mailbox: where it is (for messages), its own Message-ID (so a message
    read twice is counted once) and what it says, or nothing when it is none of the three kinds."""

    where: str
    own_id: str | None
    feedback: tuple[Feedback, ...]


@dataclass(frozen=True)
class MailboxOutcome:
    where: str
    #: What was done, one entry per feedback item: (kind, address, issue or None, outcome).
    done: tuple[tuple[str, str, str | None, str], ...]
    #: True when this message was processed by an earlier run (matched by its own Message-ID).
    seen_before: bool = False


def process_mailbox(settings: Settings, store: Store, path: Path, *, now: datetime) -> list[MailboxOutcome]:
    """Read the mailbox at ``path`` and apply what each message says. A message processed
    before (the same Message-ID) is skipped, so running this on the same mailbox twice is harmless."""
    nl = settings.newsletter
    out: list[MailboxOutcome] = []
    for item in read_mailbox(path, unsubscribe_address=nl.unsubscribe_mailto or nl.sender_address):
        if not item.feedback:
            out.append(MailboxOutcome(item.where, ()))
            continue
        if item.own_id and not store.feedback.first_use(f"mailbox:{item.own_id}"[:128], now=now):
            out.append(MailboxOutcome(item.where, (), seen_before=True))
            continue
        done = []
        for f in item.feedback:
            applied = apply_feedback(store, f, now=now, soft_bounce_limit=settings.webhooks.soft_bounce_limit)
            done.append((f.kind, applied.address or "(no address)", applied.issue_key, applied.outcome))
        out.append(MailboxOutcome(item.where, tuple(done)))
    return out


def read_mailbox(path: Path, *, unsubscribe_address: str) -> Iterator[MailboxItem]:
    """Every message in the Maildir or mbox at ``path``, read."""
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            raise DigestError(
                f"{path}: a folder but not a Maildir (no cur/, new/, tmp/); give a Maildir or an mbox file"
            )
        box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(path, factory=None, create=False)
    elif path.is_file():
        box = mailbox.mbox(path, create=False)
    else:
        raise DigestError(f"{path}: no such Maildir or mbox file")
    try:
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            msg = message_from_bytes(raw, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            yield MailboxItem(
                f"{path}#{key}", _bare(msg.get("Message-ID")), tuple(read_message(msg, unsubscribe_address))
            )
    finally:
        box.close()


def read_message(msg: EmailMessage, unsubscribe_address: str) -> list[Feedback]:
    ctype = msg.get_content_type()
    report = str(msg.get_param("report-type", "", header="content-type")).lower()
    verp = _verp_address(msg)
    if ctype == "multipart/report" and report == "delivery-status":
        return _dsn(msg, verp)
    if ctype == "multipart/report" and report == "feedback-report":
        return _arf(msg, verp)
    to = {a.lower() for _, a in getaddresses([str(v) for v in msg.get_all("To", [])])}
    subject = " ".join(str(msg.get("Subject", "")).split()).lower()
    sender = parseaddr(str(msg.get("From", "")))[1]
    if unsubscribe_address.lower() in to and subject == "unsubscribe" and "@" in sender:
        return [Feedback(sender, "unsubscribe", "mailbox")]
    return []


def _bare(message_id: object) -> str | None:
    text = str(message_id or "").strip()
    return text.strip("<>") or None


def _verp_address(msg: Message) -> str | None:
    for field in ("X-Original-To", "Delivered-To", "To"):
        for _, addr in getaddresses([str(v) for v in msg.get_all(field, [])]):
            found = recipient_from_verp(addr)
            if found:
                return found
    return None


def _address(value: object) -> str | None:
    """The address of an RFC 3464 address field (``rfc822; ana@example.org``)."""
    text = str(value or "")
    kind, _, addr = text.partition(";")
    addr = (addr if addr else kind).strip().strip("<>")
    return addr if "@" in addr else None


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, str):  # some parsers leave the report as text
        return [
            HeaderParser().parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", payload) if block.strip()
        ]
    return []


def _returned_message_id(msg: Message) -> str | None:
    """The Message-ID of the message a report returns (message/rfc822 or text/rfc822-headers)."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return _bare(inner.get("Message-ID"))
        elif ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                found = BytesHeaderParser().parsebytes(raw).get("Message-ID")
                if found:
                    return _bare(found)
    return None


def _dsn(msg: EmailMessage, verp: str | None) -> list[Feedback]:
    message_id = _returned_message_id(msg)
    out: list[Feedback] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _fields(part)[1:]:  # the first block is about the whole message
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            recipient = verp or _address(block.get("Original-Recipient")) or _address(block.get("Final-Recipient"))
            if action != "failed" or not recipient:
                continue  # delayed, delivered, relayed, expanded: not a bounce
            kind: Kind = "hard-bounce" if status.startswith("5") else "soft-bounce"
            detail = " ".join(str(block.get("Diagnostic-Code") or status).split())
            out.append(Feedback(recipient, kind, "mailbox", None if verp else message_id, detail))
    return out


def _arf(msg: EmailMessage, verp: str | None) -> list[Feedback]:
    message_id = _returned_message_id(msg)
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = _fields(part)
        if not blocks:
            return []
        report = blocks[0]
        if str(report.get("Feedback-Type", "")).strip().lower() != "abuse":
            return []
        recipient = verp or _address(report.get("Original-Rcpt-To")) or _address(report.get("Removal-Recipient"))
        if recipient is None and message_id is None:
            return []
        return [Feedback(recipient or "", "complaint", "mailbox", None if verp else message_id, "feedback-loop report")]
    return []
