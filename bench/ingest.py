"""Ingest speed on every real feed in the shared corpus, against feedparser's parse alone.

"Real" feeds are the captured ones: ../shared/corpus/feeds/netnewswire (minus its two OPML lists)
and ../shared/corpus/feeds/miniflux_parser. Each round ingests them all with digest's whole
pipeline stage — one [[sources]] table per file, read, decoded, parsed, turned into articles with
body blocks and ids, deduplicated and written to a fresh SQLite store — and then parses the same
files with ``feedparser.parse`` and nothing else (its defaults: sanitising and URI resolution on).
The ratio compares the two on the XML files only, since feedparser does not read JSON Feed; the
JSON feeds are ingested and counted in items per second.

Best of N rounds for each, measured in the same run, one worker thread (digest's default pool
reads files concurrently, but files need no network, so one thread compares like with like).

    python bench/ingest.py [--rounds N]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import settings_from_dict  # noqa: E402
from digest.pipeline import ingest  # noqa: E402
from digest.store import Store  # noqa: E402

FEEDS = ROOT.parent / "shared" / "corpus" / "feeds"
NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def real_feeds() -> list[Path]:
    files = []
    for folder in ("netnewswire", "miniflux_parser"):
        files += sorted(p for p in (FEEDS / folder).iterdir() if p.is_file() and p.suffix != ".opml")
    return files


def is_json(path: Path) -> bool:
    return path.read_bytes().lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def settings_for(files: list[Path], state_dir: Path):  # type: ignore[no-untyped-def]
    data = {
        "newsletter": {
            "title": "Bench",
            "sender": "Bench <bench@example.org>",
            "site_url": "https://example.org",
            "postal_address": "1 Bench Street",
        },
        "sources": [{"name": f"{i:03d}-{p.name}", "kind": "feed", "path": str(p)} for i, p in enumerate(files)],
        "fetch": {"workers": 1},
        "state": {"url": f"sqlite:///{state_dir / 'bench.sqlite3'}"},
    }
    return settings_from_dict(data, state_dir / "digest.toml")


def time_ingest(files: list[Path]) -> tuple[float, int, int]:
    """Seconds for one whole ingest into a fresh store; (seconds, items read, sources failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(files, Path(tmp))
        store = Store(settings.state_url)
        started = time.perf_counter()
        report = ingest(settings, store, now=NOW)
        elapsed = time.perf_counter() - started
        store.close()
    return elapsed, sum(s.seen for s in report.sources), len(report.failed)


def time_feedparser(datas: list[bytes]) -> tuple[float, int]:
    started = time.perf_counter()
    entries = sum(len(feedparser.parse(io.BytesIO(d)).entries) for d in datas)
    return time.perf_counter() - started, entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not FEEDS.is_dir():
        print(f"skipped: {FEEDS} is absent")
        return 0
    files = real_feeds()
    xml_files = [p for p in files if not is_json(p)]
    xml_datas = [p.read_bytes() for p in xml_files]
    size_mb = sum(p.stat().st_size for p in files) / 1e6

    best_all = best_xml = best_fp = float("inf")
    items_all = items_xml = entries = failed = 0
    for _ in range(args.rounds):
        t, items_all, failed = time_ingest(files)
        best_all = min(best_all, t)
        t, items_xml, _ = time_ingest(xml_files)
        best_xml = min(best_xml, t)
        t, entries = time_feedparser(xml_datas)
        best_fp = min(best_fp, t)

    print(
        f"real feeds: {len(files)} files ({len(xml_files)} XML, {len(files) - len(xml_files)} JSON), {size_mb:.1f} MB; best of {args.rounds} rounds"
    )
    print(
        f"digest whole ingest, all files: {items_all} items in {best_all:.2f} s = {items_all / best_all:.0f} items/s ({failed} unreadable file(s))"
    )
    print(f"digest whole ingest, XML files: {items_xml} items in {best_xml:.2f} s = {items_xml / best_xml:.0f} items/s")
    print(
        f"feedparser.parse alone, XML files: {entries} entries in {best_fp:.2f} s = {entries / best_fp:.0f} entries/s"
    )
    print(f"ratio, digest whole ingest / feedparser parse alone (XML files): {best_xml / best_fp:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
