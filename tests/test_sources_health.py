"""Source health, decided in one place for `digest sources`, the build warning and the preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from digest.config import SourceSettings
from digest.sources.health import FAILING_RUNS, build_warnings, source_health

AT = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Record:
    name: str
    location: str
    failures: int = 0
    last_success: datetime | None = AT
    last_note: str | None = "1 article (1 new, 0 updated)"
    last_error: str | None = None
    last_error_at: datetime | None = None
    moved_to: str | None = None


def _feed(name: str, url: str) -> SourceSettings:
    return SourceSettings(name=name, kind="feed", url=url)


def test_each_source_is_not_read_yet_ok_or_failing_and_removed_ones_come_last() -> None:
    configured = [
        _feed("fresh", "https://a.example/feed"),
        _feed("fine", "https://b.example/feed"),
        _feed("down", "https://c.example/feed"),
        _feed("moved", "https://d.example/new-feed"),
        SourceSettings(name="notes", kind="folder", path=Path("content")),
    ]
    records = [
        Record("fine", "https://b.example/feed"),
        Record("down", "https://c.example/feed", failures=1, last_error="503", last_error_at=AT),
        # Read at its old location: what was seen there says nothing about the new one.
        Record("moved", "https://d.example/feed", failures=5, last_error="404", last_error_at=AT),
        Record("notes", "content"),
        Record("gone", "https://e.example/feed", failures=4, last_error="timeout", last_error_at=AT),
    ]
    health = source_health(configured, records)
    assert [(h.name, h.state, h.config is not None) for h in health] == [
        ("fresh", "not read yet", True),
        ("fine", "ok", True),
        ("down", "failing", True),
        ("moved", "not read yet", True),
        ("notes", "ok", True),
        ("gone", "failing", False),
    ]
    down = health[2]
    assert down.failing and not down.warned_on_build and down.runs_in_a_row == "1 run in a row"
    # A source no longer configured is failing, but no build warns about it.
    assert health[-1].failing and not health[-1].warned_on_build
    assert build_warnings(health) == []


def test_a_build_warns_from_the_threshold_on() -> None:
    configured = [_feed("down", "https://c.example/feed")]

    def warnings(failures: int) -> list[str]:
        record = Record("down", "https://c.example/feed", failures=failures, last_error="503", last_error_at=AT)
        return build_warnings(source_health(configured, [record]))

    assert warnings(FAILING_RUNS - 1) == []
    assert warnings(FAILING_RUNS) == ["source 'down' has failed 3 runs in a row (last error: 503)"]
