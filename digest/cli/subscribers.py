"""The ``subscribers`` commands: import, list and export the subscriber list."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from digest.cli.app import Context, cli, echo, pass_ctx, warn
from digest.cli.output import json_option, print_json
from digest.errors import DigestError, FileError

STATUSES = ["active", "unsubscribed", "bounced", "complained"]


@cli.group()
def subscribers() -> None:
    """Manage the subscriber list."""


def spreadsheet_safe(cell: str) -> str:
    """The cell with a leading apostrophe when a spreadsheet would read it as a formula (it starts
    with = + - @, or a tab or carriage return before one): a name like ``=cmd|' /C calc'!A0`` stays text.
    OWASP's advice on CSV injection: https://owasp.org/www-community/attacks/CSV_Injection"""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _address(value: str) -> str:
    from digest.subscribers import normalise_address

    try:
        return normalise_address(value)
    except ValueError as exc:
        raise DigestError(f"{value!r}: not a valid e-mail address: {exc}") from None


def _known(c: Context, email: str) -> str:
    found = c.store.subscribers.find(email)
    if found is None:
        raise DigestError(f"{email} is not on the list; see `digest subscribers list`")
    return found.email


@subscribers.command("add", epilog='Example:\n\n  digest subscribers add ann@example.org --name "Ann Lee"')
@click.argument("email")
@click.option("--name", help="The subscriber's name, for the greeting and the To: header.")
@pass_ctx
def subscribers_add(c: Context, email: str, name: str | None) -> None:
    """Add EMAIL to the list as active. Someone who left is not added back: use resubscribe."""
    address = _address(email)
    report = c.store.subscribers.add([(address, name)], now=c.now(), origin="cli", reason="added by the editor")
    if report.added:
        echo(f"added {address}")
    elif report.present:
        echo(f"{report.present[0]} is already on the list")
    else:
        why = report.kept_out[0][1]
        raise DigestError(f"{address}: {why}; run `digest subscribers resubscribe {address}` if they asked to return")


@subscribers.command("unsubscribe", epilog="Example:\n\n  digest subscribers unsubscribe ann@example.org")
@click.argument("email")
@click.option("--reason", help="Why, for the history (e.g. 'asked by e-mail').")
@pass_ctx
def subscribers_unsubscribe(c: Context, email: str, reason: str | None) -> None:
    """Unsubscribe EMAIL: no further issues go to it."""
    address = _known(c, email)
    outcome = c.store.subscribers.unsubscribe(address, now=c.now(), origin="cli", reason=reason)
    echo(f"unsubscribed {address}" if outcome == "unsubscribed" else f"{address} had already left")


@subscribers.command("resubscribe", epilog="Example:\n\n  digest subscribers resubscribe ann@example.org")
@click.argument("email")
@click.option("--reason", help="Why, for the history (e.g. 'unsubscribed by mistake').")
@pass_ctx
def subscribers_resubscribe(c: Context, email: str, reason: str | None) -> None:
    """Bring EMAIL back as active, after an unsubscribe, a bounce or a removal. Only on the person's request."""
    address = _address(email)
    outcome = c.store.subscribers.resubscribe(address, now=c.now(), origin="cli", reason=reason)
    if outcome == "unknown":
        raise DigestError(f"{address} is not on the list; add it with `digest subscribers add {address}`")
    echo(f"resubscribed {address}" if outcome == "resubscribed" else f"{address} is already active")


@subscribers.command("remove", epilog="Example:\n\n  digest subscribers remove ann@example.org")
@click.argument("email")
@pass_ctx
def subscribers_remove(c: Context, email: str) -> None:
    """Erase EMAIL's data (name, history, address in past deliveries). Only a hash of the address is
    kept, so importing an old CSV cannot bring them back."""
    address = _known(c, email)
    c.store.subscribers.remove(address, now=c.now())
    echo(f"removed {address}; a hash of the address keeps it from being imported again")


@subscribers.command("show", epilog="Example:\n\n  digest subscribers show ann@example.org")
@click.argument("email")
@pass_ctx
def subscribers_show(c: Context, email: str) -> None:
    """Show EMAIL's status and the history of its status changes."""
    found = c.store.subscribers.find(email)
    if found is None:
        removed = c.store.subscribers.is_removed(email)
        raise DigestError(f"{email} " + ("was removed from the list" if removed else "is not on the list"))
    echo(f"{found.email}\t{found.status}\t{found.name or ''}")
    for e in c.store.subscribers.history(found.email):
        when = e.at.strftime("%Y-%m-%d %H:%M UTC")
        echo(f"  {when}\t{e.status}\t{e.origin}" + (f"\t{e.reason}" if e.reason else ""))


@subscribers.command("import", epilog="Example:\n\n  digest subscribers import config/subscribers.csv")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def subscribers_import(c: Context, csv_file: Path) -> None:
    """Add the addresses in FILE.csv (columns: email, name). Existing subscribers keep their status."""
    from digest.subscribers import read_subscriber_csv

    result = read_subscriber_csv(csv_file)
    for p in result.problems:
        warn(p)
    report = c.store.subscribers.add(result.rows, now=c.now(), origin="import", reason=f"imported from {csv_file}")
    for email, why in report.kept_out:
        warn(f"{csv_file}: {email}: {why}")
    echo(
        f"{len(report.added)} added, {len(report.present)} already present, "
        f"{len(report.kept_out)} kept out (left or removed), {len(result.problems)} rows with problems"
    )


@subscribers.command("list", epilog="Example:\n\n  digest subscribers list --status active")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@json_option
@pass_ctx
def subscribers_list(c: Context, status: str | None, as_json: bool) -> None:
    """List subscribers: address, status, name."""
    rows = c.store.subscribers.all(status)
    if as_json:
        print_json([{"email": r.email, "status": r.status, "name": r.name} for r in rows])
        return
    for r in rows:
        echo(f"{r.email}\t{r.status}\t{r.name or ''}")
    if not rows:
        echo("no subscribers" + (f" with status {status}" if status else ""))


@subscribers.command("export", epilog="Example:\n\n  digest subscribers export subscribers.csv --status active")
@click.argument("out", metavar="[FILE.csv]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--status", type=click.Choice(STATUSES), help="Only this status.")
@pass_ctx
def subscribers_export(c: Context, out: Path | None, status: str | None) -> None:
    """Write subscribers as CSV (email, name, status) to FILE.csv, or to standard output."""
    import csv

    try:
        handle = out.open("w", encoding="utf-8", newline="") if out else None
        try:
            writer = csv.writer(handle or sys.stdout, lineterminator="\n")
            writer.writerow(["email", "name", "status"])
            n = 0
            for r in c.store.subscribers.stream(status):
                writer.writerow([spreadsheet_safe(r.email), spreadsheet_safe(r.name or ""), r.status])
                n += 1
        finally:
            if handle:
                handle.close()
    except OSError as exc:
        where = out or "standard output"
        raise FileError.from_os(
            exc, f"cannot write {where}", "give a path in a folder that exists and you can write to"
        ) from None
    if out:
        echo(f"wrote {n} subscribers to {out}")
