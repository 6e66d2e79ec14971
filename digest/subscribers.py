"""Subscriber lists: reading a CSV of addresses, validated, with a report of the rows that were not."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import DigestError, FileError


@dataclass(frozen=True)
class CSVImport:
    rows: list[tuple[str, str | None]]
    problems: list[str]


#: How firmly a status keeps someone off the list: when two records of one person meet (a merge,
#: an import), the heavier status wins, so nobody who left is mailed again by accident.
STATUS_WEIGHT = {"active": 0, "pending": 1, "unsubscribed": 2, "bounced": 3, "complained": 4}


def most_restrictive(statuses: Iterable[str]) -> str:
    """The status among ``statuses`` that keeps the person furthest from the list."""
    return max(statuses, key=lambda s: STATUS_WEIGHT.get(s, len(STATUS_WEIGHT)))


def address_key(value: str) -> str:
    """The key an address is matched by: local part and domain lower-cased, the domain in ASCII
    (IDNA punycode), so ``B@Bücher.Example`` and ``b@xn--bcher-kva.example`` are one subscriber.
    Total: an address email-validator refuses is keyed by its trimmed, lower-cased text."""
    try:
        valid = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        return value.strip().lower()
    return f"{valid.local_part}@{valid.ascii_domain}".lower()


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
        key = address_key(email)
        if key in seen:
            problems.append(f"{path}:{n}: {email} appears more than once (letter case aside); kept the first")
            continue
        seen.add(key)
        rows.append((email, name))
    return CSVImport(rows, problems)
