"""Parallel senders on one issue: several `digest send` processes at once (as on several machines
sharing one database), and `digest send --workers N`. Every recipient gets exactly one message,
and every process ends with the issue done. With $DIGEST_TEST_DATABASE_URL set (make test), the
same tests run on PostgreSQL, where claims use FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deliverykit import addresses, newsletter, smtp_toml
from smtpserver import RecordingHandler, SMTPServer

RECIPIENTS = 400
AS_OF = "2025-08-11T09:00"


def _config(write_config, tmp_path: Path, port: int, fixed_now):  # type: ignore[no-untyped-def]
    subs = addresses(RECIPIENTS)
    _, store, slot, cfg = newsletter(
        write_config, tmp_path, extra=smtp_toml(port, connections=2), subscribers=subs, now=fixed_now
    )
    # Small batches, so the senders' claims interleave all through the issue.
    cfg.write_text(cfg.read_text().replace('backend = "smtp"', 'backend = "smtp"\nbatch_size = 20'))
    return subs, store, slot, cfg


def _send(cfg: Path, *more: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(cfg), "send", "--as-of", AS_OF, *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_sends_deliver_each_recipient_exactly_once(
    processes: int, write_config, tmp_path: Path, fixed_now
) -> None:
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        subs, store, slot, cfg = _config(write_config, tmp_path, server.port, fixed_now)
        procs = [_send(cfg) for _ in range(processes)]
        runs = [(p.wait(timeout=240), *p.communicate()) for p in procs]
        per = handler.per_recipient()
    assert [rc for rc, _, _ in runs] == [0] * processes, runs
    assert per == dict.fromkeys(subs, 1)
    assert store.deliveries.counts(slot.key) == {"sent": RECIPIENTS}
    assert store.issues.get(slot.key).status == "sent"
    assert all(f"{RECIPIENTS} delivered, 0 failed" in out for _, out, _ in runs), runs


def test_workers_share_one_issue_exactly_once(write_config, tmp_path: Path, fixed_now) -> None:
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        subs, store, slot, cfg = _config(write_config, tmp_path, server.port, fixed_now)
        proc = _send(cfg, "--workers", "4")
        out, err = proc.communicate(timeout=240)
        per = handler.per_recipient()
    assert proc.returncode == 0, err
    assert f"{RECIPIENTS} delivered, 0 failed" in out
    assert per == dict.fromkeys(subs, 1)
    assert store.deliveries.counts(slot.key) == {"sent": RECIPIENTS}
