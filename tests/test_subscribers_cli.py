"""The list, person by person: digest subscribers add / unsubscribe / resubscribe / remove / show,
one subscriber per address whatever its letter case, and an export spreadsheets read as text."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

from deliverykit import newsletter


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True, text=True, env=env, timeout=300)


def test_one_person_at_a_time(write_config, tmp_path: Path, fixed_now) -> None:
    _, store, _, cfg = newsletter(
        write_config, tmp_path, backend="outbox", subscribers=["b@example.org"], now=fixed_now
    )
    c = str(cfg)

    added = digest("--config", c, "subscribers", "add", "Ann@Example.ORG", "--name", "Ann Lee")
    assert added.returncode == 0 and "added Ann@example.org" in added.stdout, added.stderr
    again = digest("--config", c, "subscribers", "add", "ann@example.org")
    assert "Ann@example.org is already on the list" in again.stdout
    bad = digest("--config", c, "subscribers", "add", "not-an-address")
    assert bad.returncode != 0 and "'not-an-address': not a valid e-mail address" in bad.stderr
    assert "Traceback" not in bad.stderr

    left = digest("--config", c, "subscribers", "unsubscribe", "B@example.org", "--reason", "asked by e-mail")
    assert "unsubscribed b@example.org" in left.stdout, left.stderr
    # An import in another letter case neither adds a second row nor brings them back, and says so.
    (tmp_path / "old.csv").write_text("email,name\nB@EXAMPLE.org,Bob\nnew@example.org,\n")
    imported = digest("--config", c, "subscribers", "import", str(tmp_path / "old.csv"))
    assert "1 added, 0 already present, 1 kept out" in imported.stdout
    assert "old.csv: B@example.org: unsubscribed since" in imported.stderr
    assert [(r.email, r.status) for r in store.subscribers.all()] == [
        ("Ann@example.org", "active"),
        ("b@example.org", "unsubscribed"),
        ("new@example.org", "active"),
    ]
    refused = digest("--config", c, "subscribers", "add", "b@example.org")
    assert refused.returncode != 0 and "digest subscribers resubscribe b@example.org" in refused.stderr

    back = digest("--config", c, "subscribers", "resubscribe", "b@example.org", "--reason", "by mistake")
    assert "resubscribed b@example.org" in back.stdout
    shown = digest("--config", c, "subscribers", "show", "B@example.org")
    lines = shown.stdout.splitlines()
    assert lines[0] == "b@example.org\tactive\t"
    assert [line.split("\t")[1:] for line in lines[1:]] == [
        ["active", "import", f"imported from {tmp_path / 'subscribers.csv'}"],
        ["unsubscribed", "cli", "asked by e-mail"],
        ["active", "cli", "by mistake"],
    ]

    removed = digest("--config", c, "subscribers", "remove", "b@example.org")
    assert "removed b@example.org" in removed.stdout
    gone = digest("--config", c, "subscribers", "show", "b@example.org")
    assert gone.returncode != 0 and "b@example.org was removed from the list" in gone.stderr
    imported = digest("--config", c, "subscribers", "import", str(tmp_path / "old.csv"))
    assert "B@example.org: removed from the list; not added back" in imported.stderr
    assert store.subscribers.find("b@example.org") is None


def test_letter_case_makes_no_second_copy(write_config, tmp_path: Path, fixed_now) -> None:
    _, store, _, cfg = newsletter(
        write_config, tmp_path, backend="outbox", subscribers=["A@Example.ORG", "c@example.org"], now=fixed_now
    )
    (tmp_path / "more.csv").write_text("email\na@example.org\nC@EXAMPLE.ORG\nd@example.org\n")
    digest("--config", str(cfg), "subscribers", "import", str(tmp_path / "more.csv"))
    sent = digest("--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
    assert sent.returncode == 0, sent.stderr
    outbox = list((tmp_path / "outbox").rglob("*.eml"))
    assert "sent: 3 delivered, 0 failed" in sent.stdout
    assert len(outbox) == 3


def test_export_keeps_formulas_as_text(write_config, tmp_path: Path, fixed_now) -> None:
    _, store, _, cfg = newsletter(write_config, tmp_path, backend="outbox", subscribers=[], now=fixed_now)
    names = ["=cmd|' /C calc'!A0", "+1 555", "-2+3", "@SUM(A1)", "Ann"]
    store.subscribers.add([(f"r{i}@example.org", n) for i, n in enumerate(names)], now=fixed_now)
    out = digest("--config", str(cfg), "subscribers", "export")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["name"] for r in rows] == ["'=cmd|' /C calc'!A0", "'+1 555", "'-2+3", "'@SUM(A1)", "Ann"]
