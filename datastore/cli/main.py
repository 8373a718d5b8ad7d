"""The ``medstore`` command: argument parsing, store opening and one-line error reporting.

Every command is registered by a ``datastore.cli_*`` module through ``register(subparsers)``; a
command's parser sets ``handler=run`` (``run(args, store) -> int``) and, optionally,
``store_mode`` — ``"write"`` (the default: the store must exist and is opened for writing),
``"read"`` (opened ``read_only``: nothing is ever written) or ``"none"`` (``store`` is ``None``).

Examples:
    >>> import contextlib, io, tempfile
    >>> root = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     code = main(["init", root])
    >>> code
    0
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from ..errors import DatastoreError
from ..store.layout import MANIFEST_NAME, StoreLayout
from ..store.local import DEFAULT_EXTENSIONS, LocalDatastore
from .outcome import StoreSnapshot, interrupted_message, silence_stdout

__all__ = [
    "PROG",
    "STORE_ENV",
    "StoreOptions",
    "UsageError",
    "build_parser",
    "main",
    "open_store",
    "parse_command_line",
]

PROG = "medstore"
STORE_ENV = "MEDSTORE_STORE"

# The store's own command groups, in help order (modules of this package).
_GROUPS = (".store", ".add", ".edit", ".watch", ".upkeep", ".annotate", ".exchange", ".formats")
# Other installed packages add commands through this entry-point group; each entry point names a
# module with a ``register(subparsers)`` function (``medstore demo`` comes from the datasets this
# way, so the store's commands never import torch or MONAI).
COMMANDS_ENTRY_POINT_GROUP = "medstore.commands"


class UsageError(ValueError):
    """The command line itself is wrong (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are raised, so ``main`` prints them as one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class StoreOptions:
    """How the CLI opens a store.

    Args:
        path: The store folder.
        lock_timeout: Seconds to wait for the store lock.
        extensions: File-name patterns of images and labels.
        read_only: Open read-only (mutating commands then fail with ``ReadOnlyError``).
    """

    path: Path
    lock_timeout: float = 30.0
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    read_only: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StoreOptions:
        """Build the options from parsed global arguments."""
        return cls(
            path=Path(args.store),
            lock_timeout=args.lock_timeout,
            extensions=tuple(args.ext) if args.ext else DEFAULT_EXTENSIONS,
            read_only=args.read_only,
        )


def open_store(options: StoreOptions, *, mode: str = "write", **kwargs: Any) -> LocalDatastore:
    """Open an existing store for a command.

    Args:
        options: Where and how.
        mode: ``"write"`` or ``"read"`` (``read_only=True``: nothing is written, not even a lock).
        **kwargs: Further ``LocalDatastore`` keyword arguments (e.g. ``auto_reload``).

    Returns:
        The open store.

    A folder without ``datastore_v2.json`` (a MONAI Label studies folder never opened by a
    server) is accepted in ``"read"`` mode: it is indexed in memory and nothing is written.

    Raises:
        FileNotFoundError: The folder does not exist, or (``"write"`` mode) has no manifest
            (run ``medstore init``).
        NotADirectoryError: The path is a file.

    Examples:
        >>> import tempfile
        >>> open_store(StoreOptions(Path(tempfile.mkdtemp())))
        Traceback (most recent call last):
        ...
        FileNotFoundError: ... is not a medstore store (no datastore_v2.json); ...
    """
    root = options.path
    if not root.exists():
        raise FileNotFoundError(f"store folder {root} does not exist (see '{PROG} init')")
    if not root.is_dir():
        raise NotADirectoryError(f"store path {root} is not a folder")
    read_only = options.read_only or mode == "read"
    if not read_only and not StoreLayout.at(root).manifest.is_file():
        raise FileNotFoundError(
            f"{root} is not a medstore store (no {MANIFEST_NAME}); "
            f"create one with '{PROG} init {root}'"
        )
    return LocalDatastore(
        root,
        extensions=options.extensions,
        read_only=read_only,
        lock_timeout=options.lock_timeout,
        **kwargs,
    )


def _version() -> str:
    try:
        return metadata.version("medstore")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command accepts, before or after its name."""
    parent = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parent.add_argument_group("global options")
    group.add_argument(
        "--store",
        metavar="PATH",
        default=default(os.environ.get(STORE_ENV) or "."),
        help=f"the store folder (default: ${STORE_ENV}, else the current folder)",
    )
    group.add_argument(
        "--lock-timeout",
        metavar="SECONDS",
        type=float,
        default=default(30.0),
        help="seconds to wait for the store lock (default: 30)",
    )
    group.add_argument(
        "--ext",
        metavar="PATTERN",
        action="append",
        default=default(None),
        help=f"image/label file pattern, repeatable (default: {' '.join(DEFAULT_EXTENSIONS)})",
    )
    group.add_argument(
        "--read-only",
        action="store_true",
        default=default(False),
        help="open the store read-only: nothing is written",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more logging; tracebacks on errors (-vv: debug)",
    )
    return parent


def build_parser(*, load: Collection[str] = ()) -> argparse.ArgumentParser:
    """The full ``medstore`` argument parser, with every available command group registered.

    Commands other packages add (entry points of ``medstore.commands``) are only named until
    ``load`` asks for them: loading ``medstore demo`` imports torch and MONAI, which the store's
    own commands and ``medstore --help`` never do.

    Args:
        load: Names of entry-point commands to load (their real options and help).

    Returns:
        The parser.
    """
    parser = _Parser(
        prog=PROG,
        description="A local, file-backed, MONAI Label-compatible medical-imaging datastore.",
        parents=[_global_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    common = _global_options(suppress=True)
    wrapped = _SubparsersWithParents(subparsers, common)
    for name in _GROUPS:
        importlib.import_module(name, __package__).register(wrapped)
    for entry_point in sorted(
        metadata.entry_points(group=COMMANDS_ENTRY_POINT_GROUP), key=lambda ep: ep.name
    ):
        if entry_point.name in load:
            entry_point.load().register(wrapped)
            continue
        stub = wrapped.add_parser(
            entry_point.name,
            add_help=False,
            help=f"see '{PROG} {entry_point.name} --help' (from {entry_point.module})",
        )
        stub.set_defaults(entry_point=entry_point.name, store_mode="none")
    return parser


def parse_command_line(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, loading an entry-point command only when it is the one asked for.

    Raises:
        UsageError: The command line is wrong.
    """
    args, unknown = build_parser().parse_known_args(argv)
    name = getattr(args, "entry_point", None)
    if name is not None:
        return build_parser(load={name}).parse_args(argv)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see '{PROG} --help')")
    return args


