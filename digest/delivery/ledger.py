"""Exactly-once bookkeeping: one row per issue × recipient, and the protocol that moves it.

When an issue's send starts, its active subscribers are frozen into deliveries (``pending``).
A sender then works in batches:

1. **claim** — in one transaction, up to ``batch_size`` due deliveries (``pending``, or ``retry``
   whose next attempt has come) become ``inflight``, stamped with the sender's identity
   (host:pid:nonce), a claim id and a lease. The UPDATE re-checks each row's status, so two
   senders resuming the same issue at once never hold the same delivery.
2. **send** the batch through the backend.
3. **record** — in one transaction, each delivery of the claim becomes ``sent``, ``failed``
   (permanent, with the server's words) or ``retry`` (transient, with its next attempt time;
   after ``max_attempts`` it becomes ``failed`` too).

State is committed twice per batch, not once per message, which keeps the database out of the
way of the network. If a batch cannot go at all (bad credentials), its claim is released back to
``pending`` with nothing marked sent.

**The in-flight bound.** A sender that dies (SIGKILL, power loss) between 1 and 3 leaves its
claimed batch ``inflight``. The next run takes it over — at once when the dead sender was on this
host (its process is gone), otherwise when its lease ends — sends it again and counts each such
delivery in ``interrupted``. Only those messages can reach a recipient twice, so a crash repeats
**at most one batch per sender that crashed: ``delivery.batch_size`` messages** (by default 100
over SMTP, the API's request limit for an e-mail service). Every other delivery is either
recorded as sent, and never sent again, or was never handed to the server. ``digest status``
reports the interrupted count, the upper bound on duplicates for that issue.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.config import RetrySettings
from digest.models import DeliveryResult
from digest.store import Store

HOST = socket.gethostname()


def sender_identity() -> str:
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def sender_is_gone(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Claim:
    id: str
    rows: list[tuple[str, str | None, int]]  # email, name, attempts so far


@dataclass
class Recorded:
    sent: int = 0
    failed: int = 0
    retry: int = 0
    throttled: bool = False


class Ledger:
    def __init__(
        self,
        store: Store,
        key: str,
        *,
        retry: RetrySettings,
        lease_seconds: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.key = key
        self.retry = retry
        self.lease = timedelta(seconds=lease_seconds)
        self.rng = rng
        self.owner = sender_identity()

    def take_over_stopped(self, now: datetime) -> int:
        """Give back as pending the in-flight deliveries of senders that stopped (gone from this
        host, or past their lease). Returns how many; each may be one duplicate."""
        n = 0
        for owner, lease_until, _count in self.store.deliveries.inflight_owners(self.key):
            if owner == self.owner:
                continue
            if sender_is_gone(owner) or (lease_until is not None and lease_until <= now):
                n += self.store.deliveries.reclaim_interrupted(self.key, owner, now=now)
        return n

    def inflight_elsewhere(self) -> int:
        return sum(n for owner, _, n in self.store.deliveries.inflight_owners(self.key) if owner != self.owner)

    def claim(self, limit: int, now: datetime) -> Claim:
        cid = uuid.uuid4().hex
        rows = self.store.deliveries.claim(
            self.key, owner=self.owner, claim=cid, limit=limit, now=now, lease_until=now + self.lease
        )
        return Claim(cid, rows)

    def release(self, claim: Claim, now: datetime) -> None:
        self.store.deliveries.release_claim(self.key, claim.id, now=now)

    def backoff(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        """Seconds before attempt ``attempt + 1``: exponential with jitter (half fixed, half
        random; ``jitter`` in [0, 1)), never sooner than the service's Retry-After."""
        r = self.retry
        delay = min(r.max_delay, r.base_delay * 2 ** max(attempt - 1, 0))
        delay = delay / 2 + jitter * delay / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, r.max_delay))
        return float(delay)

    def record(self, claim: Claim, results: Sequence[DeliveryResult], now: datetime) -> Recorded:
        attempts = {email: n for email, _name, n in claim.rows}
        outcomes: list[tuple[DeliveryResult, datetime | None]] = []
        bounced: list[str] = []
        tally = Recorded()
        # One draw per batch: the retries of a batch stay together (one request for an API).
        jitter = self.rng()
        for r in results:
            extra = r.extra or {}
            if extra.get("throttle"):
                tally.throttled = True
            if r.status == "retry":
                tried = attempts.get(r.recipient, 0) + 1
                if tried >= self.retry.max_attempts:
                    r = DeliveryResult(
                        r.recipient, "failed", r.message_id, f"gave up after {tried} attempts; last: {r.detail}"
                    )
                else:
                    after = extra.get("retry_after")
                    delay = self.backoff(tried, float(after) if after is not None else None, jitter)
                    outcomes.append((r, now + timedelta(seconds=delay)))
                    tally.retry += 1
                    continue
            if r.status == "failed":
                tally.failed += 1
                if extra.get("bounce"):
                    bounced.append(r.recipient)
            else:
                tally.sent += 1
            outcomes.append((r, None))
        self.store.deliveries.record(self.key, claim.id, outcomes, now=now, bounced=bounced)
        return tally
