"""The issue lease: one process sends an issue at a time; a holder whose heartbeat expired is taken over."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from statedb import state_url

from digest.delivery.ledger import HOST
from digest.delivery.sender import SendReport
from digest.leases import LEASE_TTL, exclusively, issue_lease, lease_name
from digest.slots import Slot
from digest.store import Store

NOW = datetime(2025, 8, 11, 8, 0, tzinfo=timezone.utc)
SLOT = Slot("2025-W33", NOW)


def _store(tmp_path: Path) -> Store:
    return Store(state_url(tmp_path))


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


def test_a_live_holder_in_another_pid_namespace_keeps_its_lease_until_its_heartbeat_expires(
    tmp_path: Path,
) -> None:
    """Two containers on one host share the hostname, not the PID namespace: a holder whose PID does
    not exist here may well be alive. Only its heartbeat says whether it is."""
    store = _store(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    other_container = f"{HOST}:{gone.stdout.strip()}:alive"  # same host, a PID that does not exist here
    assert store.leases.acquire(lease_name(SLOT.key), other_container, now=NOW, ttl=LEASE_TTL)
    with issue_lease(store, SLOT.key, clock=lambda: NOW) as lease:
        assert lease is None
    # It renews (its heartbeat) and keeps the lease past the first expiry.
    assert store.leases.renew(lease_name(SLOT.key), other_container, now=NOW + LEASE_TTL / 2, ttl=LEASE_TTL)
    at_first_expiry = NOW + LEASE_TTL + timedelta(seconds=1)
    with issue_lease(store, SLOT.key, clock=lambda: at_first_expiry) as lease:
        assert lease is None
    # It stopped renewing: one heartbeat after its last renewal, another process takes over.
    after_heartbeat = NOW + LEASE_TTL / 2 + LEASE_TTL + timedelta(seconds=1)
    with issue_lease(store, SLOT.key, clock=lambda: after_heartbeat) as lease:
        assert lease is not None
        assert store.leases.holder(lease_name(SLOT.key)).owner == lease.owner


def test_the_heartbeat_is_configurable_and_renewed_as_messages_go_out(tmp_path: Path) -> None:
    store = _store(tmp_path)
    now = [NOW]
    beat = timedelta(seconds=30)
    with issue_lease(store, SLOT.key, clock=lambda: now[0], ttl=beat) as lease:
        assert lease is not None
        assert store.leases.holder(lease_name(SLOT.key)).expires_at == NOW + beat
        now[0] = NOW + timedelta(seconds=5)
        lease.beat()  # a third of the heartbeat has not passed: no write
        assert store.leases.holder(lease_name(SLOT.key)).expires_at == NOW + beat
        now[0] = NOW + timedelta(seconds=20)
        lease.beat()
        assert store.leases.holder(lease_name(SLOT.key)).expires_at == now[0] + beat
        with issue_lease(store, SLOT.key, clock=lambda: NOW + timedelta(seconds=45), ttl=beat) as second:
            assert second is None  # past the first heartbeat, but it was renewed
        with issue_lease(store, SLOT.key, clock=lambda: NOW + timedelta(seconds=51), ttl=beat) as second:
            assert second is not None


def test_a_held_issue_is_not_worked_on(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.issues.hold(SLOT.key, now=NOW)
    report = exclusively(store, SLOT, lambda: NOW, _sent)
    assert report.outcome == "held"
    assert report.message.endswith("digest hold --release 2025-W33, then digest run --as-of 2025-08-11T08:00+00:00")
