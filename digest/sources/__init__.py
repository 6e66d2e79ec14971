"""Sources: where articles come from. See :mod:`digest.sources.base` for the contract."""

from digest.sources.base import Source, source_from_settings

__all__ = ["Source", "source_from_settings"]
