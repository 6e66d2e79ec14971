"""Delivery backends. See :mod:`digest.delivery.base` for the contract and
:mod:`digest.delivery.registry` for the backends by name."""

from digest.delivery.base import Backend, OutgoingMessage
from digest.delivery.registry import BACKENDS, backend_from_settings

__all__ = ["BACKENDS", "Backend", "OutgoingMessage", "backend_from_settings"]
