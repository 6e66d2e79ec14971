"""Delivery backends. See :mod:`digest.delivery.base` for the contract."""

from digest.delivery.base import Backend, OutgoingMessage, backend_from_settings

__all__ = ["Backend", "OutgoingMessage", "backend_from_settings"]
