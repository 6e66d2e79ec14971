"""Sources: where articles come from. See :mod:`digest.sources.base` for the contract and
:mod:`digest.sources.registry` for the kinds by name."""

from digest.sources.base import Source
from digest.sources.registry import SOURCE_KINDS, source_from_settings

__all__ = ["SOURCE_KINDS", "Source", "source_from_settings"]
