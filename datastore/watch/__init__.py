"""Watching a store's folders: the observer, the arrival gate and file-completeness checks."""

from __future__ import annotations

from .watcher import RefreshReport, StoreWatcher, WatchOptions

__all__ = ["RefreshReport", "StoreWatcher", "WatchOptions"]
