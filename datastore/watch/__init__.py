"""Watching a store's folders: index files as they appear, once they are completely written.

- :mod:`.watcher`: :class:`StoreWatcher`, the observer and its background worker;
- :mod:`.arrivals`: the gate a new file passes (stable, then complete by
  :func:`~..imaging.completeness.why_incomplete`) before it is indexed;
- :mod:`.report`: :class:`RefreshReport`, what changed in the index between two looks;
- :mod:`.foreground`: :func:`run_foreground`, the ``medstore watch`` loop;
- :mod:`.watched`: :class:`WatchedStore`, the public store methods all of this uses.
"""

from __future__ import annotations

from .foreground import run_foreground
from .report import RefreshReport
from .watched import WatchedStore
from .watcher import StoreWatcher, WatchOptions

__all__ = ["RefreshReport", "StoreWatcher", "WatchOptions", "WatchedStore", "run_foreground"]
