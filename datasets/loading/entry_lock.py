"""An exclusive lock per cache source, held by the kernel (``flock``), never a marker file.

A marker-file ("soft") lock is left behind by a process that dies while holding it and blocks
every later fill until someone deletes it by hand; a kernel lock is released with its process.
Where the filesystem cannot lock (some network and FUSE mounts answer ``ENOLCK`` or
``EOPNOTSUPP``), :func:`entry_lock` raises :class:`LockUnavailableError`, and the cache then
skips that folder rather than write entries other processes could be writing at the same time.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with entry_lock(folder / "a.lock"):
    ...     (folder / "a.lock").exists()
    True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from medstore.datastore import nofollow

from .cache_upkeep import tag_folder

__all__ = ["FolderUnusableError", "LockUnavailableError", "entry_lock", "locked_folder"]


class LockUnavailableError(OSError):
    """The folder's filesystem offers no kernel file lock."""


def _lock_fd(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock_fd(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive kernel lock on ``path`` (created if missing) for the block.

    Args:
        path: The lock file.

    Yields:
        Nothing; the lock is held inside the ``with`` block.

    Raises:
        OSError: The lock file cannot be created (read-only or missing folder...).
        LockUnavailableError: The filesystem does not support locking.
    """
    fd = nofollow.open_fd(path, os.O_RDWR | os.O_CREAT, 0o666)  # never through a store link
    try:
        try:
            _lock_fd(fd)
        except OSError as err:
            raise LockUnavailableError(
                err.errno, f"no file locking on the filesystem of {path.parent}: {err.strerror}"
            ) from err
        try:
            yield
        finally:
            _unlock_fd(fd)
    finally:
        os.close(fd)


class FolderUnusableError(Exception):
    """A cache folder cannot be created, locked or written (the message says which)."""


@contextlib.contextmanager
def locked_folder(folder: Path, source_key: str) -> Iterator[None]:
    """Hold ``<source_key>.lock`` in ``folder`` (created and tagged as a cache as needed).

    Args:
        folder: The cache folder.
        source_key: The source's key.

    Yields:
        Nothing; the lock is held inside the ``with`` block.

    Raises:
        FolderUnusableError: The folder cannot be created, or its lock file created or locked.
    """
    with contextlib.ExitStack() as stack:
        try:
            nofollow.makedirs(folder)
            stack.enter_context(entry_lock(folder / f"{source_key}.lock"))
        except LockUnavailableError as err:
            raise FolderUnusableError(str(err)) from err
        except OSError as err:
            raise FolderUnusableError(f"cannot create or lock files: {err}") from err
        tag_folder(folder)
        yield
