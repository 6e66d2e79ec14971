"""The editor's choices for upcoming issues: a pinned lead story, articles left out, an order,
the subject and the editor's note (see digest.models.IssueEdits)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from digest.models import IssueEdits
from digest.store.repository import Repository
from digest.store.schema import issue_edits


class EditsRepository(Repository):
    def get(self, key: str) -> IssueEdits:
        """The choices for issue ``key`` (empty when the editor made none)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issue_edits).where(issue_edits.c.issue_key == key)).first()
        if row is None:
            return IssueEdits(key)
        return IssueEdits(
            issue_key=key,
            pinned=row.pinned,
            dropped=tuple(json.loads(row.dropped or "[]")),
            order=tuple(json.loads(row.ordered or "[]")),
            subject=row.subject,
            note=row.note,
        )

    def save(self, edits: IssueEdits, *, now: datetime) -> None:
        """Store ``edits`` for its issue, replacing what was there; empty choices remove the row."""
        values = {
            "pinned": edits.pinned,
            "dropped": json.dumps(list(edits.dropped)),
            "ordered": json.dumps(list(edits.order)),
            "subject": edits.subject,
            "note": edits.note,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            conn.execute(issue_edits.delete().where(issue_edits.c.issue_key == edits.issue_key))
            if not edits.empty:
                conn.execute(issue_edits.insert().values(issue_key=edits.issue_key, **values))

    def keys(self) -> Sequence[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(issue_edits.c.issue_key).order_by(issue_edits.c.issue_key)).scalars())
