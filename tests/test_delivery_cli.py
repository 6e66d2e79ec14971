"""The operator's commands: digest status, send --retry-failed, subscribers export, progress."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from deliverykit import addresses, newsletter, smtp_toml
from smtpserver import RecordingHandler, SMTPServer


def digest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True, text=True, env=env, timeout=300)


def test_status_and_retry_failed(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(12)
    handler = RecordingHandler(refuse={subs[4]: "552 5.2.2 Mailbox full", subs[9]: "550 5.1.1 Unknown user"})
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=subs, now=fixed_now
        )
        c = str(cfg)
        sent = digest("--config", c, "send", "--as-of", "2025-08-11T09:00")
        assert sent.returncode == 0, sent.stderr
        assert "sent: 10 delivered, 2 failed" in sent.stdout
        assert f"failed: {subs[4]}: 552 5.2.2 Mailbox full" in sent.stdout
        # Not a terminal: plain progress lines on stderr.
        assert "issue 2025-W33: 10/12 sent, 2 failed" in sent.stderr and "messages/s" in sent.stderr

        listing = digest("--config", c, "status")
        header, rule, row = listing.stdout.splitlines()
        assert re.split(r"\s{2,}", header) == [
            "issue",
            "subject",
            "sent at",
            "duration",
            "delivered",
            "failed",
            "pending",
        ]
        assert set(rule) == {"-", " "}
        assert row.startswith("2025-W33  ") and row.split()[-3:] == ["10", "2", "0"]
        sent_row = json.loads(digest("--config", c, "status", "--json").stdout)[0]
        assert sent_row["issue"] == "2025-W33" and sent_row["subject"].startswith(
            re.split(r"\s{2,}", row)[1].rstrip("…")
        )
        assert (sent_row["delivered"], sent_row["failed"], sent_row["pending"], sent_row["status"]) == (
            10,
            2,
            0,
            "sent",
        )
        assert sent_row["sent_at"] and sent_row["finished_at"] and sent_row["duration_seconds"] >= 0
        one = digest("--config", c, "status", "2025-W33")
        assert "issue 2025-W33: sent; 12 deliveries" in one.stdout
        assert "  sent: 10" in one.stdout and "  failed: 2" in one.stdout
        assert f"  failed: {subs[9]}: 550 5.1.1 Unknown user" in one.stdout
        missing = digest("--config", c, "status", "1999-W01")
        assert missing.returncode == 2 and "no issue '1999-W01'" in missing.stderr

        handler.refuse.clear()
        # The unknown user was marked bounced, so only the full mailbox is tried again.
        again = digest("--config", c, "send", "--retry-failed", "--as-of", "2025-08-11T09:00")
        assert again.returncode == 0, again.stderr
        assert "2 failed deliveries will be tried again" in again.stdout
        assert "resumed and finished: 11 delivered, 0 failed" in again.stdout
    assert handler.per_recipient()[subs[4]] == 1 and subs[9] not in handler.per_recipient()
    assert store.deliveries.counts(slot.key) == {"sent": 11, "skipped": 1}


def test_subscribers_export(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(5)
    _, store, _, cfg = newsletter(write_config, tmp_path, backend="outbox", subscribers=subs, now=fixed_now)
    store.subscribers.set_status(subs[1], "unsubscribed")
    out = digest("--config", str(cfg), "subscribers", "export")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["email"], r["status"]) for r in rows] == [
        (s, "unsubscribed" if s == subs[1] else "active") for s in subs
    ]
    path = tmp_path / "active.csv"
    done = digest("--config", str(cfg), "subscribers", "export", str(path), "--status", "active")
    assert "wrote 4 subscribers" in done.stdout
    # What export writes, import reads back.
    imported = digest("--config", str(cfg), "subscribers", "import", str(path))
    assert "0 added, 4 already present, 0 kept out (left or removed), 0 rows with problems" in imported.stdout
