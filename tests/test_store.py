"""The store: each repository through its public methods, the schema's migrations, and its boundaries."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from schemas import database_at_version
from statedb import server_url, state_url

from digest.errors import StateError
from digest.models import (
    Article,
    ArticleKey,
    ArticleWrite,
    Block,
    DeliveryResult,
    RenderedIssue,
    UpsertPlan,
    UpsertReport,
)
from digest.store import Store
from digest.store.records import (
    DeliveryRecord,
    HoldRecord,
    ImportReport,
    IssueRecord,
    IssueSummary,
    LeaseRecord,
    ReviewRecord,
    SourceRecord,
    SubscriberRecord,
)
from digest.store.schema import MIGRATIONS, SCHEMA_VERSION, metadata

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
RENDERED = RenderedIssue(key="2025-W33", subject="Issue 33", preheader="This week", html="<p>33</p>", text="33")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(state_url(tmp_path)) as s:
        yield s  # type: ignore[misc]


def assert_frozen(record: object) -> None:
    assert dataclasses.is_dataclass(record) and not isinstance(record, type)
    field = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)


def article(id: str, *, source: str = "blog", published: datetime = NOW - HOUR, **kw: object) -> Article:
    return Article(id=id, source=source, title=f"Title {id}", published=published, body=(Block("Text."),), **kw)  # type: ignore[arg-type]


def plan_of(*articles: Article, keys: tuple[ArticleKey, ...] = ()) -> UpsertPlan:
    return UpsertPlan(
        inserts=tuple(ArticleWrite(a, first_seen=NOW, content_hash=f"hash-{a.id}") for a in articles),
        updates=(),
        keys=keys,
        report=UpsertReport(new=len(articles)),
    )


def claim_issue(store: Store, recipients: list[tuple[str, str | None]] | None = None) -> None:
    assert store.issues.claim(
        RENDERED.key, slot=NOW, rendered=RENDERED, article_ids=["a1", "a2"], recipients=recipients, now=NOW
    )


# --- articles -------------------------------------------------------------------------------------


def test_articles_round_trip_every_field(store: Store) -> None:
    full = Article(
        id="a1",
        source="blog",
        title="A title",
        published=NOW - HOUR,
        body=(Block("Heading", kind="h"), Block("Paragraph.")),
        url="https://example.org/a1",
        author="Ann",
        dek="A dek",
        summary="An editor's summary.",
        image="https://example.org/a1.png",
        image_alt="A picture",
        tags=("one", "two"),
        section="News",
        language="en",
        updated=NOW,
        origin="content/a1.md",
        summary_by_editor=True,
    )
    assert store.articles.apply(plan_of(full)) == UpsertReport(new=1)
    assert store.articles.all() == [full]


def test_articles_known_reports_key_owners_and_stored_state(store: Store) -> None:
    store.articles.apply(plan_of(article("a1"), keys=(ArticleKey("k-url", "a1", "blog"),)))
    known = store.articles.known(["k-url", "k-unknown"], ["a2"])
    assert dict(known.owners) == {"k-url": "a1"}
    (stored,) = known.by_id.values()
    assert (stored.id, stored.source, stored.content_hash, stored.first_seen) == ("a1", "blog", "hash-a1", NOW)
    assert stored.body_chars == len("Text.")
    assert_frozen(stored)
    assert store.articles.known_keys("blog") == frozenset({"k-url"})
    assert store.articles.known_keys("other") == frozenset()


def test_articles_apply_updates_in_place(store: Store) -> None:
    store.articles.apply(plan_of(article("a1")))
    edited = dataclasses.replace(article("a1"), title="Edited")
    write = ArticleWrite(edited, first_seen=NOW, content_hash="hash-2")
    store.articles.apply(UpsertPlan(inserts=(), updates=(write,), keys=(), report=UpsertReport(updated=1)))
    assert [a.title for a in store.articles.all()] == ["Edited"]
    assert store.articles.known([], ["a1"]).by_id["a1"].content_hash == "hash-2"


def test_articles_published_between_is_open_at_the_start_and_newest_first(store: Store) -> None:
    store.articles.apply(plan_of(*(article(f"a{h}", published=NOW - h * HOUR) for h in range(4))))
    got = store.articles.published_between(NOW - 3 * HOUR, NOW)
    assert [a.id for a in got] == ["a0", "a1", "a2"]


# --- issues, holds, reviews -----------------------------------------------------------------------


def test_an_issue_is_claimed_once_and_read_back_as_a_record(store: Store) -> None:
    store.subscribers.add([("a@example.org", "A")], now=NOW)
    claim_issue(store)
    assert not store.issues.claim(RENDERED.key, slot=NOW, rendered=RENDERED, article_ids=[], recipients=[], now=NOW)
    record = store.issues.get(RENDERED.key)
    assert isinstance(record, IssueRecord) and record.status == "sending" and record.subject == "Issue 33"
    assert_frozen(record)
    assert store.issues.get("2025-W34") is None
    assert store.issues.rendered(RENDERED.key) == RENDERED
    assert store.issues.carried_article_ids() == {"a1", "a2"}
    assert store.issues.carried_article_ids(excluding=RENDERED.key) == set()
    assert [r.key for r in store.issues.unfinished()] == [RENDERED.key]
    store.issues.finish(RENDERED.key, now=NOW + HOUR)
    finished = store.issues.get(RENDERED.key)
    assert finished is not None and (finished.status, finished.finished_at) == ("sent", NOW + HOUR)
    assert store.issues.unfinished() == []


def test_published_issues_leave_out_skipped_ones_and_recent_lists_all(store: Store) -> None:
    claim_issue(store, recipients=[])
    assert store.issues.record_skipped("2025-W34", slot=NOW + 7 * 24 * HOUR, note="too few articles", now=NOW)
    assert not store.issues.record_skipped("2025-W34", slot=NOW, note="again", now=NOW)
    (published,) = store.issues.published()
    assert published == IssueSummary(
        key="2025-W33",
        slot=NOW,
        status="sending",
        subject="Issue 33",
        preheader="This week",
        note=None,
        created_at=NOW,
        finished_at=None,
    )
    assert [(r.key, r.status, r.note) for r in store.issues.recent()] == [
        ("2025-W34", "skipped", "too few articles"),
        ("2025-W33", "sending", None),
    ]
    assert store.issues.rendered("2025-W34") is None


def test_holds(store: Store) -> None:
    assert store.issues.hold("2025-W34", now=NOW, note="waiting for a correction")
    assert not store.issues.hold("2025-W34", now=NOW)
    assert store.issues.is_held("2025-W34") and not store.issues.is_held("2025-W35")
    assert store.issues.held() == [HoldRecord(issue_key="2025-W34", created_at=NOW, note="waiting for a correction")]
    assert store.issues.release_hold("2025-W34")
    assert not store.issues.release_hold("2025-W34")
    assert store.issues.held() == []


def test_reviews_go_out_once(store: Store) -> None:
    assert store.issues.review("2025-W33") is None
    assert store.issues.claim_review("2025-W33", ["ed@example.org"], now=NOW)
    assert not store.issues.claim_review("2025-W33", ["ed@example.org"], now=NOW)
    assert store.issues.review("2025-W33") == ReviewRecord("2025-W33", NOW, '["ed@example.org"]')


# --- deliveries -----------------------------------------------------------------------------------


def test_deliveries_are_claimed_recorded_and_counted(store: Store) -> None:
    recipients = [("a@example.org", "A"), ("b@example.org", None), ("c@example.org", None)]
    claim_issue(store, recipients=recipients)
    key = RENDERED.key
    assert store.deliveries.counts(key) == {"pending": 3}
    assert list(store.deliveries.pending(key)) == recipients
    batch = store.deliveries.claim(key, owner="host:1", claim="c1", limit=2, now=NOW, lease_until=NOW + HOUR)
    assert batch == [("a@example.org", "A", 0), ("b@example.org", None, 0)]
    assert store.deliveries.inflight_owners(key) == [("host:1", NOW + HOUR, 2)]
    outcomes = [
        (DeliveryResult("a@example.org", "sent", message_id="<m1>"), None),
        (DeliveryResult("b@example.org", "retry", detail="421 try later"), NOW + HOUR),
    ]
    store.deliveries.record(key, "c1", outcomes, now=NOW)
    assert store.deliveries.counts(key) == {"sent": 1, "retry": 1, "pending": 1}
    assert store.deliveries.next_retry_at(key) == NOW + HOUR
    (retry,) = store.deliveries.with_status(key, ("retry",))
    assert retry == DeliveryRecord("b@example.org", "retry", 1, "421 try later", NOW + HOUR, 0)
    assert_frozen(retry)
    # The retry is not due yet: only the pending one is claimed.
    assert [r[0] for r in store.deliveries.claim(key, owner="h", claim="c2", limit=5, now=NOW, lease_until=NOW)] == [
        "c@example.org"
    ]
    store.deliveries.record(key, "c2", [(DeliveryResult("c@example.org", "failed", detail="550 no"), None)], now=NOW)
    assert store.deliveries.failed(key) == [("c@example.org", "550 no")]
    assert store.deliveries.reset_failed(key, now=NOW) == 1
    assert store.deliveries.counts(key) == {"sent": 1, "retry": 1, "pending": 1}


def test_the_recorders_fast_writer_writes_what_record_writes(store: Store) -> None:
    """The send's recorder writes each outcome through a driver-level connection of its own; the
    rows must be exactly those record() writes (on SQLite and on PostgreSQL): status, detail,
    message id, next attempt, attempts + 1, the claim cleared; a row no longer under the claim is
    left alone."""
    emails = [f"{c}@example.org" for c in "abcdef"]
    claim_issue(store, recipients=[(e, None) for e in emails])
    key = RENDERED.key
    assert len(store.deliveries.claim(key, owner="w", claim="cw", limit=3, now=NOW, lease_until=NOW + HOUR)) == 3
    assert len(store.deliveries.claim(key, owner="r", claim="cr", limit=3, now=NOW, lease_until=NOW + HOUR)) == 3
    results = [
        ("sent", "<m>", None, None),
        ("failed", None, "550 5.1.1 no such user", None),
        ("retry", None, "451", NOW),
    ]

    def outcomes(first: int) -> list[tuple[DeliveryResult, datetime | None]]:
        return [(DeliveryResult(emails[first + i], s, m, d), n) for i, (s, m, d, n) in enumerate(results)]

    writer = store.deliveries.outcome_writer(key)
    try:
        writer.write("cw", outcomes(0), now=NOW + HOUR)
        writer.write("not-the-claim", [(DeliveryResult(emails[3], "sent", "<x>"), None)], now=NOW + HOUR)
    finally:
        writer.close()
    store.deliveries.record(key, "cr", outcomes(3), now=NOW + HOUR)
    got = {
        r.email: (r.status, r.attempts, r.detail, r.next_attempt)
        for r in store.deliveries.with_status(key, ("sent", "failed", "retry", "inflight", "pending"))
    }
    assert [got[e] for e in emails[:3]] == [got[e] for e in emails[3:]]
    assert got[emails[0]] == ("sent", 1, None, None)
    assert got[emails[2]] == ("retry", 1, "451", NOW)
    assert store.deliveries.inflight_owners(key) == []
    assert store.deliveries.counts(key) == {"sent": 2, "failed": 2, "retry": 2}


def test_the_fast_writer_reports_a_database_error_without_values(store: Store) -> None:
    claim_issue(store, recipients=[("secret.person@example.org", "Secret Person")])
    key = RENDERED.key
    store.deliveries.claim(key, owner="w", claim="cw", limit=1, now=NOW, lease_until=NOW + HOUR)
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE deliveries RENAME TO deliveries_gone"))
    writer = store.deliveries.outcome_writer(key)
    with pytest.raises(StateError) as caught:
        writer.write("cw", [(DeliveryResult("secret.person@example.org", "sent", "<m>"), None)], now=NOW)
    writer.close()
    assert "recording delivery outcomes" in str(caught.value)
    assert "secret" not in str(caught.value).lower() and "UPDATE" not in str(caught.value)


def test_a_released_claim_is_pending_again_and_an_interrupted_one_is_counted(store: Store) -> None:
    claim_issue(store, recipients=[("a@example.org", None), ("b@example.org", None)])
    key = RENDERED.key
    store.deliveries.claim(key, owner="h1", claim="c1", limit=1, now=NOW, lease_until=NOW + HOUR)
    assert store.deliveries.release_claim(key, "c1", now=NOW) == 1
    store.deliveries.claim(key, owner="h2", claim="c2", limit=2, now=NOW, lease_until=NOW + HOUR)
    assert store.deliveries.reclaim_interrupted(key, "h2", now=NOW) == 2
    assert store.deliveries.counts(key) == {"pending": 2}
    assert store.deliveries.interrupted_total(key) == 2


def test_deliveries_of_subscribers_who_left_are_skipped(store: Store) -> None:
    store.subscribers.add([("a@example.org", None), ("b@example.org", None)], now=NOW)
    claim_issue(store)  # recipients=None: the active subscribers, frozen inside the database
    assert store.deliveries.counts(RENDERED.key) == {"pending": 2}
    store.subscribers.set_status("b@example.org", "unsubscribed", now=NOW)
    assert store.deliveries.skip_departed(RENDERED.key, now=NOW) == 1
    assert store.deliveries.counts(RENDERED.key) == {"pending": 1, "skipped": 1}


def test_a_bounce_recorded_with_a_batch_marks_the_subscriber(store: Store) -> None:
    store.subscribers.add([("a@example.org", None)], now=NOW)
    claim_issue(store)
    store.deliveries.claim(RENDERED.key, owner="h", claim="c1", limit=1, now=NOW, lease_until=NOW)
    result = DeliveryResult("a@example.org", "failed", detail="550 unknown user")
    store.deliveries.record(RENDERED.key, "c1", [(result, None)], now=NOW, bounced=["a@example.org"])
    assert [s.status for s in store.subscribers.all()] == ["bounced"]


# --- subscribers ----------------------------------------------------------------------------------


def test_subscribers(store: Store) -> None:
    report = store.subscribers.add([("a@example.org", "A"), ("b@example.org", None)], now=NOW)
    assert (report.added, report.present) == (["a@example.org", "b@example.org"], [])
    assert store.subscribers.set_status("b@example.org", "unsubscribed", now=NOW)
    assert not store.subscribers.set_status("nobody@example.org", "unsubscribed", now=NOW)
    # An import never re-subscribes someone who left.
    again = store.subscribers.add([("b@example.org", None), ("c@example.org", None)], now=NOW)
    assert again == ImportReport(
        ["c@example.org"], [], [("b@example.org", "unsubscribed since 2025-08-11; not re-subscribed")]
    )
    store.subscribers.add_new([("d@example.org", "D")], now=NOW)
    everyone = store.subscribers.all()
    assert [(s.email, s.status) for s in everyone] == [
        ("a@example.org", "active"),
        ("b@example.org", "unsubscribed"),
        ("c@example.org", "active"),
        ("d@example.org", "active"),
    ]
    assert everyone[0] == SubscriberRecord("a@example.org", "A", "active", NOW, NOW)
    assert_frozen(everyone[0])
    assert list(store.subscribers.stream("unsubscribed", chunk=1)) == store.subscribers.all("unsubscribed")
    active = [("a@example.org", "A"), ("c@example.org", None), ("d@example.org", "D")]
    assert store.subscribers.active_recipients() == active
    assert list(store.subscribers.iter_active_recipients(chunk=2)) == active


def test_one_subscriber_per_address_whatever_its_letter_case(store: Store) -> None:
    store.subscribers.add([("b@example.org", None)], now=NOW)
    assert store.subscribers.unsubscribe("b@example.org", now=NOW) == "unsubscribed"
    later = NOW + timedelta(days=1)
    report = store.subscribers.add(
        [("B@example.org", None), ("A@Example.ORG", None), ("a@example.org", "A")], now=later
    )
    assert report == ImportReport(
        ["A@Example.ORG"], ["A@Example.ORG"], [("B@example.org", "unsubscribed since 2025-08-11; not re-subscribed")]
    )
    assert [(r.email, r.status) for r in store.subscribers.all()] == [
        ("A@Example.ORG", "active"),  # stored as first given
        ("b@example.org", "unsubscribed"),
    ]
    # The domain is matched in its ASCII form too.
    store.subscribers.add([("x@Bücher.example", None)], now=NOW)
    assert store.subscribers.find("X@xn--bcher-kva.example").email == "x@Bücher.example"  # type: ignore[union-attr]


def test_every_status_change_is_recorded_with_when_why_and_from_where(store: Store) -> None:
    later = NOW + timedelta(hours=1)
    store.subscribers.add([("a@example.org", None)], now=NOW, origin="import", reason="imported from list.csv")
    assert store.subscribers.unsubscribe("A@example.org", now=later) == "unsubscribed"
    assert store.subscribers.resubscribe("a@example.org", now=later, reason="asked by phone") == "resubscribed"
    assert store.subscribers.resubscribe("a@example.org", now=later) == "already"
    assert store.subscribers.suppress("a@example.org", "complained", origin="webhook", reason="abuse report", now=later)
    with pytest.raises(ValueError):
        store.subscribers.suppress("a@example.org", "active", origin="webhook")
    assert [(e.at, e.status, e.origin, e.reason) for e in store.subscribers.history("a@example.org")] == [
        (NOW, "active", "import", "imported from list.csv"),
        (later, "unsubscribed", "one-click", None),
        (later, "active", "cli", "asked by phone"),
        (later, "complained", "webhook", "abuse report"),
    ]
    assert store.subscribers.resubscribe("nobody@example.org") == "unknown"


def test_a_removed_person_is_erased_and_kept_out(store: Store) -> None:
    store.subscribers.add([("gone@example.org", "Gone Person"), ("stay@example.org", None)], now=NOW)
    claim_issue(store)
    store.deliveries.claim(RENDERED.key, owner="h", claim="c1", limit=1, now=NOW, lease_until=NOW)
    store.deliveries.record(RENDERED.key, "c1", [(DeliveryResult("gone@example.org", "sent"), None)], now=NOW)
    assert store.subscribers.remove("Gone@example.org", now=NOW)
    assert not store.subscribers.remove("gone@example.org", now=NOW)
    assert store.subscribers.find("gone@example.org") is None
    assert store.subscribers.history("gone@example.org") == []
    assert store.subscribers.is_removed("GONE@example.org")
    with store.engine.connect() as conn:
        dump = "\n".join(str(tuple(row)) for t in metadata.sorted_tables for row in conn.execute(sa.select(t)))
    assert "gone@" not in dump.lower() and "Gone Person" not in dump
    assert store.deliveries.counts(RENDERED.key) == {"sent": 1, "pending": 1}  # the issue's figures stay
    report = store.subscribers.add([("GONE@example.org", None)], now=NOW)
    assert report.kept_out == [("GONE@example.org", "removed from the list; not added back")]
    assert store.subscribers.resubscribe("gone@example.org", now=NOW) == "resubscribed"
    assert not store.subscribers.is_removed("gone@example.org")


def test_unsubscribe_ignores_the_case_of_the_address(store: Store) -> None:
    store.subscribers.add([("Ann@Example.org", None)], now=NOW)
    assert store.subscribers.unsubscribe("ann@example.ORG", now=NOW) == "unsubscribed"
    assert store.subscribers.unsubscribe("ann@example.org", now=NOW) == "already"
    assert store.subscribers.unsubscribe("bob@example.org", now=NOW) == "unknown"


# --- sources --------------------------------------------------------------------------------------


def test_sources_record_reads_and_forget_an_old_location(store: Store) -> None:
    feed = "https://example.org/feed"
    store.sources.record_read("news", feed, error=None, now=NOW, validators=('"e1"', None), note="3 articles")
    store.sources.record_read("news", feed, error="timed out", now=NOW + HOUR)
    record = store.sources.get("news", feed)
    assert isinstance(record, SourceRecord)
    assert (record.etag, record.failures, record.last_error, record.last_success) == ('"e1"', 1, "timed out", NOW)
    assert (record.last_error_at, record.last_checked, record.last_note) == (NOW + HOUR, NOW + HOUR, "3 articles")
    assert_frozen(record)
    assert store.sources.get("news", "https://example.org/other") is None
    store.sources.record_read("news", "https://example.org/other", error=None, now=NOW + 2 * HOUR)
    moved = store.sources.get("news", "https://example.org/other")
    assert moved is not None and moved.etag is None and moved.failures == 0
    assert [r.name for r in store.sources.all()] == ["news"]


# --- leases and meta ------------------------------------------------------------------------------


def test_leases(store: Store) -> None:
    assert store.leases.acquire("issue:1", "h1", now=NOW, ttl=HOUR)
    assert store.leases.acquire("issue:1", "h1", now=NOW, ttl=HOUR), "its own lease again"
    assert not store.leases.acquire("issue:1", "h2", now=NOW, ttl=HOUR)
    assert store.leases.holder("issue:1") == LeaseRecord("issue:1", "h1", NOW, NOW + HOUR)
    assert store.leases.renew("issue:1", "h1", now=NOW + HOUR, ttl=HOUR)
    assert not store.leases.renew("issue:1", "h2", now=NOW, ttl=HOUR)
    # Renewed (its heartbeat) until NOW + 2h: no one else gets it before then, anyone after.
    assert not store.leases.acquire("issue:1", "h2", now=NOW + 2 * HOUR, ttl=HOUR)
    assert store.leases.acquire("issue:1", "h2", now=NOW + 2 * HOUR + timedelta(seconds=1), ttl=HOUR)
    store.leases.release("issue:1", "h1")  # not its lease any more: nothing happens
    holder = store.leases.holder("issue:1")
    assert holder is not None and holder.owner == "h2"
    assert_frozen(holder)
    # An expired lease is free for anyone.
    assert store.leases.acquire("issue:1", "h3", now=NOW + 4 * HOUR, ttl=HOUR)
    store.leases.release("issue:1", "h3")
    assert store.leases.holder("issue:1") is None


def test_the_secret_is_made_once_and_shared(store: Store, tmp_path: Path) -> None:
    secret = store.meta.secret()
    assert len(secret) >= 32
    with Store(store.url) as other:
        assert other.meta.secret() == secret
    assert store.meta.get("schema_version") == str(SCHEMA_VERSION)


# --- schema versions ------------------------------------------------------------------------------


def version_1_database(path: Path) -> str:
    url = database_at_version(path, 1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO articles (id, source, title, published, tags, body, date_is_first_seen, first_seen,"
                " content_hash) VALUES ('old', 'blog', 'Stored by version 1', '2025-08-10 09:00:00.000000', '[]',"
                " '[[\"p\", \"Old text.\"]]', 0, '2025-08-10 09:00:00.000000', 'h')"
            )
        )
        # Version 1 read a Markdown file's summary as the editor's from the file name.
        conn.execute(
            sa.text(
                "INSERT INTO articles (id, source, title, published, tags, body, date_is_first_seen, first_seen,"
                " content_hash, summary, origin) VALUES ('edited', 'notes', 'Written here', '2025-08-10 09:00:00.000000',"
                " '[]', '[]', 0, '2025-08-10 09:00:00.000000', 'h2', 'The editor wrote this.', 'content/edited.md')"
            )
        )
    engine.dispose()
    return url


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    url = version_1_database(tmp_path / "v1.sqlite3")
    with Store(url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        old, edited = sorted(store.articles.all(), key=lambda a: a.id != "old")
        assert edited.summary_by_editor  # a Markdown file's summary stays the editor's
        assert (old.id, old.title, old.body, old.summary_by_editor) == (
            "old",
            "Stored by version 1",
            (Block("Old text."),),
            False,
        )
        store.articles.apply(plan_of(article("new", summary="By the editor.", summary_by_editor=True)))
    with Store(url) as again:  # opening an up-to-date database changes nothing
        assert {a.id: a.summary_by_editor for a in again.articles.all()} == {"old": False, "edited": True, "new": True}


def test_a_version_3_database_gains_image_width(tmp_path: Path) -> None:
    url = version_1_database(tmp_path / "v2.sqlite3")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # brought to version 3 as versions 2 and 3 did it
        for step in (2, 3):
            MIGRATIONS[step](conn)
        conn.execute(sa.text("UPDATE meta SET value = '3' WHERE key = 'schema_version'"))
        conn.execute(sa.text("UPDATE articles SET image = 'https://news.example.org/old.png' WHERE id = 'old'"))
    engine.dispose()
    with Store(url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        old = next(a for a in store.articles.all() if a.id == "old")
        assert (old.image, old.image_width) == ("https://news.example.org/old.png", None)
        store.articles.apply(plan_of(article("new", image="https://news.example.org/new.png", image_width=200)))
        assert {a.id: a.image_width for a in store.articles.all()} == {"old": None, "edited": None, "new": 200}


def test_a_version_4_database_gains_the_feedback_tables(tmp_path: Path) -> None:
    url = database_at_version(tmp_path / "v4.sqlite3", 4)
    with Store(url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        assert store.feedback.first_use("mailgun:abc")
        assert not store.feedback.first_use("mailgun:abc")
        store.feedback.record(email="a@example.org", kind="complaint", origin="mailbox", issue_key="2025-W33")
        assert store.feedback.counts("2025-W33") == {"complaint": 1}


def test_a_version_5_database_gets_one_subscriber_per_address(tmp_path: Path) -> None:
    url = database_at_version(tmp_path / "v5.sqlite3", 5)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # Before version 6 addresses were matched by their exact text: one person could be two rows.
        for email, name, status, created in [
            ("a@example.org", None, "active", "2025-01-01"),
            ("A@Example.ORG", "Ann", "active", "2025-02-01"),
            ("b@example.org", "Bob", "active", "2025-01-01"),
            ("B@example.org", None, "unsubscribed", "2025-03-01"),
            ("C@example.org", None, "bounced", "2025-01-01"),
            ("c@EXAMPLE.org", None, "active", "2025-04-01"),
            ("d@example.org", None, "active", "2025-01-01"),
        ]:
            conn.execute(
                sa.text("INSERT INTO subscribers VALUES (:e, :n, :s, :c, :c)"),
                {"e": email, "n": name, "s": status, "c": f"{created} 00:00:00.000000"},
            )
    engine.dispose()
    with Store(url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        # The first row kept, the most restrictive status of the person, the first name known.
        assert [(r.email, r.name, r.status) for r in store.subscribers.all()] == [
            ("C@example.org", None, "bounced"),
            ("a@example.org", "Ann", "active"),
            ("b@example.org", "Bob", "unsubscribed"),
            ("d@example.org", None, "active"),
        ]
        assert [(e.status, e.origin, e.reason) for e in store.subscribers.history("B@EXAMPLE.ORG")] == [
            ("unsubscribed", "migration", "merged with B@example.org")
        ]
        # The key is unique from now on, and every row has one.
        assert store.subscribers.add([("D@EXAMPLE.ORG", None)], now=NOW).present == ["d@example.org"]
        with pytest.raises(sa.exc.IntegrityError):
            store.subscribers.add_new([("A@EXAMPLE.org", None)], now=NOW)


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.sqlite3'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    with pytest.raises(StateError) as refused:
        Store(url)
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this digest's {SCHEMA_VERSION}" in message
    assert "\n" not in message


# --- boundaries -----------------------------------------------------------------------------------


def test_the_store_does_not_import_the_sources() -> None:
    probe = "import sys, digest.store; print(sorted(m for m in sys.modules if m.startswith('digest.sources')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_scheduler_job_table_made_at_the_same_moment_by_another_process_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    made = sa.Table.create

    def another_process_won(table: sa.Table, bind: Any, checkfirst: bool = False) -> None:
        made(table, bind, checkfirst=False)  # the other scheduler's CREATE lands first...
        # ...and ours fails the way PostgreSQL says it (a unique violation on its catalogue).
        raise sa.exc.IntegrityError("CREATE TABLE apscheduler_jobs", {}, Exception("duplicate key value"))

    monkeypatch.setattr(sa.Table, "create", another_process_won)
    assert store.scheduler_jobs().get_all_jobs() == []

    def failed_for_another_reason(table: sa.Table, bind: Any, checkfirst: bool = False) -> None:
        raise sa.exc.OperationalError("CREATE TABLE apscheduler_jobs", {}, Exception("disk I/O error"))

    other = Store(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    monkeypatch.setattr(sa.Table, "create", failed_for_another_reason)
    with pytest.raises(sa.exc.OperationalError):
        other.scheduler_jobs()


def test_a_version_6_database_counts_what_an_older_sender_left_in_flight(tmp_path: Path) -> None:
    """Version 7 records whether a delivery's message was on its way; what a sender of an older
    version left in flight may have gone out, so it still counts when taken over."""
    url = database_at_version(tmp_path / "v6.sqlite3", 6)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO issues (key, slot, status, created_at) VALUES ('2025-W33', :t, 'sending', :t)"),
            {"t": "2025-08-11 09:00:00.000000"},
        )
        for email, status in [("a@example.org", "inflight"), ("b@example.org", "pending")]:
            conn.execute(
                sa.text(
                    "INSERT INTO deliveries (issue_key, email, status, attempts, updated_at, owner, claim, "
                    "lease_until, interrupted) VALUES ('2025-W33', :e, :s, 0, :t, :o, :c, :t, 0)"
                ),
                {"e": email, "s": status, "t": "2025-08-11 09:00:00.000000", "o": "old:1:x", "c": "c1"},
            )
    engine.dispose()
    with Store(url) as store:
        assert store.meta.get("schema_version") == str(SCHEMA_VERSION)
        assert store.deliveries.reclaim_interrupted("2025-W33", "old:1:x", now=NOW) == 1
        assert store.deliveries.interrupted_total("2025-W33") == 1


@pytest.mark.skipif(server_url() is None, reason="on PostgreSQL: under scripts/postgres.sh (make test-postgres)")
def test_outcomes_are_written_one_by_one_where_libpq_cannot_pipeline(store: Store, monkeypatch) -> None:
    """psycopg sends a group commit's statements and its commit together (pipeline mode) where its
    libpq can (version 14 and later); with an older one they go one by one, and nothing fails."""
    import psycopg

    def no_pipeline(*args: object, **kwargs: object) -> None:
        raise AssertionError("pipeline mode entered where libpq has none")

    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    monkeypatch.setattr(psycopg.Connection, "pipeline", no_pipeline)
    emails = ["a@example.org", "b@example.org"]
    claim_issue(store, recipients=[(e, None) for e in emails])
    store.deliveries.claim(RENDERED.key, owner="me", claim="c1", limit=2, now=NOW, lease_until=NOW + HOUR, handed=False)
    writer = store.deliveries.outcome_writer(RENDERED.key)
    try:
        writer.write("c1", [(DeliveryResult(emails[0], "sent", "<m>"), None)], now=NOW, handed=[emails[1]])
    finally:
        writer.close()
    assert store.deliveries.counts(RENDERED.key) == {"sent": 1, "inflight": 1}


def test_only_deliveries_handed_over_count_as_interrupted_when_their_sender_stopped(store: Store) -> None:
    """A sender that marks each message before its content goes out claims with handed=False:
    when it dies, its whole claim goes back to pending, but only the marked (and unanswered)
    deliveries count towards the duplicates `digest status` bounds."""
    emails = [f"{c}@example.org" for c in "abcd"]
    claim_issue(store, recipients=[(e, None) for e in emails])
    key = RENDERED.key
    store.deliveries.claim(key, owner="dead", claim="c1", limit=4, now=NOW, lease_until=NOW, handed=False)
    writer = store.deliveries.outcome_writer(key)
    try:
        writer.write("c1", [], now=NOW, handed=[emails[0], emails[1]])  # two messages went out ...
        writer.write("c1", [(DeliveryResult(emails[0], "sent", "<m>"), None)], now=NOW)  # ... one answered
    finally:
        writer.close()
    assert store.deliveries.reclaim_interrupted(key, "dead", now=NOW + HOUR) == 3
    assert store.deliveries.interrupted_total(key) == 1  # only b's message may have arrived twice
    assert store.deliveries.counts(key) == {"sent": 1, "pending": 3}
    # A sender that cannot mark each message (an e-mail service's batch) claims them all as handed.
    store.deliveries.claim(key, owner="dead2", claim="c2", limit=3, now=NOW + HOUR, lease_until=NOW + HOUR)
    assert store.deliveries.reclaim_interrupted(key, "dead2", now=NOW + 2 * HOUR) == 3
    assert store.deliveries.interrupted_total(key) == 4
