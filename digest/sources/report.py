"""What one ingest found, source by source: the plain data the CLI, the preview and the log report."""

from __future__ import annotations

from dataclasses import dataclass

from digest.text import plural


@dataclass(frozen=True)
class SourceOutcome:
    name: str
    seen: int = 0
    new: int = 0
    updated: int = 0
    error: str | None = None
    not_modified: bool = False
    duplicates: int = 0
    undated: int = 0
    #: Articles dated after the read: stored, and held out of every issue until their date.
    future: int = 0
    moved_to: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """What the read found, in a few words."""
        if self.error:
            return self.error
        if self.not_modified:
            return "not modified since the last read"
        parts = [f"{self.new} new", f"{self.updated} updated"]
        if self.duplicates:
            parts.append(f"{self.duplicates} already stored from another source")
        if self.undated:
            parts.append(f"{self.undated} undated, dated when first seen")
        if self.future:
            parts.append(f"{self.future} dated in the future, held until their date")
        return f"{plural(self.seen, 'article')} ({', '.join(parts)})"


@dataclass(frozen=True)
class IngestReport:
    sources: tuple[SourceOutcome, ...]

    @property
    def failed(self) -> tuple[SourceOutcome, ...]:
        return tuple(s for s in self.sources if s.error)
