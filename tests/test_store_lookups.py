"""Feedback's lookups run once per bounce, complaint or unsubscribe click, against every delivery
ever made: a year of weekly issues to a million subscribers is fifty million rows. Their cost must
not grow with the deliveries of other issues. (The look-up by Message-ID reads the one issue the
Message-ID names: an index of Message-IDs would cost the send, which writes one with each
outcome.) Counted in SQLite virtual-machine steps (a progress handler), never in seconds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from statedb import deliveries_rows_read, server_url, sqlite_steps, state_url

from digest.models import RenderedIssue
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
SUBSCRIBERS = 2_000
ADDRESS = "r0001000@example.org"


def store_with_issues(tmp_path: Path, issues: int, url: str | None = None) -> Store:
    """``issues`` weekly issues, each sent to the same subscribers, with Message-IDs as digest
    writes them; the last issue is 2025-W33. SQLite unless ``url``."""
    store = Store(url or f"sqlite:///{tmp_path / f'lookups-{issues}.sqlite3'}")
    store.subscribers.add_new(((f"r{i:07d}@example.org", None) for i in range(SUBSCRIBERS)), now=NOW)
    for week in range(33 - issues + 1, 34):
        key = f"2025-W{week}"
        rendered = RenderedIssue(key=key, subject=key, preheader="", html="<p>x</p>", text="x")
        slot = NOW - timedelta(weeks=33 - week)
        assert store.issues.claim(key, slot=slot, rendered=rendered, article_ids=[], recipients=None, now=slot)
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE deliveries SET status = 'sent', "
                "message_id = '<' || issue_key || '.0123456789abcdef.' || substr(email, 2, 7) || '@news.example.org>'"
            )
        )
    return store


def steps_of(store: Store, lookup: Callable[[], object]) -> int:
    """VM steps (in hundreds) that ``lookup`` takes."""
    return sqlite_steps(store, lookup, per=100)


MESSAGE_ID = "<2025-W33.0123456789abcdef.0001000@news.example.org>"


def cost_of_lookups(store: Store, measure: Callable[[Store, Callable[[], object]], int]) -> dict[str, int]:
    f = store.feedback
    assert f.delivery_for_message_id(MESSAGE_ID) == ("2025-W33", ADDRESS)
    assert f.latest_issue_for(ADDRESS.upper()) == "2025-W33"
    assert f.soft_bounces_in_a_row(ADDRESS) == 0
    return {
        "by Message-ID": measure(store, lambda: f.delivery_for_message_id(MESSAGE_ID)),
        "last issue": measure(store, lambda: f.latest_issue_for(ADDRESS.upper())),
        "soft bounces": measure(store, lambda: f.soft_bounces_in_a_row(ADDRESS)),
    }


def lookup_steps(tmp_path: Path, issues: int) -> dict[str, int]:
    store = store_with_issues(tmp_path, issues)
    try:
        return cost_of_lookups(store, steps_of)
    finally:
        store.close()


def lookup_rows(tmp_path: Path, issues: int) -> dict[str, int]:
    store = store_with_issues(tmp_path, issues, state_url(tmp_path, f"lookups-{issues}"))
    try:
        return cost_of_lookups(store, deliveries_rows_read)
    finally:
        store.close()


def test_feedback_lookups_cost_the_same_with_eight_times_the_issues(tmp_path: Path) -> None:
    one, eight = lookup_steps(tmp_path, 1), lookup_steps(tmp_path, 8)
    print(f"hundreds of VM steps, one issue of {SUBSCRIBERS:,}: {one}; eight: {eight}")
    for name in one:
        # (Eight issues are eight look-ups by primary key where one issue is one: a few steps.)
        assert eight[name] <= 2 * one[name] + 10, f"{name}: {one[name]} with one issue, {eight[name]} with eight"


@pytest.mark.skipif(server_url() is None, reason="on PostgreSQL: under scripts/postgres.sh (make test-postgres)")
def test_feedback_lookups_on_postgresql_read_the_same_with_eight_times_the_issues(tmp_path: Path) -> None:
    one, eight = lookup_rows(tmp_path, 1), lookup_rows(tmp_path, 8)
    print(f"rows of deliveries gone through, one issue of {SUBSCRIBERS:,}: {one}; eight: {eight}")
    assert eight["by Message-ID"] <= 2 * one["by Message-ID"] + 10  # (the one issue it names)
    for name in ("last issue", "soft bounces"):
        assert eight[name] <= 8 * 2, f"{name}: {eight[name]} rows with eight issues ({one[name]} with one)"


def test_a_bounce_names_the_address_as_the_subscriber_gave_it_or_in_any_other_form(tmp_path: Path) -> None:
    # The same address key: letter case, and the domain as Unicode or in its IDNA form.
    store = Store(f"sqlite:///{tmp_path / 'forms.sqlite3'}")
    try:
        store.subscribers.add_new(iter([("Ana@Bücher.example", None)]), now=NOW)
        rendered = RenderedIssue(key="2025-W33", subject="s", preheader="", html="<p>x</p>", text="x")
        assert store.issues.claim("2025-W33", slot=NOW, rendered=rendered, article_ids=[], recipients=None, now=NOW)
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE deliveries SET status = 'sent'"))
        for form in ("Ana@Bücher.example", "ana@bücher.example", "ANA@xn--bcher-kva.example"):
            assert store.feedback.latest_issue_for(form) == "2025-W33", form
            assert store.feedback.stored_address(form) == "Ana@Bücher.example"
        assert store.feedback.latest_issue_for("someone.else@example.org") is None
        assert store.feedback.stored_address("Someone.Else@example.org") == "Someone.Else@example.org"
    finally:
        store.close()
