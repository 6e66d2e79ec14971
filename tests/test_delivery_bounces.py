"""The bounce mailbox, on messages written from the RFCs' examples: RFC 3464 appendix
(delivery status notifications), RFC 5965 appendix B (an abuse report), with our addresses and
the Message-IDs of real deliveries put in."""

from __future__ import annotations

import email
import mailbox
from email import policy
from pathlib import Path

import pytest
from conftest import write_article
from test_cli import digest

from digest.config import load_config
from digest.delivery.bounces import process_mailbox
from digest.pipeline import run_once
from digest.store import Store

SUBSCRIBERS = ["ana@example.org", "bo@example.org", "cy@example.org", "di@example.org", "ed@example.org"]


def sent_message_id(outbox: Path, address: str) -> str:
    msg = email.message_from_bytes((outbox / "2025-W33" / f"{address}.eml").read_bytes(), policy=policy.default)
    return str(msg["Message-ID"])


def dsn(*, to: str, recipient: str, status: str, diagnostic: str, returned_headers: str, own_id: str) -> bytes:
    """After RFC 3464, appendix: a DSN from MAILER-DAEMON with the returned message's headers."""
    return f"""\
Date: Mon, 11 Aug 2025 10:16:05 +0000
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>
Message-Id: {own_id}
Subject: Returned mail: Cannot send message
To: {to}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
     boundary="RAA14128.773615765/mx.example.org"

--RAA14128.773615765/mx.example.org

   The original message was received at Mon, 11 Aug 2025 09:00:28 +0000
   ----- The following addresses had permanent fatal errors -----
<{recipient}>

--RAA14128.773615765/mx.example.org
content-type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Original-Recipient: rfc822;{recipient}
Final-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic}
Last-Attempt-Date: Mon, 11 Aug 2025 10:15:49 +0000

--RAA14128.773615765/mx.example.org
content-type: text/rfc822-headers

{returned_headers}
--RAA14128.773615765/mx.example.org--
""".replace("\n", "\r\n").encode()


def arf(*, returned_message_id: str) -> bytes:
    """After RFC 5965, appendix B.2, with the recipient redacted (as providers do)."""
    return f"""\
From: <abusedesk@example.com>
Date: Mon, 11 Aug 2025 17:40:36 +0000
Message-ID: <arf-1@example.com>
Subject: FW: Test Weekly
To: <digest@news.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Mon, 11 Aug 2025 09:00:00 +0000.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <digest@news.example.org>
Arrival-Date: Mon, 11 Aug 2025 09:00:00 +0000
Reporting-MTA: dns; mail.example.com
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: Test Weekly <digest@news.example.org>
To: <redacted@example.org>
Subject: Test Weekly
MIME-Version: 1.0
Content-type: text/plain
Message-ID: {returned_message_id}
Date: Mon, 11 Aug 2025 09:00:00 +0000

The lead of one.
--part1_13d.2e68ed54_boundary--
""".replace("\n", "\r\n").encode()


def unsubscribe_mail(sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: digest@news.example.org\r\nSubject: unsubscribe\r\n"
        "Message-ID: <u-1@example.org>\r\nDate: Mon, 11 Aug 2025 12:00:00 +0000\r\n\r\n\r\n"
    ).encode()


@pytest.fixture
def sent(write_config, tmp_path: Path, fixed_now):
    write_article(
        tmp_path / "content", "one.md", title="One", date="2025-08-08T10:00:00+01:00", body="The lead of one. More."
    )
    cfg = write_config(subscribers=SUBSCRIBERS)
    settings = load_config(cfg)
    with Store(settings.state_url) as store:
        _, report = run_once(settings, store, as_of=fixed_now, now=fixed_now)
        assert report.outcome == "sent"
    return cfg, settings, tmp_path / "outbox"


def messages(outbox: Path) -> list[bytes]:
    def headers(address: str) -> str:
        message_id = sent_message_id(outbox, address)
        return f"From: Test Weekly <digest@news.example.org>\r\nTo: {address}\r\nMessage-ID: {message_id}\r\n"

    return [
        # A hard bounce, matched by the returned message's Message-ID.
        dsn(
            to="<digest@news.example.org>",
            recipient="bo@example.org",
            status="5.1.1",
            diagnostic="550 5.1.1 <bo@example.org>: Recipient address rejected: User unknown",
            returned_headers=headers("bo@example.org"),
            own_id="<dsn-1@mx.example.org>",
        ),
        # A soft bounce (4.x.x): recorded, the address stays on the list (limit 3 in a row).
        dsn(
            to="<digest@news.example.org>",
            recipient="di@example.org",
            status="4.0.0",
            diagnostic="426 connection timed out",
            returned_headers=headers("di@example.org"),
            own_id="<dsn-2@mx.example.org>",
        ),
        # A hard bounce sent back to a per-recipient Return-Path (VERP): the DSN names only the
        # forwarding address the mail ended at.
        dsn(
            to="<digest+ana=example.org@news.example.org>",
            recipient="ana.old@forward.example.net",
            status="5.0.0",
            diagnostic="550 mailbox unavailable",
            returned_headers="Subject: Test Weekly\r\n",
            own_id="<dsn-3@mx.example.org>",
        ),
        arf(returned_message_id=sent_message_id(outbox, "cy@example.org")),
        unsubscribe_mail("Ed <ed@example.org>"),
        b"From: someone@example.net\r\nTo: digest@news.example.org\r\nSubject: Thanks!\r\nMessage-ID: <t-1@example.net>\r\n\r\nGreat issue.\r\n",
    ]


