"""The issue lease: one process sends an issue at a time; a dead holder is taken over."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from digest.delivery.ledger import HOST
from digest.delivery.sender import SendReport
from digest.leases import LEASE_TTL, exclusively, issue_lease, lease_name
from digest.slots import Slot
from digest.store import Store

NOW = datetime(2025, 8, 11, 8, 0, tzinfo=timezone.utc)
SLOT = Slot("2025-W33", NOW)


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'state.db'}")


def _sent(lease: object) -> SendReport:
    return SendReport(SLOT.key, "sent", "sent")


def test_a_held_lease_keeps_a_second_process_out_until_released(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with issue_lease(store, SLOT.key, clock=lambda: NOW) as lease:
        assert lease is not None and lease.renew()
        with issue_lease(store, SLOT.key, clock=lambda: NOW) as second:
            assert second is None
        report = exclusively(store, SLOT, lambda: NOW, _sent)
        assert report.outcome == "claimed-elsewhere"
        assert report.message.startswith(f"issue 2025-W33 is being sent by another process ({lease.owner}, since ")
    assert store.leases.holder(lease_name(SLOT.key)) is None
    assert exclusively(store, SLOT, lambda: NOW, _sent).outcome == "sent"


def test_an_expired_lease_is_taken_over_and_its_old_holder_stops(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with issue_lease(store, SLOT.key, clock=lambda: NOW) as first:
        assert first is not None
        later = NOW + LEASE_TTL + timedelta(seconds=1)
        with issue_lease(store, SLOT.key, clock=lambda: later) as second:
            assert second is not None
            stop = first.stopper(None)
            assert stop() and first.lost  # the old holder finds out between batches
            assert not second.stopper(lambda: False)()
        # The lost lease is not released by its old holder: the new one released its own.
    assert store.leases.holder(lease_name(SLOT.key)) is None


def test_a_holder_that_died_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_owner = f"{HOST}:{gone.stdout.strip()}:dead"
    assert store.leases.acquire(lease_name(SLOT.key), dead_owner, now=NOW, ttl=LEASE_TTL)
    with issue_lease(store, SLOT.key, clock=lambda: NOW) as lease:
        assert lease is not None
        assert store.leases.holder(lease_name(SLOT.key)).owner == lease.owner
    # One on another host may still be alive: its lease is waited out.
    assert store.leases.acquire(lease_name(SLOT.key), "elsewhere:1:x", now=NOW, ttl=LEASE_TTL)
    with issue_lease(store, SLOT.key, clock=lambda: NOW) as lease:
        assert lease is None


def test_a_held_issue_is_not_worked_on(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.issues.hold(SLOT.key, now=NOW)
    report = exclusively(store, SLOT, lambda: NOW, _sent)
    assert report.outcome == "held"
    assert report.message.endswith("digest hold --release 2025-W33, then digest run --as-of 2025-08-11T08:00+00:00")
