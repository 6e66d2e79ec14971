"""Crash safety: the sending process is killed (SIGKILL) at several points of a 2,000-recipient
send and resumed each time. Every recipient ends with a message; the duplicates are counted and
stay within the documented in-flight bound (digest.delivery.ledger: one batch per crash)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from deliverykit import addresses, newsletter, smtp_toml
from smtpserver import FaultyHandler, SMTPServer

BATCH = 100
# Messages kept by the server at which the sender is killed: before it hears the 250 for that
# message (the message arrived: resending it is a duplicate), at different places in batches.
KILL_AT = [1, 250, 777, 1201, 1650]


def test_sigkill_at_several_points_then_resume(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(2000)
    victim: dict[str, int] = {}
    pending_kills = list(KILL_AT)

    def on_message(n: int) -> None:
        if pending_kills and n >= pending_kills[0]:
            pending_kills.pop(0)
            os.kill(victim["pid"], signal.SIGKILL)

    handler = FaultyHandler(on_message=on_message)
    with SMTPServer(handler) as server:
        toml = smtp_toml(server.port, connections=2)
        _, store, slot, cfg = newsletter(write_config, tmp_path, extra=toml, subscribers=subs, now=fixed_now)
        text = cfg.read_text().replace('backend = "smtp"', f'backend = "smtp"\nbatch_size = {BATCH}')
        cfg.write_text(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        runs = []
        for _ in range(len(KILL_AT) + 1):
            proc = subprocess.Popen(
                [sys.executable, "-m", "digest", "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            victim["pid"] = proc.pid
            out, err = proc.communicate(timeout=240)
            runs.append((proc.returncode, out, err))
        per = handler.per_recipient()
        interrupted = store.deliveries.interrupted_total(slot.key)
        counts = store.deliveries.counts(slot.key)
        status = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(cfg), "status", slot.key],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    codes = [rc for rc, _, _ in runs]
    assert codes == [-signal.SIGKILL] * len(KILL_AT) + [0], runs[-1][2]
    assert "resumed and finished: 2000 delivered, 0 failed" in runs[-1][1]
    assert counts == {"sent": 2000}
    # Every recipient has its message.
    assert sorted(per) == subs
    duplicates = sum(per.values()) - len(subs)
    # Each kill struck while a message was arriving, so each left at least that one duplicate;
    # none can exceed what was in flight, which is at most one batch per kill.
    print(f"kills {len(KILL_AT)}, duplicates {duplicates}, interrupted {interrupted}, bound {len(KILL_AT) * BATCH}")
    assert len(KILL_AT) <= duplicates <= interrupted <= len(KILL_AT) * BATCH
    assert re.search(rf"interrupted: {interrupted} deliveries", status.stdout), status.stdout
