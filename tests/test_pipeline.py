"""The order of the stages, end to end at the function level: ingest a folder into a fresh store,
build the issue, send it through the memory backend, send again and nothing goes out."""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from conftest import write_article
from deliverykit import FakeClock

from digest.build_files import SAMPLE_RECIPIENT, write_build
from digest.config import Settings, load_config
from digest.delivery.memory import MemoryBackend
from digest.delivery.sender import Sender, token_signer
from digest.pipeline import (
    build_issue,
    due_slot,
    ingest,
    run_once,
    send_issue,
    send_issue_exclusive,
    send_test_copy,
    sync_subscribers,
)
from digest.store import Store

SUBSCRIBERS = ["ann@example.org", "bob@example.org", "cy@example.org"]


def _newsletter(write_config, tmp_path: Path, extra: str = "") -> tuple[Settings, Store]:  # type: ignore[no-untyped-def]
    content = tmp_path / "content"
    write_article(content, "old.md", title="Last week", date="2025-08-01T10:00:00+01:00", body="Old news. Kept.")
    write_article(content, "bridge.md", title="A very old bridge", date="2025-08-05T10:00:00+01:00", body="Stone.")
    write_article(content, "lanterns.md", title="Lanterns", date="2025-08-08T10:00:00+01:00", body="Light. More.")
    settings = load_config(write_config(extra, subscribers=SUBSCRIBERS))
    return settings, Store(settings.state_url)


def _subject(raw: bytes) -> str:
    message: Message = message_from_bytes(raw)
    return str(message["Subject"])


