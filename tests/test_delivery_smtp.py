from __future__ import annotations

import re
from pathlib import Path

from conftest import write_article
from smtpserver import RecordingHandler, SMTPServer

from digest.config import load_config
from digest.pipeline import due_slot, ingest, send_issue, sync_subscribers
from digest.store import Store


def _setup(write_config, tmp_path: Path, port: int, subscribers: list[str]):
    path = write_config(
        f'[delivery.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n', subscribers=subscribers
    )
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "smtp"'))
    for i in range(3):
        write_article(
            tmp_path / "content",
            f"a{i}.md",
            title=f"Article number {i} <about> & more",
            date=f"2025-08-0{5 + i}T10:00:00+01:00",
            body=f"The lead paragraph of article {i} says what it is about. It goes on a little.\n\nSecond paragraph.",
            extra=f"url: https://news.example.org/a{i}?x=1&y=2\n",
        )
    settings = load_config(path)
    store = Store(settings.state_url)
    return settings, store


def test_smtp_round_trip(write_config, tmp_path: Path, fixed_now) -> None:
    subs = ["ana@example.org", "bo@example.org", "cy@example.org"]
    with SMTPServer() as server:
        settings, store = _setup(write_config, tmp_path, server.port, subs)
        ingest(settings, store, now=fixed_now)
        sync_subscribers(settings, store, now=fixed_now)
        slot = due_slot(settings, fixed_now)
        report = send_issue(settings, store, slot, now=fixed_now)
        assert report.outcome == "sent", report.message
        assert report.counts == {"sent": 3}
        received = list(server.received)
        # A second send for the same slot sends nothing.
        again = send_issue(settings, store, slot, now=fixed_now)
        assert again.outcome == "already-sent"
        assert len(server.received) == 3

    assert sorted(r.rcpt_tos[0] for r in received) == subs
    tokens = set()
    for r in received:
        msg = r.message
        assert r.mail_from == "digest@news.example.org"
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        for p in msg.iter_parts():
            assert p.get_content_charset() == "utf-8"
            assert p["Content-Transfer-Encoding"] == "quoted-printable"
        assert msg["To"] == r.rcpt_tos[0]
        assert msg["From"] == "Test Weekly <digest@news.example.org>"
        assert msg["Reply-To"] == "editor@news.example.org"
        assert msg["Date"]
        assert re.fullmatch(r"<[^@>]+@news\.example\.org>", msg["Message-ID"])
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        m = re.search(r"<(https://news\.example\.org/unsubscribe\?token=[^>]+)>", msg["List-Unsubscribe"])
        assert m
        tokens.add(m.group(1))
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for i in range(3):
            assert f"Article number {i} <about> & more" in text
            assert f"Article number {i} &lt;about&gt; &amp; more" in html
            assert f"https://news.example.org/a{i}?x=1&amp;y=2" in html
        assert m.group(1) in text
        assert m.group(1) in html
        assert r.rcpt_tos[0] in text
        head, body = r.raw.split(b"\r\n\r\n", 1)
        # Quoted-printable lines stay within RFC 2045's 76; header lines within RFC 5322's 998.
        assert max(len(line) for line in body.splitlines()) <= 76
        assert max(len(line) for line in head.splitlines()) <= 998
        # The unsubscribe URL is written as it is, where mail clients look for it (RFC 2369).
        assert b"List-Unsubscribe: <" + m.group(1).encode() + b">," in head
    assert len(tokens) == 3, "each recipient has an own unsubscribe URL"


def test_refused_recipient_is_marked_failed(write_config, tmp_path: Path, fixed_now) -> None:
    handler = RecordingHandler(refuse={"bad@example.org": "550 5.1.1 No such user here"})
    with SMTPServer(handler) as server:
        settings, store = _setup(write_config, tmp_path, server.port, ["ok@example.org", "bad@example.org"])
        ingest(settings, store, now=fixed_now)
        sync_subscribers(settings, store, now=fixed_now)
        report = send_issue(settings, store, due_slot(settings, fixed_now), now=fixed_now)
    assert report.counts == {"sent": 1, "failed": 1}
    assert report.failures == [("bad@example.org", "550 5.1.1 No such user here")]
    assert [r.rcpt_tos for r in server.received] == [["ok@example.org"]]
