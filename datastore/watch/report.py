"""What a background refresh changed (:class:`RefreshReport`) and the foreground watch loop.

:func:`snapshot` and :func:`diff` turn two views of the manifest into a :class:`RefreshReport`;
:func:`run_foreground` (``medstore watch``) runs a :class:`~.watcher.StoreWatcher` until
Ctrl-C and logs each report. :mod:`medstore.datastore.watch.watcher` re-exports both public names.

Examples:
    >>> report = diff({"a": frozenset()}, {"a": frozenset({"final"}), "b": frozenset()})
    >>> report.added_images, report.added_labels
    (('b',), (('final', 'a'),))
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..store.local import LocalDatastore
    from .watcher import WatchOptions

__all__ = ["RefreshReport", "diff", "log_report", "run_foreground", "snapshot"]

logger = logging.getLogger(__package__ + ".watcher")  # records keep the watcher's logger


@dataclass(frozen=True)
class RefreshReport:
    """What one background refresh changed (label entries are ``(tag, image_id)``)."""

    added_images: tuple[str, ...] = ()
    removed_images: tuple[str, ...] = ()
    added_labels: tuple[tuple[str, str], ...] = ()
    removed_labels: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.added_images or self.removed_images or self.added_labels or self.removed_labels
        )


def snapshot(store: LocalDatastore) -> dict[str, frozenset[str]]:
    """The store's image ids, each with its label tags.

    Args:
        store: The store (its manifest is read as it is now).

    Returns:
        ``{image_id: frozenset(label tags)}``.

    Examples:
        >>> import tempfile
        >>> from medstore.datastore.store.local import LocalDatastore
        >>> snapshot(LocalDatastore(tempfile.mkdtemp()))
        {}
    """
    return {k: frozenset(v["labels"]) for k, v in store.json()["objects"].items()}


def diff(before: dict[str, frozenset[str]], after: dict[str, frozenset[str]]) -> RefreshReport:
    """What changed between two :func:`snapshot` results.

    Args:
        before: The snapshot before the refresh.
        after: The snapshot after it.

    Returns:
        The sorted additions and removals.

    Examples:
        >>> bool(diff({"a": frozenset()}, {"a": frozenset()}))
        False
    """

    def labels(doc: dict[str, frozenset[str]]) -> set[tuple[str, str]]:
        return {(tag, k) for k, tags in doc.items() for tag in tags}

    return RefreshReport(
        added_images=tuple(sorted(after.keys() - before.keys())),
        removed_images=tuple(sorted(before.keys() - after.keys())),
        added_labels=tuple(sorted(labels(after) - labels(before))),
        removed_labels=tuple(sorted(labels(before) - labels(after))),
    )


def log_report(report: RefreshReport) -> None:
    """Log each indexed or removed image and label at INFO level (ids and tags only).

    Args:
        report: What a refresh changed.

    Examples:
        >>> log_report(RefreshReport(added_images=("case1",)))
    """
    for image_id in report.added_images:
        logger.info("indexed image %s", image_id)
    for tag, image_id in report.added_labels:
        logger.info("indexed label %s/%s", tag, image_id)
    for image_id in report.removed_images:
        logger.info("removed image %s", image_id)
    for tag, image_id in report.removed_labels:
        logger.info("removed label %s/%s", tag, image_id)


def run_foreground(
    store: LocalDatastore,
    *,
    on_change: Callable[[RefreshReport], None] | None = None,
    mode: Literal["native", "poll"] = "native",
    options: WatchOptions | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Watch ``store`` in the foreground until Ctrl-C (or ``stop`` is set) — ``medstore watch``.

    Args:
        store: A writable store (opened without ``auto_reload``).
        on_change: Called after each refresh that changed something; by default each indexed
            or removed file is logged at INFO level.
        mode: ``"native"`` or ``"poll"``.
        options: Watcher timing.
        stop: Set it (from another thread) to return.

    Raises:
        ReadOnlyError: The store is read-only.

    Examples:
        >>> import tempfile, threading
        >>> from medstore.datastore.store.local import LocalDatastore
        >>> done = threading.Event(); done.set()
        >>> run_foreground(LocalDatastore(tempfile.mkdtemp()), stop=done)
    """
    from .watcher import StoreWatcher  # watch.py imports this module

    store.check_writable()
    stop = stop or threading.Event()
    watcher = StoreWatcher(store, mode=mode, options=options, on_change=on_change or log_report)
    watcher.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
