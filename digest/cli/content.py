"""Commands about what comes in: ``ingest``, ``sources`` (their health) and ``teaser``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.cli.app import Context, cli, echo, pass_ctx, warn
from digest.cli.output import json_option, print_json
from digest.config import config_path_from, load_config
from digest.errors import DigestError, UsageError

if TYPE_CHECKING:
    from digest.sources.health import SourceHealth


@cli.command(epilog="Example:\n\n  digest ingest")
@pass_ctx
def ingest(c: Context) -> None:
    """Read every configured source and store new and changed articles."""
    from digest.pipeline import ingest as run_ingest

    report = run_ingest(c.settings, c.store, now=c.now())
    for s in report.sources:
        if s.error:
            warn(s.error)
            continue
        echo(f"{s.name}: {s.note}")
        for problem in s.problems:
            warn(f"source {s.name!r}: {problem}")
        if s.moved_to:
            warn(f"source {s.name!r} moved permanently to {s.moved_to}; update its url in the config")
    if report.sources and len(report.failed) == len(report.sources):
        raise DigestError("every source failed; nothing was ingested")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


@cli.command("sources", epilog="Examples:\n\n  digest sources\n\n  digest sources --failing")
@click.option("--failing", is_flag=True, help="Only sources whose last read failed.")
@json_option
@pass_ctx
def sources_list(c: Context, failing: bool, as_json: bool) -> None:
    """List the configured sources and their health: last success, last error, failures in a row.

    Health is recorded by every ingest (digest ingest, build, run); this command reads nothing.
    """
    from digest.sources.health import configured_location, source_health

    shown = 0
    health = [h for h in source_health(c.settings.sources, c.store.sources.all()) if h.failing or not failing]
    if as_json:
        print_json([_source_json(h) for h in health])
        return
    for h in health:
        shown += 1
        r = h.record
        if h.config is None:
            assert r is not None, "a source out of the config is known from its record"
            echo(f"{h.name}: no longer in the config (last success {_when(r.last_success)})")
            continue
        status: str = h.state
        if h.failing:
            status = f"FAILING, {h.runs_in_a_row}" + (" (digest build warns)" if h.warned_on_build else "")
        cfg = h.config
        echo(f"{cfg.name} ({cfg.kind}{', full pages' if cfg.fetch_full else ''}): {status}")
        echo(f"  location:      {configured_location(cfg)}")
        if r is None:
            continue
        if r.moved_to:
            echo(f"  moved to:      {r.moved_to} (permanent redirect; update the config)")
        echo(
            f"  last success:  {_when(r.last_success)}" + (f": {r.last_note}" if r.last_note and r.last_success else "")
        )
        if r.last_error:
            echo(f"  last error:    {_when(r.last_error_at)}: {r.last_error}")
    if not shown:
        echo("no failing sources" if failing else "no sources configured; add [[sources]] tables to the config")


def _source_json(h: SourceHealth) -> dict[str, object]:
    from digest.sources.health import configured_location

    r = h.record
    return {
        "name": h.name,
        "configured": h.config is not None,
        "kind": h.config.kind if h.config else None,
        "location": configured_location(h.config) if h.config else (r.location if r else None),
        "state": h.state,
        "failures_in_a_row": h.failures,
        "last_success": r.last_success if r else None,
        "last_note": r.last_note if r else None,
        "last_error_at": r.last_error_at if r else None,
        "last_error": r.last_error if r else None,
        "moved_to": r.moved_to if r else None,
    }


@cli.command(
    epilog="Examples:\n\n  digest teaser examples/content/*.md\n\n  digest teaser --max-chars 160 --json article.html"
)
@click.option(
    "--max-chars",
    "max_chars",
    type=click.IntRange(min=20),
    metavar="N",
    help="Budget in characters (default: teaser.max_chars from the config when there is one, else 220).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line: teaser, html, origin, language, and what was passed over.",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE...")
@pass_ctx
def teaser(c: Context, max_chars: int | None, as_json: bool, files: tuple[Path, ...]) -> None:
    """Write the teaser of each article FILE (Markdown, text or HTML), one line per file, in order.

    Files need no date here. A file that cannot be read gets a warning and an empty line (or a JSON
    line with an "error" key), so the output still lines up with the input.
    """
    import json
    from zoneinfo import ZoneInfo

    from digest.sources.folder import read_article_file
    from digest.teaser import DEFAULT_MAX_CHARS, as_teaser, choose_teaser

    if max_chars is None:
        found = config_path_from(c.config_option)
        max_chars = load_config(found).teaser.max_chars if found.is_file() else DEFAULT_MAX_CHARS
    failed = 0
    for path in files:
        try:
            article = read_article_file(path, source="files", tz=ZoneInfo("UTC"), require_date=False)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            failed += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            warn(f"{path}: {reason}")
            echo(json.dumps({"file": str(path), "error": reason}, ensure_ascii=False) if as_json else "")
            continue
        choice = choose_teaser(article, max_chars)
        out = as_teaser(choice.text)
        if not as_json:
            echo(out.text)
            continue
        echo(
            json.dumps(
                {
                    "file": str(path),
                    "teaser": out.text,
                    "html": out.html,
                    "chars": len(out.text),
                    "max_chars": max_chars,
                    "origin": choice.origin,
                    "language": choice.language,
                    "passed_over": [{"reason": p.reason, "text": p.text} for p in choice.passed],
                },
                ensure_ascii=False,
            )
        )
    if failed == len(files):
        raise UsageError("no article file could be read")
