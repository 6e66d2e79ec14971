"""A claim's cost does not grow with the issue: a sender claims batches of a few hundred from an
issue of a million, so each claim must touch its batch, not every delivery of the issue. Counted
in SQLite virtual-machine steps (a progress handler) and in the rows PostgreSQL reads from the
deliveries table, never in seconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from statedb import deliveries_rows_read, server_url, sqlite_steps, state_url

from digest.models import RenderedIssue
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
RENDERED = RenderedIssue(key="2025-W33", subject="Issue 33", preheader="This week", html="<p>33</p>", text="33")


def half_sent_issue(url: str, deliveries: int) -> tuple[Store, str]:
    """A store whose issue has ``deliveries`` recipients, the first half of them sent; and the
    first address still pending."""
    store = Store(url)
    recipients: list[tuple[str, str | None]] = [(f"r{i:07d}@example.org", None) for i in range(deliveries)]
    store.subscribers.add_new(iter(recipients), now=NOW)
    assert store.issues.claim(
        RENDERED.key, slot=NOW, rendered=RENDERED, article_ids=["a1"], recipients=recipients, now=NOW
    )
    with store.engine.begin() as conn:  # half the issue went out already
        conn.execute(
            sa.text("UPDATE deliveries SET status = 'sent' WHERE email < :half"),
            {"half": recipients[deliveries // 2][0]},
        )
    return store, recipients[deliveries // 2][0]


def claim_50(store: Store, first: str) -> None:
    later = NOW + timedelta(minutes=1)
    got = store.deliveries.claim(
        RENDERED.key, owner="h", claim="c1", limit=50, now=later, lease_until=later + timedelta(hours=1)
    )
    assert len(got) == 50 and got[0][0] == first


def steps_of_a_claim(tmp_path: Path, deliveries: int) -> int:
    """VM steps (in thousands) that claiming 50 of ``deliveries`` takes, after half were sent."""
    store, first = half_sent_issue(f"sqlite:///{tmp_path / f'claims-{deliveries}.sqlite3'}", deliveries)
    try:
        return sqlite_steps(store, lambda: claim_50(store, first), per=1000)
    finally:
        store.close()


def rows_a_claim_reads(tmp_path: Path, deliveries: int) -> int:
    """Rows of the deliveries table the plans PostgreSQL ran to claim 50 of ``deliveries`` went
    through, after half were sent (statedb.deliveries_rows_read). The issue was opened just
    before, as a send opens it, so the planner's statistics say every delivery is pending."""
    store, first = half_sent_issue(state_url(tmp_path, f"claims-{deliveries}"), deliveries)
    try:
        return deliveries_rows_read(store, lambda: claim_50(store, first))
    finally:
        store.close()


def test_a_claim_costs_the_same_in_an_issue_ten_times_larger(tmp_path: Path) -> None:
    small, large = steps_of_a_claim(tmp_path, 2_000), steps_of_a_claim(tmp_path, 20_000)
    print(f"claim of 50: {small} thousand steps in 2,000 deliveries, {large} thousand in 20,000")
    assert large <= 2 * small + 5, f"{small} thousand steps for 2,000 deliveries, {large} thousand for 20,000"


@pytest.mark.skipif(server_url() is None, reason="on PostgreSQL: under scripts/postgres.sh (make test-postgres)")
def test_a_claim_on_postgresql_reads_its_batch_not_the_issue(tmp_path: Path) -> None:
    small, large = rows_a_claim_reads(tmp_path, 2_000), rows_a_claim_reads(tmp_path, 20_000)
    print(f"claim of 50: {small} rows gone through in 2,000 deliveries, {large} in 20,000")
    # (In the smaller issue the planner may rightly scan the table for the update: it is small.)
    assert large <= 500, f"the claim of 50 went through {large} rows of an issue of 20,000 ({small} of 2,000)"


@pytest.mark.skipif(server_url() is None, reason="on PostgreSQL: under scripts/postgres.sh (make test-postgres)")
def test_opening_an_issue_on_postgresql_tells_the_planner_of_its_deliveries(tmp_path: Path) -> None:
    # The statements of the send that follows are planned with statistics that count them (they
    # would say the issue had no deliveries until autovacuum came by, a minute or so later).
    store = Store(state_url(tmp_path, "opened"))
    try:
        store.subscribers.add_new(((f"r{i:05d}@example.org", None) for i in range(3_000)), now=NOW)
        assert store.issues.claim(RENDERED.key, slot=NOW, rendered=RENDERED, article_ids=[], recipients=None, now=NOW)
        with store.engine.connect() as conn:
            counted = conn.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass")
            ).scalar()
        assert counted == 3_000
    finally:
        store.close()


@pytest.mark.skipif(server_url() is None, reason="on PostgreSQL: under scripts/postgres.sh (make test-postgres)")
def test_a_version_7_database_on_postgresql_gains_the_index_of_pending_deliveries(tmp_path: Path) -> None:
    url = state_url(tmp_path, "v7")
    with Store(url) as store:  # made at the current version, then taken back to version 7
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_deliveries_pending"))
            conn.execute(sa.text("UPDATE meta SET value = '7' WHERE key = 'schema_version'"))
    with Store(url) as store:
        assert store.meta.get("schema_version") == "8"
        names = {index["name"] for index in sa.inspect(store.engine).get_indexes("deliveries")}
        assert "ix_deliveries_pending" in names
