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
            raise UsageError(
                f"--as-of: expected a date or date and time like 2025-08-11T09:00, got {value!r}"
            ) from None
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
            continue
        echo(f"{s.name}: {s.note}")
        for problem in s.problems:
            warn(f"source {s.name!r}: {problem}")
        if s.moved_to:
            warn(f"source {s.name!r} moved permanently to {s.moved_to}; update its url in the config")
    if report.sources and len(report.failed) == len(report.sources):
        raise DigestError("every source failed; nothing was ingested")


@cli.command(epilog="Example:\n\n  digest build --as-of 2025-08-11T09:00 --out out")
@click.option(
    "--as-of",
    "as_of",
    metavar="WHEN",
    help="Build the issue due at WHEN (ISO date/time). Default: the next scheduled issue.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for issue.html, issue.txt and a sample issue.eml.",
)
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
    for w in check_sources_failing(c.store, configured=[s.name for s in c.settings.sources]):
        warn(w)
    n = len(built.issue.entries)
    if n < c.settings.selection.min_articles:
        warn(
            f"only {n} articles: fewer than selection.min_articles = {c.settings.selection.min_articles}; this issue would be skipped"
        )
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
@click.option("--retry-failed", is_flag=True, help="Give the issue's failed deliveries another try, then send.")
@pass_ctx
def send(c: Context, as_of: str | None, dry_run: bool, to: str | None, retry_failed: bool) -> None:
    """Send the due issue to every active subscriber (from stored articles; no ingest).

    An interrupted send resumes where it stopped; a finished one sends nothing again.
    """
    from digest.pipeline import due_slot, send_issue_exclusive, sync_subscribers

    now = c.now()
    slot = due_slot(c.settings, c.moment(as_of) or now)
    if to:
        _send_test(c, slot, to, now)
        return
    if retry_failed:
        if dry_run:
            raise UsageError("--retry-failed and --dry-run do not go together")
        echo(_reset_failed(c, slot.key, now))
    if not dry_run:
        sync_subscribers(c.settings, c.store, now=now)
    with _progress_reporter() as progress:
        report = send_issue_exclusive(
            c.settings, c.store, slot, now=now, clock=c.now, dry_run=dry_run, progress=progress
        )
    _print_send(report)
    if report.outcome == "incomplete":
        sys.exit(3)


def _send_test(c: Context, slot: Any, to: str, now: datetime) -> None:
    from digest.pipeline import send_test_copy

    try:
        address = send_test_copy(c.settings, c.store, slot, to, now=now)
    except ValueError as exc:
        raise UsageError(f"--to {to!r}: {exc}") from None
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
            echo(f"ingested {s.name}: {s.note}")
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
    added, present = c.store.subscribers.add(result.rows, now=c.now())
    echo(f"{added} added, {present} already present, {len(result.problems)} rows with problems")


@subscribers.command("list", epilog="Example:\n\n  digest subscribers list --status active")
@click.option("--status", type=click.Choice(["active", "unsubscribed", "bounced"]), help="Only this status.")
@pass_ctx
def subscribers_list(c: Context, status: str | None) -> None:
    """List subscribers: address, status, name."""
    rows = c.store.subscribers.all(status)
    for r in rows:
        echo(f"{r.email}\t{r.status}\t{r.name or ''}")
    if not rows:
        echo("no subscribers" + (f" with status {status}" if status else ""))


# === sources: health and listing ==================================================
# (commands for ingest health go below this line)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


@cli.command("sources", epilog="Examples:\n\n  digest sources\n\n  digest sources --failing")
@click.option("--failing", is_flag=True, help="Only sources whose last read failed.")
@pass_ctx
def sources_list(c: Context, failing: bool) -> None:
    """List the configured sources and their health: last success, last error, failures in a row.

    Health is recorded by every ingest (digest ingest, build, run); this command reads nothing.
    """
    from digest.pipeline import FAILING_RUNS

    rows = {r.name: r for r in c.store.sources.all()}
    shown = 0
    for cfg in c.settings.sources:
        r = rows.pop(cfg.name, None)
        location = cfg.url or str(cfg.path)
        if r is None or r.location != location:
            status = "not read yet"
        elif r.failures:
            status = f"FAILING, {r.failures} run{'s' if r.failures != 1 else ''} in a row" + (
                " (digest build warns)" if r.failures >= FAILING_RUNS else ""
            )
        else:
            status = "ok"
        if failing and not status.startswith("FAILING"):
            continue
        shown += 1
        echo(f"{cfg.name} ({cfg.kind}{', full pages' if cfg.fetch_full else ''}): {status}")
        echo(f"  location:      {location}")
        if r is None or r.location != location:
            continue
        if r.moved_to:
            echo(f"  moved to:      {r.moved_to} (permanent redirect; update the config)")
        echo(
            f"  last success:  {_when(r.last_success)}" + (f": {r.last_note}" if r.last_note and r.last_success else "")
        )
        if r.last_error:
            echo(f"  last error:    {_when(r.last_error_at)}: {r.last_error}")
    for r in rows.values():
        if failing and not r.failures:
            continue
        shown += 1
        echo(f"{r.name}: no longer in the config (last success {_when(r.last_success)})")
    if not shown:
        echo("no failing sources" if failing else "no sources configured; add [[sources]] tables to the config")