def test_ingest_build_send_and_send_again_sends_nothing(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    settings, store = _newsletter(write_config, tmp_path)

    ingested = ingest(settings, store, now=fixed_now)
    assert [(s.name, s.seen, s.new, s.error) for s in ingested.sources] == [("articles", 3, 3, None)]

    slot = due_slot(settings, fixed_now)
    assert slot.key == "2025-W33"
    built = build_issue(settings, store, slot)
    # Newest first; last week's article is left out, with its reason.
    assert [a.title for a in built.issue.articles] == ["Lanterns", "A very old bridge"]
    assert [(s.article.title, s.reason.split(" (")[0]) for s in built.issue.skipped] == [
        ("Last week", "published before the window")
    ]
    assert "Lanterns" in built.rendered.subject

    assert sync_subscribers(settings, store, now=fixed_now) == (3, [])
    backend = MemoryBackend()
    sender = Sender(settings, store, clock=FakeClock(fixed_now).now, backend=backend)
    first = send_issue(settings, store, slot, now=fixed_now, sender=sender)
    assert first.outcome == "sent", first.message
    assert first.counts == {"sent": 3}
    assert sorted(to for to, _ in backend.sent) == SUBSCRIBERS
    assert {_subject(raw) for _, raw in backend.sent} == {built.rendered.subject}
    assert store.issues.get(slot.key).status == "sent"

    again_backend = MemoryBackend()
    again = send_issue(
        settings,
        store,
        slot,
        now=fixed_now,
        sender=Sender(settings, store, clock=FakeClock(fixed_now).now, backend=again_backend),
    )
    assert again.outcome == "already-sent"
    assert again.message == "issue 2025-W33 was already sent (3 delivered); nothing to send"
    assert again_backend.sent == [] and again_backend.opened == 0


def test_run_once_reads_sends_and_a_second_run_touches_nothing(
    write_config, tmp_path: Path, fixed_now: datetime
) -> None:
    settings, store = _newsletter(write_config, tmp_path)
    backend = MemoryBackend()
    ingested, report = run_once(settings, store, as_of=fixed_now, now=fixed_now, backend=backend)
    assert [s.new for s in ingested.sources] == [3]
    assert report.outcome == "sent" and report.counts == {"sent": 3}
    # A new article after the send: the second run for the slot reads no source and sends nothing.
    write_article(tmp_path / "content", "late.md", title="Late", date="2025-08-10T10:00:00+01:00", body="Late.")
    ingested, report = run_once(settings, store, as_of=fixed_now, now=fixed_now, backend=backend)
    assert ingested.sources == () and report.outcome == "already-sent"
    assert len(backend.sent) == 3 and "Late" not in {a.title for a in store.articles.all()}


def test_a_thin_week_is_skipped_once_and_then_reported(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    settings, store = _newsletter(write_config, tmp_path)
    settings = settings.model_copy(update={"selection": settings.selection.model_copy(update={"min_articles": 3})})
    ingest(settings, store, now=fixed_now)
    sync_subscribers(settings, store, now=fixed_now)
    slot = due_slot(settings, fixed_now)
    backend = MemoryBackend()
    sender = Sender(settings, store, clock=FakeClock(fixed_now).now, backend=backend)

    dry = send_issue(settings, store, slot, now=fixed_now, sender=sender, dry_run=True)
    assert dry.outcome == "skipped" and store.issues.get(slot.key) is None  # a dry run records nothing
    report = send_issue(settings, store, slot, now=fixed_now, sender=sender)
    assert report.message == ("issue 2025-W33 not sent: only 2 new articles, fewer than selection.min_articles = 3")
    assert store.issues.get(slot.key).status == "skipped" and backend.sent == []
    again = send_issue(settings, store, slot, now=fixed_now, sender=sender)
    assert again.outcome == "skipped" and again.message.endswith("; nothing to send")


def test_a_dry_run_renders_every_message_and_changes_nothing(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    settings, store = _newsletter(write_config, tmp_path)
    ingest(settings, store, now=fixed_now)
    sync_subscribers(settings, store, now=fixed_now)
    slot = due_slot(settings, fixed_now)
    backend = MemoryBackend()
    report = send_issue_exclusive(settings, store, slot, now=fixed_now, backend=backend, dry_run=True)
    assert report.outcome == "dry-run" and report.counts == {"pending": 3}
    assert "with 2 articles would go to 3 subscribers" in report.message
    assert backend.sent == [] and store.issues.get(slot.key) is None


def test_a_held_issue_is_not_sent_until_released(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    settings, store = _newsletter(write_config, tmp_path)
    slot = due_slot(settings, fixed_now)
    assert store.issues.hold(slot.key, now=fixed_now)
    backend = MemoryBackend()
    _, report = run_once(settings, store, as_of=fixed_now, now=fixed_now, backend=backend)
    assert report.outcome == "held" and "digest hold --release 2025-W33" in report.message
    assert backend.sent == [] and store.issues.get(slot.key) is None
    store.issues.release_hold(slot.key)
    _, report = run_once(settings, store, as_of=fixed_now, now=fixed_now, backend=backend)
    assert report.outcome == "sent"


def test_a_test_copy_goes_to_one_address_outside_the_ledger(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    settings, store = _newsletter(write_config, tmp_path)
    ingest(settings, store, now=fixed_now)
    slot = due_slot(settings, fixed_now)
    backend = MemoryBackend()
    address = send_test_copy(settings, store, slot, "  Editor@Example.org ", now=fixed_now, backend=backend)
    assert address == "Editor@example.org"
    ((to, raw),) = backend.sent
    assert to == address and _subject(raw).startswith("[TEST] ")
    assert store.issues.get(slot.key) is None and store.deliveries.counts(slot.key) == {}


def test_write_build_writes_the_issue_for_a_sample_reader(write_config, tmp_path: Path, fixed_now: datetime) -> None:
    settings, store = _newsletter(write_config, tmp_path)
    ingest(settings, store, now=fixed_now)
    built = build_issue(settings, store, due_slot(settings, fixed_now + timedelta(days=1)))
    paths = write_build(built.rendered, settings, token_signer(settings, store), tmp_path / "out", now=fixed_now)
    assert [p.name for p in (paths.html, paths.text, paths.eml)] == ["issue.html", "issue.txt", "issue.eml"]
    assert "Lanterns" in paths.html.read_text() and "Lanterns" in paths.text.read_text()
    eml = message_from_bytes(paths.eml.read_bytes())
    assert eml["To"] == SAMPLE_RECIPIENT and eml["Subject"] == built.rendered.subject
