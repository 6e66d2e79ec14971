"""The ``digest`` command. Only this module knows click; library code raises typed errors and this
module turns them into one clear line on stderr and an exit status."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

from digest import __version__
from digest.config import Settings, config_path_from, load_config
from digest.errors import ConfigError, DigestError, UsageError
from digest.store import Store

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, config: str | None, debug: bool) -> None:
        self.config_option = config
        self.debug = debug
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_config(config_path_from(self.config_option))
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.state_url)
        return self._store

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def moment(self, value: str | None) -> datetime | None:
        """Parse an --as-of value; a time without a zone is in the newsletter's time zone."""
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--as-of: expected a date or date and time like 2025-08-11T09:00, got {value!r}") from None
        return when if when.tzinfo else when.replace(tzinfo=self.settings.newsletter.tz)


pass_ctx = click.make_pass_decorator(Context)


def echo(message: str) -> None:
    click.echo(message)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example:\n\n  digest --config config/digest.toml run",
)
@click.option(
    "--config",
    "-c",
    metavar="FILE",
    help="Config file (default: $DIGEST_CONFIG, else config/digest.toml).",
)
@click.option("--debug", is_flag=True, help="Verbose logging, and a traceback for unexpected errors.")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool) -> None:
    """digest: a newsletter digest generator.

    Ingests articles from feeds, pages and folders, selects this issue's articles, writes their
    teasers, renders a responsive e-mail with a plain-text twin, and delivers it to each
    subscriber exactly once.
    """
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = Context(config, debug)


@cli.command(epilog="Example:\n\n  digest ingest")
@pass_ctx
def ingest(c: Context) -> None:
    """Read every configured source and store new and changed articles."""
    from digest.pipeline import ingest as run_ingest

    report = run_ingest(c.settings, c.store, now=c.now())
    for s in report.sources:
        if s.error:
            warn(s.error)
        else:
            echo(f"{s.name}: {s.seen} articles ({s.new} new, {s.updated} updated)")
    if report.sources and len(report.failed) == len(report.sources):
        raise DigestError("every source failed; nothing was ingested")


