"""Subscriber lists: reading a CSV of addresses, validated, with a report of the rows that were not."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import DigestError, FileError


@dataclass(frozen=True)
class CSVImport:
    rows: list[tuple[str, str | None]]
    problems: list[str]


def normalise_address(value: str) -> str:
    """A valid address in normal form (domain lower-cased); raises ValueError saying what is wrong."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def read_subscriber_csv(path: Path) -> CSVImport:
    """Rows of (email, name) from a CSV with an ``email`` column (``name`` optional). A file without
    a header row is read as email[,name]."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DigestError(f"{path}: subscriber file not found; check [subscribers] csv or the path given") from None
    except UnicodeDecodeError:
        raise DigestError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    except OSError as exc:
        raise FileError.from_os(exc, f"cannot read {path}", "check [subscribers] csv or the path given") from None
    lines = text.splitlines()
    reader = csv.reader(lines)
    first = next(reader, None)
    if first is None:
        return CSVImport([], [])
    header = [h.strip().lower() for h in first]
    if "email" in header:
        ei, ni = header.index("email"), (header.index("name") if "name" in header else None)
        start = 2
    else:
        ei, ni = 0, 1
        reader = csv.reader(lines)
        start = 1
    rows: list[tuple[str, str | None]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, rec in enumerate(reader, start=start):
        if not rec or not any(f.strip() for f in rec):
            continue
        raw = rec[ei].strip() if ei < len(rec) else ""
        name = rec[ni].strip() if ni is not None and ni < len(rec) and rec[ni].strip() else None
        try:
            email = normalise_address(raw)
        except ValueError as exc:
            problems.append(f"{path}:{n}: {raw!r}: {exc}")
            continue
        if email.lower() in seen:
            problems.append(f"{path}:{n}: {email} appears more than once; kept the first")
            continue
        seen.add(email.lower())
        rows.append((email, name))
    return CSVImport(rows, problems)
