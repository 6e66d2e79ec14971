"""Sources: what each read of a configured source left (validators, redirects, health)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from digest.store.records import SourceRecord, record_from_row
from digest.store.repository import Repository
from digest.store.schema import sources


class SourcesRepository(Repository):
    def record_read(
        self,
        name: str,
        location: str,
        *,
        error: str | None,
        now: datetime,
        validators: tuple[str | None, str | None] | None = None,
        moved_to: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record one read of a source: success (its ETag and Last-Modified when given, where a
        permanent redirect moved it, what it found) or failure (the error, one more failure in a
        row). When the configured location changed, what was remembered about the old one goes."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
            if row is None:
                conn.execute(sources.insert().values(name=name, location=location, failures=0))
            values: dict[str, Any] = {"location": location, "last_checked": now}
            if row is not None and row.location != location:
                values.update(etag=None, last_modified=None, moved_to=None)
            if error is None:
                values.update(last_success=now, failures=0, last_note=note)
                if validators is not None:
                    values.update(etag=validators[0], last_modified=validators[1])
                if moved_to is not None:
                    values["moved_to"] = moved_to
            else:
                values.update(last_error=error, last_error_at=now, failures=sources.c.failures + 1)
            conn.execute(sources.update().where(sources.c.name == name).values(**values))

    def get(self, name: str, location: str) -> SourceRecord | None:
        """What is recorded of a source, or None when nothing is or it was for another location."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
        return record_from_row(SourceRecord, row) if row is not None and row.location == location else None

    def all(self) -> list[SourceRecord]:
        """Every source ever read, by name."""
        with self.engine.connect() as conn:
            return [record_from_row(SourceRecord, r) for r in conn.execute(sa.select(sources).order_by(sources.c.name))]