@cli.command(epilog="Example:\n\n  digest build --as-of 2025-08-11T09:00 --out out")
@click.option("--as-of", "as_of", metavar="WHEN", help="Build the issue due at WHEN (ISO date/time). Default: the next scheduled issue.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("out"), show_default=True, help="Folder for issue.html, issue.txt and a sample issue.eml.")
@click.option("--ingest/--no-ingest", "do_ingest", default=True, show_default=True, help="Read the sources first.")
@pass_ctx
def build(c: Context, as_of: str | None, out: Path, do_ingest: bool) -> None:
    """Build an issue and write it to a folder; sends nothing."""
    from digest.pipeline import build_issue, check_sources_failing, due_slot, token_signer, upcoming_slot, write_build
    from digest.pipeline import ingest as run_ingest

    when = c.moment(as_of)
    if do_ingest:
        for s in run_ingest(c.settings, c.store, now=c.now()).failed:
            warn(s.error or "")
    slot = due_slot(c.settings, when) if when else upcoming_slot(c.settings, c.now())
    built = build_issue(c.settings, c.store, slot)
    paths = write_build(built, c.settings, token_signer(c.settings, c.store), out, now=c.now())
    for w in check_sources_failing(c.store):
        warn(w)
    n = len(built.issue.entries)
    if n < c.settings.selection.min_articles:
        warn(f"only {n} articles: fewer than selection.min_articles = {c.settings.selection.min_articles}; this issue would be skipped")
    echo(f"issue {slot.key}: {n} articles; subject: {built.rendered.subject}")
    echo(f"wrote {paths.html}, {paths.text} and {paths.eml}")


def _print_send(report: Any) -> None:
    echo(report.message)
    for email, detail in report.failures:
        echo(f"  failed: {email}: {detail}")


@cli.command(epilog="Examples:\n\n  digest send --dry-run\n\n  digest send --to editor@example.org")
@click.option("--as-of", "as_of", metavar="WHEN", help="Send the issue due at WHEN instead of now.")
@click.option("--dry-run", is_flag=True, help="Build and count recipients; connect to nothing, send nothing.")
@click.option("--to", "to", metavar="ADDR", help="Send a test copy to ADDR only, marked [TEST], outside the ledger.")
@pass_ctx
def send(c: Context, as_of: str | None, dry_run: bool, to: str | None) -> None:
    """Send the due issue to every active subscriber (from stored articles; no ingest).

    An interrupted send resumes where it stopped; a finished one sends nothing again.
    """
    from digest.pipeline import due_slot, send_issue, sync_subscribers

    now = c.now()
    slot = due_slot(c.settings, c.moment(as_of) or now)
    if to:
        _send_test(c, slot, to, now)
        return
    if not dry_run:
        sync_subscribers(c.settings, c.store, now=now)
    report = send_issue(c.settings, c.store, slot, now=now, clock=c.now, dry_run=dry_run)
    _print_send(report)
    if report.outcome == "incomplete":
        sys.exit(3)


def _send_test(c: Context, slot: Any, to: str, now: datetime) -> None:
    from digest.delivery.base import OutgoingMessage, backend_from_settings
    from digest.errors import DeliveryError
    from digest.pipeline import build_issue, token_signer
    from digest.render.message import build_message
    from digest.subscribers import normalise_address

    try:
        address = normalise_address(to)
    except ValueError as exc:
        raise UsageError(f"--to {to!r}: {exc}") from None
    built = build_issue(c.settings, c.store, slot)
    msg = build_message(
        built.rendered, c.settings.newsletter, to=address, token=token_signer(c.settings, c.store).token(address), now=now, subject_prefix="[TEST] "
    )
    with backend_from_settings(c.settings.delivery, issue_key=f"test-{slot.key}") as backend:
        (result,) = backend.send_batch([OutgoingMessage(address, msg)])
    if result.status != "sent":
        raise DeliveryError(f"test copy to {address} not delivered: {result.detail}")
    echo(f"test copy of issue {slot.key} sent to {address}")


@cli.command(epilog="Example:\n\n  digest run --as-of 2025-08-11T09:00")
@click.option("--as-of", "as_of", metavar="WHEN", help="Run for the slot due at WHEN instead of now (ISO date/time).")
@pass_ctx
def run(c: Context, as_of: str | None) -> None:
    """Ingest, build and send the due issue once.

    The issue is keyed by its scheduled slot, so a second run for the same slot sends nothing.
    """
    from digest.pipeline import run_once

    now = c.now()
    report, sent = run_once(c.settings, c.store, as_of=c.moment(as_of) or now, now=now)
    for s in report.sources:
        if s.error:
            warn(s.error)
        else:
            echo(f"ingested {s.name}: {s.seen} articles ({s.new} new, {s.updated} updated)")
    _print_send(sent)
    if sent.outcome == "incomplete":
        sys.exit(3)


@cli.group()
def subscribers() -> None:
    """Manage the subscriber list."""


@subscribers.command("import", epilog="Example:\n\n  digest subscribers import config/subscribers.csv")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def subscribers_import(c: Context, csv_file: Path) -> None:
    """Add the addresses in FILE.csv (columns: email, name). Existing subscribers keep their status."""
    from digest.subscribers import read_subscriber_csv

    result = read_subscriber_csv(csv_file)
    for p in result.problems:
        warn(p)
    added, present = c.store.add_subscribers(result.rows, now=c.now())
    echo(f"{added} added, {present} already present, {len(result.problems)} rows with problems")


@subscribers.command("list", epilog="Example:\n\n  digest subscribers list --status active")
@click.option("--status", type=click.Choice(["active", "unsubscribed", "bounced"]), help="Only this status.")
@pass_ctx
def subscribers_list(c: Context, status: str | None) -> None:
    """List subscribers: address, status, name."""
    rows = c.store.subscriber_rows(status)
    for r in rows:
        echo(f"{r.email}\t{r.status}\t{r.name or ''}")
    if not rows:
        echo("no subscribers" + (f" with status {status}" if status else ""))


# === sources: health and listing ==================================================
# (commands for ingest health go below this line)


# === teasers ======================================================================
# (teaser commands go below this line)


@cli.command(epilog="Examples:\n\n  digest teaser examples/content/*.md\n\n  digest teaser --max-chars 160 --json article.html")
@click.option("--max-chars", "max_chars", type=click.IntRange(min=20), metavar="N", help="Budget in characters (default: teaser.max_chars from the config when there is one, else 220).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: teaser, html, origin, language, and what was passed over.")
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
        echo(json.dumps({
            "file": str(path),
            "teaser": out.text,
            "html": out.html,
            "chars": len(out.text),
            "max_chars": max_chars,
            "origin": choice.origin,
            "language": choice.language,
            "passed_over": [{"reason": p.reason, "text": p.text} for p in choice.passed],
        }, ensure_ascii=False))
    if failed == len(files):
        raise UsageError("no article file could be read")


# === schedule, preview, serve, hold ===============================================
# (scheduler and web commands go below this line)


# === delivery: status, retries ====================================================
# (delivery commands go below this line)



def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning digest's errors into one line and an exit status."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("digest: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"digest: config error: {problem}", err=True)
        sys.exit(exc.exit_code)
    except DigestError as exc:
        click.echo(f"digest: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("digest: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            raise
        click.echo(f"digest: unexpected error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