# === teasers ======================================================================
# (teaser commands go below this line)


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


# === schedule, preview, serve, hold ===============================================
# (scheduler and web commands go below this line)


def _daemon_logging(debug: bool) -> None:
    """Long-running commands log what they do, with the time, at INFO (DEBUG with --debug)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("digest").setLevel(logging.DEBUG if debug else logging.INFO)


@cli.command(epilog="Examples:\n\n  digest schedule\n\n  digest schedule --list")
@click.option(
    "--list", "list_runs", is_flag=True, help="Print the next five run times in the newsletter's time zone and exit."
)
@click.option("--as-of", "as_of", metavar="WHEN", help="With --list: the runs after WHEN instead of now.")
@pass_ctx
def schedule(c: Context, list_runs: bool, as_of: str | None) -> None:
    """Run the scheduler: send each issue at its slot ([schedule] cron, in the newsletter's time
    zone), exactly once. Stops cleanly on SIGTERM or Ctrl-C; a send in progress finishes its
    batch and is resumed at the next start."""
    from digest.schedule import describe_planned_runs, run_scheduler

    if list_runs:
        for line in describe_planned_runs(c.settings, c.moment(as_of) or c.now()):
            echo(line)
        return
    if as_of:
        raise UsageError("--as-of: only with --list; the scheduler runs on the real clock")
    _daemon_logging(c.debug)
    run_scheduler(c.settings, c.store)


@cli.command(epilog="Examples:\n\n  digest hold 2025-W33\n\n  digest hold --release 2025-W33")
@click.argument("issue", required=False)
@click.option("--release", is_flag=True, help="Let a held issue go again.")
@click.option("--list", "list_holds", is_flag=True, help="List the issues on hold.")
@pass_ctx
def hold(c: Context, issue: str | None, release: bool, list_holds: bool) -> None:
    """Hold ISSUE back: the scheduler (and digest run/send) will not send it until released."""
    from digest.pipeline import due_slot
    from digest.schedule import planned_runs

    if list_holds:
        rows = c.store.issues.held()
        for r in rows:
            echo(f"{r.issue_key}\theld since {r.created_at.astimezone(c.settings.newsletter.tz):%Y-%m-%d %H:%M %Z}")
        if not rows:
            echo("no issue is on hold")
        return
    if not issue:
        raise UsageError("give the ISSUE to hold, e.g. digest hold 2025-W33 (see digest schedule --list)")
    if release:
        if c.store.issues.release_hold(issue):
            echo(f"issue {issue} released; it goes out at its slot (or now with: digest run)")
        else:
            echo(f"issue {issue} was not on hold; nothing changed")
        return
    row = c.store.issues.get(issue)
    if row is not None:
        state = {"sent": "was already sent", "sending": "is being sent", "skipped": "was skipped"}.get(
            row.status, row.status
        )
        raise UsageError(f"issue {issue} {state}; a hold cannot change that")
    now = c.now()
    known = [due_slot(c.settings, now).key] + [r.slot.key for r in planned_runs(c.settings, now, 60)]
    if issue not in known:
        raise UsageError(
            f"{issue!r} is not an upcoming issue of this schedule; the next ones are {', '.join(known[1:4])}"
        )
    if c.store.issues.hold(issue, now=now):
        echo(f"issue {issue} is on hold: it will not be sent until `digest hold --release {issue}`")
    else:
        echo(f"issue {issue} was already on hold")


@cli.command(epilog="Examples:\n\n  digest preview\n\n  digest preview --port 8001 --as-of 2025-08-11T09:00")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--as-of",
    "as_of",
    metavar="WHEN",
    help="Preview the issue due at WHEN (as digest build --as-of). Default: the next scheduled issue.",
)
@pass_ctx
def preview(c: Context, host: str, port: int, as_of: str | None) -> None:
    """Show the next issue in the browser, exactly as it would be sent: desktop, phone and dark
    mode, the text part, subject and preheader, chosen and left-out articles, warnings, and a
    test-send button. The page reloads within a second of a change to a template, the config or
    a content file."""
    from digest.web.preview import run_preview

    when = c.moment(as_of)
    _daemon_logging(c.debug)
    try:
        run_preview(
            config_path_from(c.config_option),
            host,
            port,
            as_of=when,
            ready=lambda url: echo(f"preview on {url} (Ctrl-C to stop)"),
        )
    except OSError as exc:
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None


@cli.command(epilog="Examples:\n\n  digest serve\n\n  digest serve --host 127.0.0.1 --port 8080")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep 127.0.0.1 behind a web server)."
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@pass_ctx
def serve(c: Context, host: str, port: int) -> None:
    """Serve the subscribers' endpoints: one-click unsubscribe (/unsubscribe, RFC 8058) and the
    archive of sent issues (/archive, the view-in-browser link). Meant to sit behind the
    publication's web server."""
    from digest.web.serve import run_serve

    _daemon_logging(c.debug)
    try:
        run_serve(c.settings, c.store, host, port, ready=lambda url: echo(f"serving on {url} (Ctrl-C to stop)"))
    except OSError as exc:
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None


