"""``medstore watch``: run the store's observer in the foreground and log what it indexes.

Examples:
    >>> diff_snapshots(({"a": ".nii"}, set()), ({"b": ".nii"}, {("final", "b")}))
    ['indexed image b (b.nii)', 'dropped image a', 'indexed label final/b']
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any

from ..store.local import LocalDatastore
from .main import StoreOptions, open_store

__all__ = ["Snapshot", "diff_snapshots", "register", "snapshot"]

Snapshot = tuple[dict[str, str], set[tuple[str, str]]]


def snapshot(store: LocalDatastore) -> Snapshot:
    """The indexed images (id → ext) and labels ((tag, id)) of a store, as now on disk."""
    objects = store.json()["objects"]
    images = {k: v["image"]["ext"] for k, v in objects.items()}
    labels = {(tag, k) for k, v in objects.items() for tag in v["labels"]}
    return images, labels


def diff_snapshots(old: Snapshot, new: Snapshot) -> list[str]:
    """Human-readable changes from ``old`` to ``new``.

    Args:
        old: Earlier snapshot.
        new: Later snapshot.

    Returns:
        One message per indexed or dropped image or label.
    """
    messages = [f"indexed image {k} ({k}{ext})" for k, ext in new[0].items() if k not in old[0]]
    messages += [f"dropped image {k}" for k in old[0] if k not in new[0]]
    messages += [f"indexed label {t}/{k}" for t, k in sorted(new[1] - old[1])]
    messages += [f"dropped label {t}/{k}" for t, k in sorted(old[1] - new[1])]
    return messages


def _log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"{stamp} {message}", flush=True)


def run_watch(args: argparse.Namespace, store: None) -> int:
    """Watch until Ctrl-C (or ``--timeout``), logging every change the observer indexes."""
    if args.interval <= 0:
        raise ValueError(f"--interval must be > 0, got {args.interval}")
    mode = "poll" if args.poll else "native"
    options = StoreOptions.from_args(args)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    with open_store(options, mode="write", auto_reload=True, watch=mode) as live:
        state = snapshot(live)
        _log(f"watching {live.root} ({mode}; {len(state[0])} images); Ctrl-C to stop")
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(args.interval)
                new = snapshot(live)
                for message in diff_snapshots(state, new):
                    _log(message)
                state = new
        except KeyboardInterrupt:
            pass
    _log("stopped")
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
