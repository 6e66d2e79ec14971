"""What every repository shares: the engine it works through, and the clock it falls back on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from sqlalchemy.engine import Engine


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    """``values`` in slices small enough for one IN (...) list."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


class Repository:
    """One group of tables, reached through the store's engine. Each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