# === delivery: status, retries ====================================================
# (delivery commands go below this line)


def _reset_failed(c: Context, key: str, now: datetime) -> str:
    if c.store.issues.get(key) is None:
        raise UsageError(f"--retry-failed: issue {key} has not been sent yet; nothing to retry")
    n = c.store.deliveries.reset_failed(key, now=now)
    return f"issue {key}: {n} failed deliveries will be tried again"


class _LogProgress:
    """Plain progress lines on stderr (not a terminal): at most one every few seconds."""

    def __init__(self, every: float = 5.0) -> None:
        import time

        self._time = time.monotonic
        self.every = every
        self.start = self._time()
        self.last = 0.0

    def __call__(self, p: Any) -> None:
        t = self._time()
        finished = p.sent + p.failed >= p.total
        if t - self.last < self.every and not finished:
            return
        self.last = t
        rate = p.done_this_run / max(t - self.start, 1e-6)
        left = p.total - p.sent - p.failed
        eta = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
        click.echo(f"issue {p.key}: {p.sent}/{p.total} sent, {p.failed} failed, {rate:.0f} messages/s{eta}", err=True)


class _progress_reporter:
    """A rich progress bar (sent, failed, rate, time left) on a terminal, log lines otherwise."""

    def __enter__(self) -> Callable[[Any], None]:
        if not sys.stderr.isatty():
            self._bar = None
            return _LogProgress()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]} msg/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.__enter__()
        self._task: Any = None
        import time

        self._start = time.monotonic()

        def update(p: Any) -> None:
            import time as _t

            assert self._bar is not None
            if self._task is None:
                self._task = self._bar.add_task(f"issue {p.key}", total=p.total, failed=0, rate="0")
            rate = p.done_this_run / max(_t.monotonic() - self._start, 1e-6)
            self._bar.update(self._task, completed=p.sent + p.failed, failed=p.failed, rate=f"{rate:.0f}")

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@cli.command(epilog="Examples:\n\n  digest status\n\n  digest status 2025-W33")
@click.argument("issue", required=False, metavar="[ISSUE]")
@pass_ctx
def status(c: Context, issue: str | None) -> None:
    """Show issues and their deliveries: counts, failures with the server's words, retries."""
    store = c.store
    if issue is None:
        rows = store.issues.recent()
        if not rows:
            echo("no issues yet")
        for r in rows:
            counts = store.deliveries.counts(r.key)
            parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or (r.note or "")
            echo(f"{r.key}\t{r.status}\t{parts}")
        return
    row = store.issues.get(issue)
    if row is None:
        raise UsageError(f"no issue {issue!r}; `digest status` lists the issues")
    counts = store.deliveries.counts(issue)
    total = sum(counts.values())
    echo(f"issue {issue}: {row.status}; {total} deliveries")
    for name in ("sent", "failed", "retry", "pending", "inflight", "skipped"):
        if counts.get(name):
            echo(f"  {name}: {counts[name]}")
    interrupted = store.deliveries.interrupted_total(issue)
    if interrupted:
        echo(
            f"  interrupted: {interrupted} deliveries were in flight when a sender stopped (at most that many duplicates)"
        )
    for failed in store.deliveries.with_status(issue, ("failed",)):
        echo(f"  failed: {failed.email}: {failed.detail or ''}")
    for retry in store.deliveries.with_status(issue, ("retry",)):
        when = retry.next_attempt.isoformat(timespec="seconds") if retry.next_attempt else "now"
        echo(f"  retry: {retry.email}: after {retry.attempts} attempts, next at {when}: {retry.detail or ''}")


@subscribers.command("export", epilog="Example:\n\n  digest subscribers export subscribers.csv --status active")
@click.argument("out", metavar="[FILE.csv]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=click.Choice(["active", "unsubscribed", "bounced"]), help="Only this status.")
@pass_ctx
def subscribers_export(c: Context, out: Path | None, status: str | None) -> None:
    """Write subscribers as CSV (email, name, status) to FILE.csv, or to standard output."""
    import csv

    handle = out.open("w", encoding="utf-8", newline="") if out else None
    try:
        writer = csv.writer(handle or sys.stdout, lineterminator="\n")
        writer.writerow(["email", "name", "status"])
        n = 0
        for r in c.store.subscribers.stream(status):
            writer.writerow([r.email, r.name or "", r.status])
            n += 1
    finally:
        if handle:
            handle.close()
    if out:
        echo(f"wrote {n} subscribers to {out}")


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
        click.echo(
            f"digest: unexpected error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)", err=True
        )
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
