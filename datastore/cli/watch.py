"""``medstore watch``: run the store's watcher in the foreground and print what changes.

The loop is :func:`medstore.datastore.watch.run_foreground`; this module parses the arguments
and prints each change as a time-stamped line on standard output.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any, Literal

from .main import StoreOptions, open_store

if TYPE_CHECKING:
    from ..watch.report import RefreshReport

__all__ = ["register"]


def _print(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def _print_report(report: RefreshReport) -> None:
    for line in report.lines():
        _print(line)


def run_watch(args: argparse.Namespace, store: None) -> int:
    """Watch until Ctrl-C (or ``--timeout``), printing every change to the store's index."""
    from ..watch.foreground import run_foreground  # the watcher (watchdog) only when it runs

    if args.interval <= 0:
        raise ValueError(f"--interval must be > 0, got {args.interval}")
    mode: Literal["native", "poll"] = "poll" if args.poll else "native"
    with open_store(StoreOptions.from_args(args), mode="write") as live:
        count = len(live.list_images())
        _print(f"watching {live.root} ({mode}; {count} images); Ctrl-C to stop")
        run_foreground(
            live,
            mode=mode,
            interval=args.interval,
            timeout=args.timeout,
            on_change=_print_report,
        )
    _print("stopped")
    return 0


def register(subparsers: Any) -> None:
    """Add ``medstore watch`` to the parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("watch", help="index files as they appear, until Ctrl-C")
    p.add_argument(
        "--poll",
        action="store_true",
        help="poll the folders (for NFS/SMB mounts) instead of OS events",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to report changes (default: 1)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C)",
    )
    p.set_defaults(handler=run_watch, store_mode="none")
