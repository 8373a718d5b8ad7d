"""A one-shot background timer that folds the journal into the manifest once it is old enough.

A save on the journal path appends a record and returns; ``datastore_v2.json`` (what MONAI Label
reads) gets it at the next compaction. Compactions also run at later saves and on ``close()``,
but a process that saves once and then only trains would leave MONAI Label without the save for
as long as it runs. The timer bounds that: armed by a journalled save, it fires
``compact_after_s`` seconds later in a daemon thread and folds whatever the journal holds then.

Examples:
    >>> import threading
    >>> fired = threading.Event()
    >>> timer = FoldTimer(fired.set, after_s=0.01)
    >>> timer.arm()
    >>> fired.wait(5)
    True
    >>> timer.cancel()
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable

__all__ = ["FoldTimer"]


class FoldTimer:
    """Run ``fold`` once, ``after_s`` seconds after the first :meth:`arm` since it last ran.

    Args:
        fold: What to run (in a daemon thread); it must not raise. A bound method is held
            weakly, and strongly only by a running countdown: a dropped store with a save
            pending is folded in and then freed, one with none is freed at once.
        after_s: The delay in seconds.
    """

    def __init__(self, fold: Callable[[], None], *, after_s: float) -> None:
        # Held weakly, so no reference cycle (session -> timer -> its method) outlives a
        # countdown: a store session holding a whole manifest is freed by reference counting.
        self._fold: Callable[[], Callable[[], None] | None] = (
            weakref.WeakMethod(fold) if inspect.ismethod(fold) else lambda: fold
        )
        self._after_s = after_s
        self._timer: threading.Timer | None = None
        self._guard = threading.Lock()

    def arm(self) -> None:
        """Start the countdown, unless one is already running (the oldest save sets the time)."""
        with self._guard:
            if self._timer is not None and self._timer.is_alive():
                return
            fold = self._fold()
            if fold is None:
                return
            # The countdown's thread holds ``fold`` until it has run (threading drops a
            # finished thread's arguments).
            self._timer = threading.Timer(self._after_s, self._run, args=(fold,))
            self._timer.daemon = True  # never keeps a finished program alive
            self._timer.start()

    def cancel(self) -> None:
        """Stop a pending countdown (the journal is folded, or the store is closing)."""
        with self._guard:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _run(self, fold: Callable[[], None]) -> None:
        with self._guard:
            self._timer = None
        fold()