class _SubparsersWithParents:
    """Wraps ``add_subparsers()`` so every command also accepts the global options."""

    def __init__(self, subparsers: Any, parent: argparse.ArgumentParser) -> None:
        self._subparsers = subparsers
        self._parent = parent

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Like ``add_parser``, with the global options appended to ``parents``."""
        kwargs["parents"] = [*kwargs.get("parents", ()), self._parent]
        parser: argparse.ArgumentParser = self._subparsers.add_parser(name, **kwargs)
        return parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._subparsers, name)


class _CliHandler(logging.StreamHandler):
    """The stderr handler the CLI puts on the ``medstore`` logger (and replaces on each call)."""


def _configure_logging(verbosity: int) -> None:
    """Send the package's log records to the current stderr, once per ``main`` call.

    Only the ``medstore`` logger is configured: other libraries' loggers (``filelock``...) are
    left as the embedding application set them.
    """
    logger = logging.getLogger("medstore")
    for handler in list(logger.handlers):
        if isinstance(handler, _CliHandler):
            logger.removeHandler(handler)
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    logger.setLevel(levels[min(verbosity, 2)])
    logger.propagate = False


def _one_line(err: BaseException) -> str:
    """A single-line description of an error."""
    if isinstance(err, OSError) and err.strerror and not isinstance(err, DatastoreError):
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _report(err: BaseException, *, verbose: bool, prefix: str = "error") -> None:
    if verbose:
        traceback.print_exception(err, file=sys.stderr)
    print(f"{PROG}: {prefix}: {_one_line(err)}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    mode = getattr(args, "store_mode", "write")
    if mode == "none":
        code = int(args.handler(args, None))
    else:
        with open_store(StoreOptions.from_args(args), mode=mode) as store:
            code = int(args.handler(args, store))
    sys.stdout.flush()  # a closed pipe shows here, inside main's handlers
    return code


def _touched_store(args: argparse.Namespace) -> str | None:
    """The store folder a command may write (``None`` for commands that write none)."""
    mode = getattr(args, "store_mode", "write")
    if mode == "read" or getattr(args, "writes_no_store", False):
        return None
    return str(getattr(args, "target", None) or args.store)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``medstore`` command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 for a failed operation, 2 for a usage error,
        130 when interrupted (saying whether the store changed), 141 when stdout's reader went
        away (quietly, as a command killed by SIGPIPE).
    """
    verbose = 0
    before = StoreSnapshot.of(None)
    touched: str | None = None
    try:
        args = parse_command_line(argv)
        verbose = args.verbose
        _configure_logging(verbose)
        touched = _touched_store(args)
        before = StoreSnapshot.of(touched)
        return _run(args)
    except UsageError as err:
        _report(err, verbose=False)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: {interrupted_message(before, StoreSnapshot.of(touched))}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (medstore ls | head): not an error
        silence_stdout()
        return 141
    except (DatastoreError, OSError, ValueError, LookupError) as err:
        _report(err, verbose=bool(verbose))
        return 1
    except Exception as err:  # a bug: still one line unless -v
        hint = "" if verbose else " (run with -v for the traceback)"
        _report(err, verbose=bool(verbose), prefix=f"internal error{hint}: {type(err).__name__}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
