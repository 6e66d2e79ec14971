"""The ``subscribers`` commands: import, list and export the subscriber list."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from digest.cli.app import Context, cli, echo, pass_ctx, warn
from digest.cli.output import json_option, print_json


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
