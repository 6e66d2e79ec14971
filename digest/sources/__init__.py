"""Sources: where articles come from. See :mod:`digest.sources.base` for the contract and
:mod:`digest.sources.registry` for the kinds by name.

This package imports none of its modules: the sources' parsers (trafilatura, feedparser, an HTTP
client) are loaded by what reads a source, not by a send, which only needs the light modules
beside them (the ingest report, article identity)."""
