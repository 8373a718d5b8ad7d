"""Watchdog-driven auto reload (DESIGN §4) — placeholder until the watcher lands."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["StoreWatcher"]


class StoreWatcher:
    """Indexes files that appear in a store's folders."""

    def __init__(self, store: Any, *, mode: Literal["native", "poll"] = "native") -> None:
        self.store = store
        self.mode = mode

    def start(self) -> None:
        """Start watching."""

    def stop(self) -> None:
        """Stop watching."""
