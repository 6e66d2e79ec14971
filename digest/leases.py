"""Who may send an issue now: one process at a time, through a lease kept in the store.

A process takes the issue's lease before it ingests, builds and sends, and renews it between
batches; a second process (a scheduler, a manual run) finds it taken and sends nothing. A holder
that died leaves its lease behind: on this host it is recognised as gone at once, on another it
expires after :data:`LEASE_TTL`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.delivery.ledger import sender_identity, sender_is_gone
from digest.delivery.sender import SendReport
from digest.slots import Slot
from digest.store import Store

log = logging.getLogger(__name__)

# How long a lease lasts without renewal. It is renewed between batches, so only a process that
# died mid-send leaves one behind; after this long another process may take over and resume.
LEASE_TTL = timedelta(minutes=10)


def lease_owner() -> str:
    """Who holds a lease: host, process and a random part (two schedulers in one process differ),
    the same form as a delivery sender's, so a holder that died on this host is recognised."""
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
    lost: bool = False

    def renew(self) -> bool:
        if not self.lost and not self.store.leases.renew(self.name, self.owner, now=self.clock(), ttl=LEASE_TTL):
            self.lost = True
            log.warning("%s: the lease was taken over by another process; stopping after this batch", self.name)
        return not self.lost

    def stopper(self, stop: Callable[[], bool] | None) -> Callable[[], bool]:
        """A ``stop`` check for a send that also renews the lease between batches."""
        return lambda: (stop is not None and stop()) or not self.renew()


@contextmanager
def issue_lease(store: Store, key: str, *, clock: Callable[[], datetime]) -> Iterator[IssueLease | None]:
    """Hold the lease on issue ``key`` for the block; yields None when another process holds it."""
    lease = IssueLease(store, lease_name(key), lease_owner(), clock)
    if not store.leases.acquire(lease.name, lease.owner, now=clock(), ttl=LEASE_TTL):
        # A holder that was killed on this host will never renew: take over at once rather than
        # waiting out its lease (one on another host is waited out).
        holder = store.leases.holder(lease.name)
        if (
            holder is None
            or not sender_is_gone(holder.owner)
            or not store.leases.take_over(lease.name, holder.owner, lease.owner, now=clock(), ttl=LEASE_TTL)
        ):
            yield None
            return
    try:
        yield lease
    finally:
        if not lease.lost:
            store.leases.release(lease.name, lease.owner)


def exclusively(
    store: Store, slot: Slot, clock: Callable[[], datetime], work: Callable[[IssueLease], SendReport]
) -> SendReport:
    """Run ``work`` under the slot's issue lease; without it, or while a new issue is held, say
    why nothing was sent instead."""
    with issue_lease(store, slot.key, clock=clock) as lease:
        if lease is None:
            holder = store.leases.holder(lease_name(slot.key))
            who = f" ({holder.owner}, since {holder.acquired_at.isoformat(timespec='seconds')})" if holder else ""
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
