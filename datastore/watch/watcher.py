"""Watchdog-driven auto reload: index files that appear in a store's folders.

A watchdog observer (or its polling observer, for NFS/SMB) watches the images folder
(non-recursive) and the labels folder (recursive, so tags created later are seen). Events only
mark work as due; one background worker applies them, debounced, through
``store.refresh(accept=...)`` — one scan per folder, never one refresh per event. Events that
the manifest already explains (the store's own saves and removals) cause no refresh at all.

A new file is indexed only once its size and mtime have been unchanged for
``stability_window`` seconds *and* :func:`~..imaging.completeness.why_incomplete` finds it
complete (:class:`~medstore.datastore.watch.arrivals.ArrivalGate`); the expensive part of that check
runs outside the store lock. A periodic rescan covers lost events. Errors in the worker are
logged; the worker keeps going. What a refresh changed is a
:class:`~medstore.datastore.watch.report.RefreshReport` (re-exported here). The store is used
only through its public methods (:class:`~medstore.datastore.watch.watched.WatchedStore`).

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> store = LocalDatastore(tempfile.mkdtemp())
    >>> with StoreWatcher(store, options=WatchOptions(debounce=0.05)) as watcher:
    ...     watcher.wait_idle(5.0)
    True
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from watchdog.events import DirModifiedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ..errors import DatastoreError, ImageNotFoundError, LabelNotFoundError
from ..ids import derive_id, is_hidden
from .arrivals import ArrivalGate
from .report import RefreshReport, diff, snapshot
from .watched import WatchedStore

__all__ = ["RefreshReport", "StoreWatcher", "WatchOptions"]

logger = logging.getLogger(__name__)

_RETRY_DELAY = 1.0
_RELEVANT = frozenset({"created", "moved", "deleted", "closed", "modified"})


@dataclass(frozen=True)
class WatchOptions:
    """Timing of the watcher, in seconds.

    Args:
        debounce: Quiet time after the last event before the worker acts.
        stability_window: How long a new file's (size, mtime) must stay unchanged.
        poll_interval: Interval of the polling observer (``watch="poll"``).
        rescan_interval: Full refresh this often, covering lost events.

    Raises:
        ValueError: A value is not positive.
    """

    debounce: float = 0.3
    stability_window: float = 1.0
    poll_interval: float = 1.0
    rescan_interval: float = 30.0

    def __post_init__(self) -> None:
        for name in ("debounce", "stability_window", "poll_interval", "rescan_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"WatchOptions.{name} must be positive")


@dataclass
class _State:
    events: list[tuple[bool, str]] = field(default_factory=list)  # (present?, path)
    last_event: float = 0.0
    busy: bool = False
    retry_at: float | None = None


class _Forwarder(FileSystemEventHandler):
    def __init__(self, sink: Callable[[FileSystemEvent], None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._sink(event)


class StoreWatcher:
    """Keeps a writable store's manifest in line with files that appear or vanish.

    Args:
        store: The store to keep indexed.
        mode: ``"native"`` (inotify, FSEvents...) or ``"poll"`` (network mounts). A native
            watch the system refuses (the inotify watch limit reached...) falls back to polling,
            with a warning; ``mode`` then reads ``"poll"``.
        options: Timing; defaults to :class:`WatchOptions()`.
        on_change: Called from the worker thread after each refresh that changed something.

    Examples:
        >>> import tempfile
        >>> from medstore.datastore import LocalDatastore
        >>> store = LocalDatastore(tempfile.mkdtemp())
        >>> watcher = StoreWatcher(store, mode="poll", options=WatchOptions(poll_interval=0.1))
        >>> watcher.start(); watcher.stop()
    """

    def __init__(
        self,
        store: WatchedStore,
        *,
        mode: Literal["native", "poll"] = "native",
        options: WatchOptions | None = None,
        on_change: Callable[[RefreshReport], None] | None = None,
    ) -> None:
        if mode not in ("native", "poll"):
            raise ValueError(f"watch mode must be 'native' or 'poll', not {mode!r}")
        self.store = store
        self.mode = mode
        self.options = options or WatchOptions()
        self._on_change = on_change
        self._cond = threading.Condition()
        self._state = _State()
        self._arrivals = ArrivalGate(
            stability_window=self.options.stability_window, describe=store.layout.relative
        )
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None
        self._next_rescan = 0.0
        self.refreshes = 0
        """Number of refreshes the worker ran (events explained by the manifest run none)."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._worker is not None and self._worker.is_alive()

    def start(self) -> None:
        """Start the observer and the worker (a no-op on a read-only store, with a warning)."""
        if self.running:
            return
        if self.store.read_only:
            logger.warning("auto reload ignored: store %s is open read-only", self.store.root)
            return
        self._stopping = False
        if self.mode == "native":
            try:
                self._observer = self._started(Observer())
            except OSError as err:  # e.g. ENOSPC: the inotify watch limit is reached
                logger.warning(
                    "native file watching of %s is unavailable (%s): polling every %.2f s instead",
                    self.store.root,
                    err,
                    self.options.poll_interval,
                )
                self.mode = "poll"
        if self.mode == "poll":
            self._observer = self._started(PollingObserver(timeout=self.options.poll_interval))
        self._next_rescan = time.monotonic() + self.options.rescan_interval
        self._worker = threading.Thread(target=self._run, name="medstore-watch", daemon=True)
        self._worker.start()

    def _started(self, observer: BaseObserver) -> BaseObserver:
        """Schedule the store's folders on ``observer`` and start it (stopped again on failure)."""
        layout = self.store.layout
        handler = _Forwarder(self._on_event)
        observer.schedule(handler, str(layout.images), recursive=False)
        if layout.labels.is_dir():
            observer.schedule(handler, str(layout.labels), recursive=True)
        observer.daemon = True
        try:
            observer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                observer.unschedule_all()
                observer.stop()
            raise
        return observer

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the observer and the worker; pending work is dropped (the next open refreshes).

        Args:
            timeout: Seconds to wait for each thread to end.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
        if self._worker is not None:
            if self._worker is not threading.current_thread():
                self._worker.join(timeout)
            if self._worker.is_alive():
                logger.warning("watch worker of %s did not stop in time", self.store.root)
            self._worker = None

    def __enter__(self) -> StoreWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0, *, settle: float = 0.1) -> bool:
        """Wait until no event, unstable file or refresh is pending.

        Files found stable but incomplete (e.g. a truncated copy that stopped growing) do not
        count as pending. Changes the observer has not delivered yet cannot be seen: with
        ``watch="poll"`` that is up to one ``poll_interval``.

        Args:
            timeout: Seconds to wait at most.
            settle: The idle state must hold this long (absorbs events in flight).

        Returns:
            ``True`` when idle, ``False`` on timeout.
        """
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        with self._cond:
            while True:
                now = time.monotonic()
                if self._idle_locked():
                    idle_since = idle_since if idle_since is not None else now
                    if now - idle_since >= settle:
                        return True
                    wake = idle_since + settle
                else:
                    idle_since = None
                    wake = deadline
                if now >= deadline:
                    return False
                self._cond.wait(min(wake, deadline) - now)

    def _idle_locked(self) -> bool:
        if not self.running:
            return True
        s = self._state
        if s.busy or s.events or s.retry_at is not None:
            return False  # (candidates are only changed by the worker while busy)
        return self._arrivals.settled()

    # ------------------------------------------------------------------ events
    def _on_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _RELEVANT or isinstance(event, DirModifiedEvent):
            return
        records: list[tuple[bool, str]] = []
        src = os.fsdecode(event.src_path)
        if event.event_type == "moved":
            records.append((False, src))
            records.append((True, os.fsdecode(event.dest_path)))
        else:
            records.append((event.event_type != "deleted", src))
        records = [r for r in records if self._relevant(r[1])]
        if not records:
            return
        with self._cond:
            self._state.events.extend(records)
            self._state.last_event = time.monotonic()
            self._cond.notify_all()

    def _relevant(self, path: str) -> bool:
        """Only direct children of the images folder and ``<labels>/<tag>[/<file>]`` matter."""
        layout = self.store.layout
        p = Path(path)
        if p.parent == layout.images:
            return not is_hidden(p.name) and p not in (layout.labels, layout.side)
        try:
            parts = p.relative_to(layout.labels).parts
        except ValueError:
            return False
        return 1 <= len(parts) <= 2 and not any(is_hidden(part) for part in parts)

    def _explained(self, present: bool, path: str) -> bool:
        """Whether the manifest already accounts for this event (no refresh needed)."""
        p = Path(path)
        if p in self._arrivals:
            return True
        layout = self.store.layout
        is_image = p.parent == layout.images
        if not is_image and p.parent.parent != layout.labels:
            return False  # a tag folder appeared or vanished
        if is_image and os.path.isdir(p):
            derived: tuple[str, str] | None = (p.name, "")
        else:
            derived = derive_id(p.name, self.store.extensions)
        if derived is None:
            return True  # not a file the store would index
        try:
            uri = (
                self.store.get_image_uri(derived[0])
                if is_image
                else self.store.get_label_uri(derived[0], p.parent.name)
            )
        except (ImageNotFoundError, LabelNotFoundError):
            uri = None
        except DatastoreError:
            return False
        referenced = uri is not None and uri == os.path.realpath(p)
        exists = os.path.lexists(p)
        return (referenced and exists) if present else (not referenced or exists)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._wait_for_work_locked():
                    return
                events, self._state.events = self._state.events, []
                self._state.busy = True
                self._state.retry_at = None
            try:
                self._step(events)
            except Exception:  # the worker never dies; it retries a second later
                logger.exception("watching %s: background refresh failed", self.store.root)
                with self._cond:
                    self._state.retry_at = time.monotonic() + _RETRY_DELAY
            finally:
                with self._cond:
                    self._state.busy = False
                    self._cond.notify_all()

    def _wait_for_work_locked(self) -> bool:
        """Block until work is due; ``False`` when stopping."""
        while not self._stopping:
            now = time.monotonic()
            due = self._next_due_locked()
            if due <= now:
                return True
            self._cond.wait(due - now)
        return False

    def _next_due_locked(self) -> float:
        opts = self.options
        s = self._state
        dues = [self._next_rescan]
        if s.events:
            dues.append(s.last_event + opts.debounce)
        if s.retry_at is not None:
            dues.append(s.retry_at)
        dues.extend(self._arrivals.dues())
        return min(dues)

    def _step(self, events: list[tuple[bool, str]]) -> None:
        now = time.monotonic()
        need = now >= self._next_rescan or self._arrivals.pending
        if not need and events:
            need = not all(self._explained(present, path) for present, path in events)
        need = self._arrivals.check() or need
        if need:
            self._refresh()

    def _refresh(self) -> None:
        store = self.store
        self._arrivals.begin_refresh()
        with store.locked():  # taken first: never join a batch() open in another thread
            before = snapshot(store) if self._on_change else None
            store.refresh(accept=self._arrivals.accept)
            after = snapshot(store) if self._on_change else None
        self.refreshes += 1
        self._next_rescan = time.monotonic() + self.options.rescan_interval
        self._arrivals.end_refresh()
        if before is not None and after is not None and self._on_change is not None:
            report = diff(before, after)
            if report:
                self._on_change(report)
