"""A claim's cost does not grow with the issue: a sender claims batches of a few hundred from an
issue of a million, so each claim must touch its batch, not every delivery of the issue. Counted
in SQLite virtual-machine steps (a progress handler), never in seconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from digest.models import RenderedIssue
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
RENDERED = RenderedIssue(key="2025-W33", subject="Issue 33", preheader="This week", html="<p>33</p>", text="33")


def steps_of_a_claim(tmp_path: Path, deliveries: int) -> int:
    """VM steps (in thousands) that claiming 50 of ``deliveries`` takes, after half were sent."""
    store = Store(f"sqlite:///{tmp_path / f'claims-{deliveries}.sqlite3'}")
    try:
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
        counted = [0]

        def count(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, 1000)

        store.engine.dispose()
        sa.event.listen(store.engine, "connect", count)
        later = NOW + timedelta(minutes=1)
        got = store.deliveries.claim(
            RENDERED.key, owner="h", claim="c1", limit=50, now=later, lease_until=later + timedelta(hours=1)
        )
        assert len(got) == 50 and got[0][0] == recipients[deliveries // 2][0]
        return counted[0]
    finally:
        store.close()


def test_a_claim_costs_the_same_in_an_issue_ten_times_larger(tmp_path: Path) -> None:
    small, large = steps_of_a_claim(tmp_path, 2_000), steps_of_a_claim(tmp_path, 20_000)
    print(f"claim of 50: {small} thousand steps in 2,000 deliveries, {large} thousand in 20,000")
    assert large <= 2 * small + 5, f"{small} thousand steps for 2,000 deliveries, {large} thousand for 20,000"
