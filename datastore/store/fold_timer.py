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
            weakly (the timer does not keep its object alive).
        after_s: The delay in seconds.
    """

    def __init__(self, fold: Callable[[], None], *, after_s: float) -> None:
        # A bound method is held weakly: a pending timer never keeps its owner (a store session
        # holding a whole manifest) alive, and no reference cycle needs the collector to free it.
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
            self._timer = threading.Timer(self._after_s, self._run)
            self._timer.daemon = True  # never keeps a finished program alive
            self._timer.start()

    def cancel(self) -> None:
        """Stop a pending countdown (the journal is folded, or the store is closing)."""
        with self._guard:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _run(self) -> None:
        with self._guard:
            self._timer = None
        fold = self._fold()
        if fold is not None:  # its owner is gone: nothing to fold from here
            fold()
