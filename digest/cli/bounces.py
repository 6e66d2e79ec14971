"""The ``bounces`` commands: read the bounce mailbox."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.app import Context, cli, echo, pass_ctx


@cli.group(epilog="Example:\n\n  digest bounces process ~/Maildir/.bounces")
def bounces() -> None:
    """Bounces, complaints and unsubscribe mails that came back by e-mail."""


@bounces.command(
    "process",
    epilog="Examples:\n\n  digest bounces process ~/Maildir/.bounces\n\n  digest bounces process bounces.mbox",
)
@click.argument("path", metavar="PATH", type=click.Path(path_type=Path))
@pass_ctx
def bounces_process(c: Context, path: Path) -> None:
    """Read a Maildir or mbox: delivery status notifications (RFC 3464) and hard bounces take the
    address off the list, soft ones after [webhooks] soft_bounce_limit issues in a row;
    feedback-loop reports (ARF, RFC 5965) count as complaints; mails to the List-Unsubscribe
    mailto address unsubscribe their sender. Messages read before are skipped."""
    from digest.delivery.bounces import process_mailbox

    results = process_mailbox(c.settings, c.store, path, now=c.now())
    applied = skipped = seen = 0
    for r in results:
        if r.seen_before:
            seen += 1
        elif not r.done:
            skipped += 1
        for kind, email, issue, outcome in r.done:
            applied += 1
            echo(f"{r.where}: {kind} {email}{f' (issue {issue})' if issue else ''}: {outcome}")
    echo(
        f"{len(results)} messages: {applied} reports applied, {seen} read before, "
        f"{skipped} not a bounce, complaint or unsubscribe"
    )
