"""Crash safety: the sending process is killed (SIGKILL) at random moments of a 2,000-recipient
send over two SMTP connections and resumed each time. Every recipient ends with a message, and
the duplicates stay within the documented in-flight bound (digest.delivery.ledger: each answered
message is durable before its connection sends the next, so a crash repeats at most one message
per connection), which `digest status` reports."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from deliverykit import addresses, newsletter, smtp_toml
from smtpserver import FaultyHandler, SMTPServer

from digest.store import Store
from digest.store.schema import deliveries, leases

CONNECTIONS = 2
KILLS = 4
LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)


def let_heartbeats_expire(store: Store) -> None:
    """What waiting one heartbeat (delivery.lease_seconds) does to a killed sender's leases, without
    the wait: they end in the past, so the next run may take over."""
    with store.engine.begin() as conn:
        conn.execute(leases.update().values(expires_at=LONG_AGO))
        conn.execute(deliveries.update().where(deliveries.c.status == "inflight").values(lease_until=LONG_AGO))


# Pipelined, each content also carries the next message's envelope: a kill then also leaves
# envelopes whose messages never went out, which must be neither lost nor counted.
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_sigkill_at_random_moments_then_resume(write_config, tmp_path: Path, fixed_now, pipelining: bool) -> None:
    subs = addresses(2000)
    seed = random.randrange(1 << 30)
    # Messages kept by the server at which the sender is killed: each before the server answers
    # that message (it arrived: resending it is a duplicate), at random places.
    kill_at = sorted(random.Random(seed).sample(range(1, 1990), KILLS))
    victim: dict[str, int] = {}
    pending_kills = list(kill_at)

    def on_message(n: int) -> None:
        if pending_kills and n >= pending_kills[0]:
            pending_kills.pop(0)
            os.kill(victim["pid"], signal.SIGKILL)

    handler = FaultyHandler(on_message=on_message, pipelining=pipelining)
    with SMTPServer(handler) as server:
        toml = smtp_toml(server.port, connections=CONNECTIONS)
        _, store, slot, cfg = newsletter(write_config, tmp_path, extra=toml, subscribers=subs, now=fixed_now)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        runs = []
        for _ in range(KILLS + 1):
            let_heartbeats_expire(store)
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
    assert codes == [-signal.SIGKILL] * KILLS + [0], (seed, kill_at, runs[-1][2])
    assert "resumed and finished: 2000 delivered, 0 failed" in runs[-1][1]
    assert counts == {"sent": 2000}
    # Every recipient has its message: none lost.
    assert sorted(per) == subs
    duplicates = sum(per.values()) - len(subs)
    print(f"seed {seed}, kills at {kill_at}, duplicates {duplicates}, interrupted {interrupted}")
    # Each kill struck while a message was arriving, so each left at least that one duplicate;
    # none can exceed what was in flight: one message per connection.
    assert KILLS <= duplicates <= KILLS * CONNECTIONS, (seed, kill_at)
    # What `digest status` reports is a true bound, and a tight one: only messages that were on
    # their way when a sender died count (at most one per connection), not its whole claim.
    assert duplicates <= interrupted <= KILLS * CONNECTIONS, (seed, kill_at)
    assert re.search(rf"interrupted: {interrupted} deliveries", status.stdout), status.stdout
