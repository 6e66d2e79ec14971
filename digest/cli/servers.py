"""Long-running commands: ``schedule``, ``preview`` and ``serve``."""

from __future__ import annotations

import logging

import click

from digest.cli.app import Context, cli, configure_logging, echo, pass_ctx
from digest.config import config_path_from
from digest.errors import DigestError, UsageError


def _daemon_logging(c: Context) -> None:
    """Long-running commands log what they do, with the time, at INFO (DEBUG with --debug,
    errors only with -q)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    configure_logging("verbose" if c.verbosity == "normal" else c.verbosity)


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
    _daemon_logging(c)
    run_scheduler(c.settings, c.store)


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
    _daemon_logging(c)
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
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="Requests handled at once.")
@click.option(
    "--idle-timeout",
    default=30,
    show_default=True,
    type=click.IntRange(1, 3600),
    help="Seconds before a silent connection (idle, or stalled mid-request) is closed.",
)
@pass_ctx
def serve(c: Context, host: str, port: int, threads: int, idle_timeout: int) -> None:
    """Serve the subscribers' endpoints: sign-up with double opt-in (/subscribe, /confirm),
    one-click unsubscribe (/unsubscribe, RFC 8058), the archive of sent issues (/archive, the
    view-in-browser link) and the e-mail services' webhooks (/webhooks/mailgun, sendgrid,
    postmark). Meant to sit behind the publication's web server."""
    from digest.web.serve import run_serve
    from digest.web.wsgi import ServerLimits

    _daemon_logging(c)
    limits = ServerLimits(threads=threads, idle_timeout=idle_timeout)
    try:
        run_serve(c.settings, c.store, host, port, limits, ready=lambda url: echo(f"serving on {url} (Ctrl-C to stop)"))
    except OSError as exc:
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None