def test_dsn_arf_and_unsubscribe_mails_from_an_mbox(sent, tmp_path: Path, fixed_now) -> None:
    _, settings, outbox = sent
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for raw in messages(outbox):
        box.add(raw)
    box.close()
    with Store(settings.state_url) as store:
        results = process_mailbox(settings, store, tmp_path / "bounces.mbox", now=fixed_now)
        done = sorted(d for r in results for d in r.done)
        assert done == [
            ("complaint", "cy@example.org", "2025-W33", "suppressed"),
            ("hard-bounce", "ana@example.org", "2025-W33", "suppressed"),
            ("hard-bounce", "bo@example.org", "2025-W33", "suppressed"),
            ("soft-bounce", "di@example.org", "2025-W33", "recorded"),
            ("unsubscribe", "ed@example.org", "2025-W33", "suppressed"),
        ]
        assert {r.email: r.status for r in store.subscribers.all()} == {
            "ana@example.org": "bounced",
            "bo@example.org": "bounced",
            "cy@example.org": "complained",
            "di@example.org": "active",
            "ed@example.org": "unsubscribed",
        }
        # The same mailbox again changes nothing and counts nothing twice.
        again = process_mailbox(settings, store, tmp_path / "bounces.mbox", now=fixed_now)
        assert sum(r.seen_before for r in again) == 5
        assert store.feedback.counts("2025-W33") == {
            "complaint": 1,
            "hard-bounce": 2,
            "soft-bounce": 1,
            "unsubscribe": 1,
        }


def test_the_command_reads_a_maildir(sent, tmp_path: Path) -> None:
    cfg, _, outbox = sent
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in messages(outbox)[:1]:
        box.add(raw)
    box.close()
    proc = digest("--config", str(cfg), "bounces", "process", str(tmp_path / "Maildir"))
    assert proc.returncode == 0, proc.stderr
    assert "hard-bounce bo@example.org (issue 2025-W33): suppressed" in proc.stdout
    assert "1 messages: 1 reports applied" in proc.stdout


def test_a_path_that_is_no_mailbox_gets_one_line(sent, tmp_path: Path) -> None:
    cfg, _, _ = sent
    (tmp_path / "plain").mkdir()
    proc = digest("--config", str(cfg), "bounces", "process", str(tmp_path / "plain"))
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "not a Maildir" in proc.stderr and "Traceback" not in proc.stderr


def test_status_shows_what_came_back_and_the_complaint_rate(sent, tmp_path: Path, fixed_now) -> None:
    cfg, settings, outbox = sent
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for raw in messages(outbox):
        box.add(raw)
    box.close()
    with Store(settings.state_url) as store:
        process_mailbox(settings, store, tmp_path / "bounces.mbox", now=fixed_now)
    proc = digest("--config", str(cfg), "status", "2025-W33")
    assert proc.returncode == 0, proc.stderr
    assert "delivered 5, bounced 3 (2 hard, 1 soft), complained 1, unsubscribed from this issue 1" in proc.stdout
    assert "complaint rate: 20.00% (AT OR ABOVE Gmail's 0.3% line" in proc.stdout


def test_with_verp_each_smtp_copy_has_its_own_return_path_and_its_bounce_finds_the_recipient(
    write_config, tmp_path: Path, fixed_now
) -> None:
    from deliverykit import newsletter, smtp_toml
    from smtpserver import SMTPServer

    from digest.delivery.bounces import read_message
    from digest.pipeline import send_issue

    subs = ["ana@example.org", "bo+news@example.org"]
    with SMTPServer() as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, more="verp = true"), subscribers=subs, now=fixed_now
        )
        assert send_issue(settings, store, slot, now=fixed_now).outcome == "sent"
        return_paths = {r.rcpt_tos[0]: r.mail_from for r in server.received}
        store.close()
    assert return_paths == {
        "ana@example.org": "digest+ana=example.org@news.example.org",
        "bo+news@example.org": "digest+bo+news=example.org@news.example.org",
    }
    bounce = email.message_from_bytes(
        dsn(
            to=f"<{return_paths['bo+news@example.org']}>",
            recipient="someone.else@forward.example.net",
            status="5.1.1",
            diagnostic="550 no such user",
            returned_headers="Subject: x\r\n",
            own_id="<dsn-9@mx.example.org>",
        ),
        policy=policy.default,
    )
    (found,) = read_message(bounce, "digest@news.example.org")  # type: ignore[arg-type]
    assert (found.email, found.kind) == ("bo+news@example.org", "hard-bounce")


@pytest.mark.parametrize(("complaints", "over"), [(2, False), (3, True)])
def test_the_complaint_line_is_three_per_thousand(complaints: int, over: bool) -> None:
    from digest.delivery.status import IssueStatus

    status = IssueStatus("k", "sent", {"sent": 1000}, 0, (), (), {"complaint": complaints})
    assert status.complaint_rate == complaints / 1000
    assert status.over_complaint_line is over
