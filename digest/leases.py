"""Who may send an issue now: one process at a time, through a lease kept in the store.

A process takes the issue's lease before it ingests, builds and sends, and renews it (its
heartbeat) between batches and while a batch goes out; a second process (a scheduler, a manual
run) finds it taken and sends nothing. A holder that died stops renewing: its lease expires one
heartbeat (``delivery.lease_seconds``) after its last renewal, and only then may another process
take over. Liveness is judged by the heartbeat alone, never from a process id: two containers on
one host share a hostname but not a PID namespace, so a PID says nothing about another sender.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.delivery.ledger import sender_identity
from digest.delivery.sender import SendReport
from digest.slots import Slot
from digest.store import Store

log = logging.getLogger(__name__)

# How long a lease lasts without renewal, when no ``delivery.lease_seconds`` is given. A live
# holder renews it well within this; only a process that stopped leaves one behind, and after this
# long another process may take over and resume.
LEASE_TTL = timedelta(minutes=10)


def lease_owner() -> str:
    """Who holds a lease: host, process and a random part (two schedulers in one process differ),
    the same form as a delivery sender's; for messages only, never to judge liveness."""
    return sender_identity()


def lease_name(key: str) -> str:
    return f"issue:{key}"


@dataclass
class IssueLease:
    """The lease on one issue, held while a process ingests, builds and sends it."""

    store: Store
    name: str
    owner: str
    clock: Callable[[], datetime]
    ttl: timedelta = LEASE_TTL
    lost: bool = False
    renewed_at: datetime | None = None

    def renew(self) -> bool:
        now = self.clock()
        if not self.lost and not self.store.leases.renew(self.name, self.owner, now=now, ttl=self.ttl):
            self.lost = True
            log.warning("%s: the lease was taken over by another process; stopping after this batch", self.name)
        self.renewed_at = now
        return not self.lost

    def beat(self) -> None:
        """Renew when a third of the heartbeat has passed since the last renewal (called as each
        message goes out, so a long batch does not let the lease lapse)."""
        if self.renewed_at is None or self.clock() - self.renewed_at >= self.ttl / 3:
            self.renew()

    def stopper(self, stop: Callable[[], bool] | None) -> Callable[[], bool]:
        """A ``stop`` check for a send that also renews the lease between batches."""
        return lambda: (stop is not None and stop()) or not self.renew()


@contextmanager
def issue_lease(
    store: Store, key: str, *, clock: Callable[[], datetime], ttl: timedelta = LEASE_TTL
) -> Iterator[IssueLease | None]:
    """Hold the lease on issue ``key`` for the block; yields None when another process holds it
    and its heartbeat has not expired."""
    lease = IssueLease(store, lease_name(key), lease_owner(), clock, ttl)
    now = clock()
    if not store.leases.acquire(lease.name, lease.owner, now=now, ttl=ttl):
        yield None
        return
    lease.renewed_at = now
    try:
        yield lease
    finally:
        if not lease.lost:
            store.leases.release(lease.name, lease.owner)


def exclusively(
    store: Store,
    slot: Slot,
    clock: Callable[[], datetime],
    work: Callable[[IssueLease], SendReport],
    *,
    ttl: timedelta = LEASE_TTL,
) -> SendReport:
    """Run ``work`` under the slot's issue lease; without it, or while a new issue is held, say
    why nothing was sent instead."""
    with issue_lease(store, slot.key, clock=clock, ttl=ttl) as lease:
        if lease is None:
            holder = store.leases.holder(lease_name(slot.key))
            who = (
                f" ({holder.owner}, since {holder.acquired_at.isoformat(timespec='seconds')}, "
                f"heartbeat until {holder.expires_at.isoformat(timespec='seconds')})"
                if holder
                else ""
            )
            return SendReport(
                slot.key,
                "claimed-elsewhere",
                f"issue {slot.key} is being sent by another process{who}; this run sends nothing",
            )
        if store.issues.get(slot.key) is None and store.issues.is_held(slot.key):
            return SendReport(
                slot.key,
                "held",
                f"issue {slot.key} is held (digest hold {slot.key}); not sent. "
                f"When it is ready: digest hold --release {slot.key}, then digest run --as-of {slot.at.isoformat(timespec='minutes')}",
            )
        return work(lease)


# How often a sender waiting for another to open an issue looks again.
OPENING_POLL_SECONDS = 0.2


def wait_while_held(
    store: Store,
    key: str,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    ready: Callable[[], bool],
) -> bool:
    """Wait while another process holds issue ``key``'s lease, until ``ready()`` (it opened the
    issue). False when the lease was released or its heartbeat expired first."""
    while not ready():
        holder = store.leases.holder(lease_name(key))
        if holder is None or holder.expires_at <= clock():
            return ready()
        sleep(OPENING_POLL_SECONDS)
    return True
