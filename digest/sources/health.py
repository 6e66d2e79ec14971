"""Whether each source is healthy, decided once for ``digest sources``, the preview and the build.

Every ingest records per source its last success, its last error and how many runs in a row have
failed (a success resets the count). A source is failing while that count is above zero; from
:data:`FAILING_RUNS` on, every build warns about it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from digest.config import SourceSettings
from digest.store.records import SourceRecord

# A source failing this many runs in a row is worth a warning on every build.
FAILING_RUNS = 3


def configured_location(source: SourceSettings) -> str:
    return source.url or str(source.path)


@dataclass(frozen=True)
class SourceHealth:
    """One source's health. ``config`` is None for a source that is no longer configured;
    ``record`` is None for one not read yet at its configured location."""

    name: str
    config: SourceSettings | None
    record: SourceRecord | None

    @property
    def state(self) -> Literal["not read yet", "ok", "failing"]:
        if self.record is None:
            return "not read yet"
        return "failing" if self.record.failures else "ok"

    @property
    def failures(self) -> int:
        return self.record.failures if self.record is not None else 0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    @property
    def failing_in_config(self) -> bool:
        """Failing and still configured: a source removed from the config is no one's concern."""
        return self.config is not None and self.failing

    @property
    def warned_on_build(self) -> bool:
        """Failing long enough that every build says so."""
        return self.failing_in_config and self.failures >= FAILING_RUNS

    @property
    def runs_in_a_row(self) -> str:
        return f"{self.failures} run{'s' if self.failures != 1 else ''} in a row"


def source_health(configured: Sequence[SourceSettings], records: Iterable[SourceRecord]) -> list[SourceHealth]:
    """The configured sources in config order, then the recorded ones no longer configured."""
    by_name = {r.name: r for r in records}
    health = []
    for source in configured:
        record = by_name.pop(source.name, None)
        # A source pointed at a new location starts afresh: the old location's reads say nothing.
        known = record if record is not None and record.location == configured_location(source) else None
        health.append(SourceHealth(source.name, source, known))
    health.extend(SourceHealth(r.name, None, r) for r in by_name.values())
    return health


def build_warnings(health: Iterable[SourceHealth]) -> list[str]:
    """One warning per configured source that has failed :data:`FAILING_RUNS` or more runs in a row."""
    return [
        f"source {h.name!r} has failed {h.runs_in_a_row} (last error: {h.record.last_error})"
        for h in health
        if h.warned_on_build and h.record is not None
    ]
