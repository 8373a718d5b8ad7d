"""Where a store's decode-once cache lives: its own folder, or the per-user cache folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from medstore.datastore import StoreLayout

__all__ = ["default_user_cache_dir", "store_cache_folder", "user_cache_folder"]


def default_user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/medstore`` or ``~/.cache/medstore``.

    Returns:
        The folder path (not created).

    Example:
        >>> default_user_cache_dir().name
        'medstore'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medstore"


def store_cache_folder(store: Any, root: Path) -> Path:
    """Default cache folder of a store: the one its layout names, or the user cache if read-only.

    A writable store's layout names ``.medstore/cache``; a read-only store gets a folder of the
    user cache, keyed by the store's path.

    Args:
        store: The store (``read_only`` and ``layout.cache`` or ``side_path`` are consulted).
        root: Its folder.

    Returns:
        The folder (not created).
    """
    if not getattr(store, "read_only", False):
        named = getattr(getattr(store, "layout", None), "cache", None)  # the store's own name
        return named if isinstance(named, Path) else StoreLayout.at(root).cache
    return user_cache_folder(root)


def user_cache_folder(root: Path) -> Path:
    """The per-user cache folder of the store at ``root`` (keyed by its resolved path).

    Used by read-only stores, and by any store whose own cache folder cannot be written (a
    store on a read-only mount opened without ``read_only=True``).

    Args:
        root: The store folder.

    Returns:
        The folder (not created).

    Example:
        >>> user_cache_folder(Path("/data/store")).parent == default_user_cache_dir()
        True
    """
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return default_user_cache_dir() / digest
