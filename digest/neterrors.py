"""Why a connection failed, in words, for the fetcher and the e-mail services' HTTP calls alike.

requests and urllib3 nest the reason in reprs (``MaxRetryError(... NewConnectionError(
"HTTPConnection(host=...": Failed to establish a new connection: [Errno 111] ...``); the operator
wants "connection refused" or "host name not found".
"""

from __future__ import annotations

import socket


def connect_failure(exc: BaseException, *, fallback: str | None = None) -> str:
    """The innermost operating-system reason in ``exc``'s chain (causes, contexts, urllib3's
    ``reason`` and the arguments), as a few words; ``fallback`` (else the exception's class
    name) when there is none."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return "host name not found (DNS lookup failed); check the URL"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused; is the server running and the port right?"
        # requests' own exceptions subclass OSError (IOError) without an errno of their own.
        if isinstance(e, OSError) and e.errno is not None and e.strerror:
            return e.strerror[:1].lower() + e.strerror[1:]
        todo.extend([e.__cause__, e.__context__, getattr(e, "reason", None), *e.args])
    return fallback or exc.__class__.__name__
