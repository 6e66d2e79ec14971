"""The ``digest`` command's group, its shared context and the entry point. Only ``digest.cli``
knows click; library code raises typed errors and :func:`main` turns them into one clear line on
stderr and an exit status."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

import click

from digest import __version__
from digest.config import Settings, config_path_from, load_config
from digest.errors import ConfigError, DigestError, UsageError, describe_os_error
from digest.redact import MaskingFilter, mask
from digest.store import Store, state_error_line

# The moments --as-of accepts: the window, the schedule's year ahead and the time zones all
# stay far inside what datetime can hold (year 1 to 9999) and what the state database stores.
AS_OF_RANGE = (datetime(1970, 1, 1), datetime(9000, 12, 31, 23, 59, 59))


class Context:
    def __init__(self, config: str | None, debug: bool) -> None:
        self.config_option = config
        self.debug = debug
        # "quiet", "normal", "verbose" or "debug" (set by -q / -v / --debug).
        self.verbosity = "debug" if debug else "normal"
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_config(config_path_from(self.config_option))
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings.state_url)
            self._check_owner(self._store)
        return self._store

    def _check_owner(self, store: Store) -> None:
        shared = store.shared_with(str(self.settings.config_path))
        if shared:
            warn(shared)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def moment(self, value: str | None) -> datetime | None:
        """Parse an --as-of value; a time without a zone is in the newsletter's time zone."""
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"--as-of: expected a date or date and time like 2025-08-11T09:00, got {value!r}"
            ) from None
        if not AS_OF_RANGE[0] <= when.replace(tzinfo=None) <= AS_OF_RANGE[1]:
            first, last = (d.date().isoformat() for d in AS_OF_RANGE)
            raise UsageError(f"--as-of: {value} is out of range; give a moment between {first} and {last}")
        return when if when.tzinfo else when.replace(tzinfo=self.settings.newsletter.tz)


pass_ctx = click.make_pass_decorator(Context)


def echo(message: str) -> None:
    click.echo(mask(message))


def warn(message: str) -> None:
    """A warning line on stderr, unless -q was given."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Context) if ctx is not None else None
    if obj is not None and obj.verbosity == "quiet":
        return
    click.echo(mask(f"warning: {message}"), err=True)


def _error(message: str) -> None:
    """One line on stderr, secrets masked: the output boundary for errors."""
    click.echo(mask(message), err=True)


def configure_logging(level: str) -> None:
    """``quiet``: errors only; ``normal``: warnings; ``verbose``: digest's progress (INFO);
    ``debug``: digest's own debug lines. Third-party loggers (trafilatura, htmldate, urllib3 ...)
    stay at WARNING whatever the level: their internals are not the operator's business."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for each in root.handlers:  # the output boundary: no secret reaches a log line
        if not any(isinstance(f, MaskingFilter) for f in each.filters):
            each.addFilter(MaskingFilter())
    root.setLevel(logging.ERROR if level == "quiet" else logging.WARNING)
    logging.getLogger("digest").setLevel(_LEVELS[level])


_LEVELS = {"quiet": logging.ERROR, "normal": logging.WARNING, "verbose": logging.INFO, "debug": logging.DEBUG}


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-q / -v given after a subcommand's name: the same as before it."""
    if not value or ctx.resilient_parsing:
        return
    obj = ctx.find_object(Context)
    level = "quiet" if param.name == "quiet" else "verbose"
    if obj is not None and not obj.debug:
        obj.verbosity = level
    configure_logging("debug" if obj is not None and obj.debug else level)


_VERBOSITY = (
    (("-q", "--quiet"), "Only errors: no warnings, no progress logging."),
    (("-v", "--verbose"), "Log what digest does (INFO); --debug for more."),
)


def _verbosity_options() -> list[click.Parameter]:
    return [
        click.Option(list(opts), is_flag=True, expose_value=False, callback=_set_verbosity, help=text)
        for opts, text in _VERBOSITY
    ]


class DigestGroup(click.Group):
    """A group whose every command takes -q / -v too, not only ``digest`` itself; its subgroups
    (``digest subscribers``, ``digest config`` ...) are DigestGroups as well."""

    group_class = type

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any("-q" in getattr(p, "opts", ()) for p in cmd.params):
            cmd.params.extend(_verbosity_options())
        super().add_command(cmd, name)


@click.group(
    cls=DigestGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example:\n\n  digest --config config/digest.toml run",
)
@click.option(
    "--config",
    "-c",
    metavar="FILE",
    help="Config file (default: $DIGEST_CONFIG, else config/digest.toml).",
)
@click.option(*_VERBOSITY[0][0], is_flag=True, help=_VERBOSITY[0][1])
@click.option(*_VERBOSITY[1][0], is_flag=True, help=_VERBOSITY[1][1])
@click.option("--debug", is_flag=True, help="digest's debug logging, and a traceback for unexpected errors.")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config: str | None, quiet: bool, verbose: bool, debug: bool) -> None:
    """digest: a newsletter digest generator.

    Ingests articles from feeds, pages and folders, selects this issue's articles, writes their
    teasers, renders a responsive e-mail with a plain-text twin, and delivers it to each
    subscriber exactly once.
    """
    if quiet and (verbose or debug):
        raise UsageError("-q/--quiet does not go with -v/--verbose or --debug; choose one")
    level = "debug" if debug else "quiet" if quiet else "verbose" if verbose else "normal"
    configure_logging(level)
    ctx.obj = Context(config, debug)
    ctx.obj.verbosity = level


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning digest's errors into one line and an exit status."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("digest: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        for problem in exc.problems:
            _error(f"digest: config error: {problem}")
        sys.exit(exc.exit_code)
    except DigestError as exc:
        _error(f"digest: error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("digest: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        # A file or folder no command wrapped with its own advice: still one line with the path.
        if debug:
            raise
        click.echo(f"digest: error: {describe_os_error(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        state = state_error_line(exc)
        if state is not None and not debug:
            _error(f"digest: error: {state}")
            sys.exit(1)
        if debug:
            import traceback

            _error(traceback.format_exc().rstrip())
            sys.exit(1)
        _error(f"digest: unexpected error: {exc.__class__.__name__}: {exc} (rerun with --debug for details)")
        sys.exit(1)
    sys.exit(0)
