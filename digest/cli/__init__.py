"""The ``digest`` command (console script ``digest = "digest.cli:main"``).

The group, its context and :func:`main` are in :mod:`digest.cli.app`; each module beside it adds
one family of commands to the group when imported here.
"""

from __future__ import annotations

from digest.cli import bounces, content, editorial, issues, servers, starting, subscribers
from digest.cli.app import cli, main

__all__ = ["bounces", "cli", "content", "editorial", "issues", "main", "servers", "starting", "subscribers"]
