"""Commands for one issue: ``build``, ``send``, ``run``, ``hold`` and ``status``."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.cli.app import Context, cli, echo, pass_ctx, warn
from digest.cli.output import duration, json_option, print_json, table
from digest.cli.progress import ProgressReporter
from digest.errors import UsageError
from digest.text import plural

if TYPE_CHECKING:
    from digest.pipeline import SendReport, Slot


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
    from digest.build_files import write_build
    from digest.pipeline import build_issue, due_slot, token_signer, upcoming_slot
    from digest.pipeline import ingest as run_ingest
    from digest.select import too_few_articles
    from digest.sources.health import build_warnings, source_health

    when = c.moment(as_of)
    if do_ingest:
        for s in run_ingest(c.settings, c.store, now=c.now()).failed:
            warn(s.error or "")
    slot = due_slot(c.settings, when) if when else upcoming_slot(c.settings, c.now())
    built = build_issue(c.settings, c.store, slot)
    paths = write_build(built.rendered, c.settings, token_signer(c.settings, c.store), out, now=c.now())
    for w in build_warnings(source_health(c.settings.sources, c.store.sources.all())):
        warn(w)
    n = len(built.issue.entries)
    too_few = too_few_articles(n, c.settings.selection.min_articles)
    if too_few is not None:
        warn(f"{too_few}; this issue would be skipped")
    echo(f"issue {slot.key}: {plural(n, 'article')}; subject: {built.rendered.subject}")
    echo(f"wrote {paths.html}, {paths.text} and {paths.eml}")


def _print_send(report: SendReport) -> None:
    echo(report.message)
    for email, detail in report.failures:
        echo(f"  failed: {email}: {detail}")


@cli.command(epilog="Examples:\n\n  digest send --dry-run\n\n  digest send --to editor@example.org")
@click.option("--as-of", "as_of", metavar="WHEN", help="Send the issue due at WHEN instead of now.")
@click.option("--dry-run", is_flag=True, help="Build and count recipients; connect to nothing, send nothing.")
@click.option("--to", "to", metavar="ADDR", help="Send a test copy to ADDR only, marked [TEST], outside the ledger.")
@click.option("--retry-failed", is_flag=True, help="Give the issue's failed deliveries another try, then send.")
@click.option("--force", is_flag=True, help="Send a slot that was skipped (too few articles) after all.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Sender processes on this machine, sharing the issue (each with its own connections).",
)
@pass_ctx
def send(
    c: Context, as_of: str | None, dry_run: bool, to: str | None, retry_failed: bool, force: bool, workers: int
) -> None:
    """Send the due issue to every active subscriber (from stored articles; no ingest).

    An interrupted send resumes where it stopped; a finished one sends nothing again. Several
    senders (--workers, or `digest send` on other machines sharing a PostgreSQL state database)
    work through one issue together, never sending a delivery twice.
    """
    from digest.pipeline import due_slot

    now = c.now()
    if to is not None:
        # A test copy is its own path: an empty --to (an unset shell variable) is a usage error,
        # never a fall-through into the real send.
        if dry_run or retry_failed or force or workers > 1:
            raise UsageError(
                "--to sends one test copy; it does not go with --dry-run, --retry-failed, --force or --workers"
            )
        _send_test(c, due_slot(c.settings, c.moment(as_of) or now), to, now)
        return
    slot = due_slot(c.settings, c.moment(as_of) or now)
    _send_everyone(c, slot, now, dry_run=dry_run, retry_failed=retry_failed, force=force, workers=workers)


def _send_everyone(
    c: Context, slot: Slot, now: datetime, *, dry_run: bool, retry_failed: bool, force: bool, workers: int
) -> None:
    """The real send, through the ledger, to every active subscriber."""
    from digest.pipeline import send_issue_exclusive, sync_subscribers

    if retry_failed:
        if dry_run:
            raise UsageError("--retry-failed and --dry-run do not go together")
        echo(_reset_failed(c, slot.key, now))
    if workers > 1 and dry_run:
        raise UsageError("--workers and --dry-run do not go together (a dry run sends nothing)")
    if not dry_run:
        sync_subscribers(c.settings, c.store, now=now)
    # The other workers are this command again, one process each; they wait for this one (or the
    # first of them) to open the issue, then claim their own batches.
    helpers = [_spawn_worker(c, slot) for _ in range(workers - 1)]
    with ProgressReporter(quiet=c.verbosity == "quiet") as progress:
        report = send_issue_exclusive(
            c.settings, c.store, slot, now=now, clock=c.now, dry_run=dry_run, progress=progress, force=force
        )
    _print_send(report)
    code = report.exit_status
    for proc in helpers:
        _, err = proc.communicate()
        if proc.returncode not in (0, 3, 4):  # 3 and 4 are outcomes the parent reports too
            lines = err.strip().splitlines()
            warn(f"a --workers process stopped (exit {proc.returncode}): {lines[-1] if lines else 'no message'}")
        code = max(code, proc.returncode if proc.returncode > 0 else 1 if proc.returncode else 0)
    if code:
        sys.exit(code)


def _spawn_worker(c: Context, slot: Slot) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "digest", "--config", str(c.settings.config_path), "send"]
    args += ["--as-of", slot.at.isoformat()]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _send_test(c: Context, slot: Slot, to: str, now: datetime) -> None:
    from digest.pipeline import send_test_copy

    if not to.strip():
        raise UsageError("--to: give the address for the test copy (it is empty; is the shell variable set?)")
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
    if sent.exit_status:
        sys.exit(sent.exit_status)


@cli.command(epilog="Examples:\n\n  digest hold 2025-W33\n\n  digest hold --release 2025-W33")
@click.argument("issue", required=False)
@click.option("--release", is_flag=True, help="Let a held issue go again.")
@click.option("--list", "list_holds", is_flag=True, help="List the issues on hold.")
@pass_ctx
def hold(c: Context, issue: str | None, release: bool, list_holds: bool) -> None:
    """Hold ISSUE back: the scheduler (and digest run/send) will not send it until released."""
    from digest.holds import hold_issue

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
    if hold_issue(c.settings, c.store, issue, now=c.now()):
        echo(f"issue {issue} is on hold: it will not be sent until `digest hold --release {issue}`")
    else:
        echo(f"issue {issue} was already on hold")


def _reset_failed(c: Context, key: str, now: datetime) -> str:
    if c.store.issues.get(key) is None:
        raise UsageError(f"--retry-failed: issue {key} has not been sent yet; nothing to retry")
    n = c.store.deliveries.reset_failed(key, now=now)
    return f"issue {key}: {n} failed deliveries will be tried again"


@cli.command(epilog="Examples:\n\n  digest status\n\n  digest status 2025-W33\n\n  digest status --json")
@click.argument("issue", required=False, metavar="[ISSUE]")
@json_option
@pass_ctx
def status(c: Context, issue: str | None, as_json: bool) -> None:
    """Show issues and their deliveries: counts, failures with the server's words, retries; for
    one ISSUE also what came back (bounced, complained, unsubscribed from this issue) and the
    complaint rate against Gmail's 0.3% line."""
    from digest.delivery.status import STATUS_ORDER, issue_status, recent_issues

    tz = c.settings.newsletter.tz
    if issue is None:
        summaries = recent_issues(c.store)
        if as_json:
            print_json(
                [
                    {
                        "issue": r.key,
                        "status": r.status,
                        "subject": r.subject,
                        "sent_at": r.sent_at,
                        "finished_at": r.finished_at,
                        "duration_seconds": r.duration_seconds,
                        "delivered": r.delivered,
                        "failed": r.failed,
                        "pending": r.pending,
                        "note": r.note,
                    }
                    for r in summaries
                ]
            )
            return
        if not summaries:
            echo("no issues yet")
            return
        rows = [
            (
                r.key,
                _clip(r.subject or (f"({r.status}: {r.note})" if r.note else f"({r.status})"), 50),
                f"{r.sent_at.astimezone(tz):%Y-%m-%d %H:%M}" if r.sent_at else "",
                duration(r.duration_seconds) or ("sending" if r.status == "sending" else ""),
                r.delivered,
                r.failed,
                r.pending,
            )
            for r in summaries
        ]
        echo(table(("issue", "subject", "sent at", "duration", "delivered", "failed", "pending"), rows))
        return
    found = issue_status(c.store, issue)
    if found is None:
        raise UsageError(f"no issue {issue!r}; `digest status` lists the issues")
    if as_json:
        print_json(
            {
                "issue": found.key,
                "status": found.status,
                "counts": found.counts,
                "interrupted": found.interrupted,
                "failed": [{"email": d.email, "detail": d.detail, "attempts": d.attempts} for d in found.failed],
                "retrying": [
                    {"email": d.email, "detail": d.detail, "attempts": d.attempts, "next_attempt": d.next_attempt}
                    for d in found.retrying
                ],
            }
        )
        return
    echo(f"issue {issue}: {found.status}; {found.total} deliveries")
    for name in STATUS_ORDER:
        if found.counts.get(name):
            echo(f"  {name}: {found.counts[name]}")
    if found.interrupted:
        echo(
            f"  interrupted: {found.interrupted} deliveries were in flight when a sender stopped or lost its "
            "connection after handing the message over (at most that many duplicates)"
        )
    fb = found.feedback
    echo(
        f"  delivered {found.delivered}, bounced {found.bounced} ({fb.get('hard-bounce', 0)} hard, "
        f"{fb.get('soft-bounce', 0)} soft), complained {fb.get('complaint', 0)}, "
        f"unsubscribed from this issue {fb.get('unsubscribe', 0)}"
    )
    if found.complaint_rate is not None:
        verdict = (
            "AT OR ABOVE Gmail's 0.3% line: mailbox providers throttle or block senders past it"
            if found.over_complaint_line
            else "below Gmail's 0.3% line"
        )
        echo(f"  complaint rate: {found.complaint_rate:.2%} ({verdict})")
    for d in found.failed:
        echo(f"  failed: {d.email}: {d.detail or ''}")
    for d in found.retrying:
        when = d.next_attempt.isoformat(timespec="seconds") if d.next_attempt else "now"
        echo(f"  retry: {d.email}: after {d.attempts} attempts, next at {when}: {d.detail or ''}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
