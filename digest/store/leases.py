"""Leases on named pieces of work, and the meta table (schema version, signing secret)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from digest.store.records import LeaseRecord, record_from_row
from digest.store.repository import Repository
from digest.store.schema import leases, meta


class LeasesRepository(Repository):
    """Whoever holds an unexpired lease (``issue:2025-W33``) is the only process doing that work.
    Each step is one atomic statement, so two processes can never both hold a lease. A lease is
    a heartbeat: its holder renews it; one that stops renewing is free once ``expires_at`` passed."""

    def acquire(self, name: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take the lease ``name`` for ``owner`` until ``now + ttl``. True when taken: it was
        free, expired, or already this owner's."""
        until = now + ttl
        try:
            with self.engine.begin() as conn:
                conn.execute(leases.insert().values(name=name, owner=owner, acquired_at=now, expires_at=until))
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, sa.or_(leases.c.expires_at < now, leases.c.owner == owner))
                .values(owner=owner, acquired_at=now, expires_at=until)
            ).rowcount
        return bool(taken)

    def renew(self, name: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Extend a lease this owner still holds; False when it was lost (expired and taken over)."""
        with self.engine.begin() as conn:
            kept = conn.execute(
                leases.update().where(leases.c.name == name, leases.c.owner == owner).values(expires_at=now + ttl)
            ).rowcount
        return bool(kept)

    def release(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.owner == owner))

    def holder(self, name: str) -> LeaseRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else record_from_row(LeaseRecord, row)


class MetaRepository(Repository):
    """Single values the database keeps about itself."""

    def get(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()

    def secret(self) -> str:
        """A signing secret kept in the state database, made on first use (for when no
        environment variable supplies one). Every process sharing the database shares it."""
        existing = self.get("secret")
        if existing:
            return existing
        with self.engine.begin() as conn:
            try:
                conn.execute(meta.insert().values(key="secret", value=secrets.token_urlsafe(32)))
            except IntegrityError:
                pass  # another process made it first; theirs is the one
        value = self.get("secret")
        assert value
        return value

    def claim_owner(self, config: str) -> str:
        """Record ``config`` as the config file this database belongs to, unless one is recorded
        already; returns the owner (``config`` itself, or the earlier one)."""
        existing = self.get("owner_config")
        if existing:
            return existing
        with self.engine.begin() as conn:
            try:
                conn.execute(meta.insert().values(key="owner_config", value=config))
            except IntegrityError:
                pass  # another process claimed it first; theirs is the owner
        return self.get("owner_config") or config

    def set_owner(self, config: str) -> None:
        """Hand the database to ``config`` (its recorded owner was moved or deleted)."""
        with self.engine.begin() as conn:
            conn.execute(meta.update().where(meta.c.key == "owner_config").values(value=config))
