"""Typed errors. Library code raises these; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class DigestError(Exception):
    """Root of every error digest reports to a user as one clear line."""

    exit_code = 1


class ConfigError(DigestError):
    """The configuration is wrong. Carries every problem found, one line each."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(DigestError):
    """A command was called with arguments that do not fit."""

    exit_code = 2


class FileError(DigestError):
    """A file or folder digest writes or reads cannot be used (missing folder, permissions, disk full)."""

    @classmethod
    def from_os(cls, exc: OSError, doing: str, fix: str) -> FileError:
        """``doing`` names the file (``"cannot write out/issue.html"``); ``fix`` what to do."""
        return cls(f"{doing}: {os_reason(exc)}; {fix}")


def os_reason(exc: OSError) -> str:
    """An OS error's reason without its errno and repeated path: "Permission denied"."""
    return exc.strerror or exc.__class__.__name__


def describe_os_error(exc: OSError) -> str:
    """One line for an OS error nothing more specific caught: the path(s) and the reason."""
    paths = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{paths}: {os_reason(exc)}" if paths else os_reason(exc)


class SourceError(DigestError):
    """A source could not be read or parsed."""


class RenderError(DigestError):
    """A template or the MJML compiler failed."""


class StateError(DigestError):
    """The state database cannot be used (wrong schema version, unreachable URL)."""


class DeliveryError(DigestError):
    """Sending failed. ``transient`` errors may be retried; permanent ones may not."""

    def __init__(self, message: str, *, transient: bool = False, recipient: str | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.recipient = recipient


class DeliveryUnavailable(DeliveryError):
    """The mail server or service cannot take mail now (a refused connection, a 421 greeting, a
    reply that could not be read): nothing is wrong with the settings, and nothing more was
    sent. ``retry_after``: seconds after which another try makes sense."""

    exit_code = 3

    def __init__(self, message: str, *, retry_after: float = 60.0) -> None:
        super().__init__(message, transient=True)
        self.retry_after = retry_after


class DeliveryConfigError(DeliveryError):
    """Bad credentials or settings: the whole send stops and nothing is marked sent."""

    exit_code = 2
