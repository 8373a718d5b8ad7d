"""The foreground watch loop behind ``medstore watch``: index files as they appear, report changes.

:func:`run_foreground` runs a :class:`~.watcher.StoreWatcher` on the store and, every
``interval`` seconds, compares the store's index with its previous look (:func:`~.report.diff`):
each change is reported, whoever made it (this watcher, or another process saving a label).

Examples:
    >>> import tempfile, threading
    >>> from medstore.datastore import LocalDatastore
    >>> done = threading.Event(); done.set()
    >>> run_foreground(LocalDatastore(tempfile.mkdtemp()), stop=done)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from .report import RefreshReport, diff, log_report, snapshot
from .watched import WatchedStore
from .watcher import StoreWatcher, WatchOptions

__all__ = ["run_foreground"]


def run_foreground(
    store: WatchedStore,
    *,
    on_change: Callable[[RefreshReport], None] | None = None,
    mode: Literal["native", "poll"] = "native",
    options: WatchOptions | None = None,
    interval: float = 0.5,
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Watch ``store`` until Ctrl-C, ``timeout`` or ``stop``, reporting each change to its index.

    Args:
        store: A writable store (opened without ``auto_reload``: this runs its own watcher).
        on_change: Called from this thread with each non-empty change; by default each line of
            the report is logged at INFO level.
        mode: ``"native"`` or ``"poll"``.
        options: Watcher timing.
        interval: Seconds between two looks at the index.
        timeout: Return after about this many seconds (default: run until stopped).
        stop: Set it (from another thread) to return within one ``interval``.

    Raises:
        ValueError: ``interval`` is not positive.
        ReadOnlyError: The store is read-only.
    """
    if not interval > 0:
        raise ValueError(f"interval must be > 0, got {interval}")
    store.check_writable()
    report = on_change or log_report
    deadline = None if timeout is None else time.monotonic() + timeout
    stop = stop or threading.Event()
    with StoreWatcher(store, mode=mode, options=options):
        state = snapshot(store)
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                time.sleep(interval)
                new = snapshot(store)
                change = diff(state, new)
                if change:
                    report(change)
                state = new
        except KeyboardInterrupt:
            pass
