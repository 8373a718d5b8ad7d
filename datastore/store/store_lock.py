"""The store lock: ``flock`` on ``<root>/.lock``, the same lock MONAI Label takes, or nothing.

Where the filesystem has no ``flock`` (``ENOSYS``, ``ENOLCK``, ``EOPNOTSUPP``) no write is allowed:
a soft (existence) lock would not exclude MONAI Label's ``flock`` and would delete ``.lock`` when
released, so :class:`StoreLock` refuses instead of falling back.

Examples:
    >>> import tempfile, pathlib
    >>> lock = StoreLock(pathlib.Path(tempfile.mkdtemp()) / ".lock", timeout=5.0)
    >>> with lock.held():
    ...     lock.path.exists()
    True
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator
from pathlib import Path

import filelock

from .. import nofollow
from ..errors import StoreLockedError, StoreLockUnsupportedError
from .fs_probe import filesystem_of
from .lock_holder import lock_holder

__all__ = ["StoreLock"]

logger = logging.getLogger(__name__)
_QUIET_WAIT = 1.0  # seconds of waiting before saying whom for

_NO_FLOCK = frozenset(
    code for code in (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP) if code
)


class StoreLock:
    """A re-entrant, process-wide ``flock`` on a store's ``.lock`` file.

    Args:
        path: The lock file.
        timeout: Seconds to wait before ``StoreLockedError``.
    """

    def __init__(self, path: Path, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._lock = filelock.FileLock(path, timeout=timeout, fallback_to_soft=False)

    @property
    def is_held(self) -> bool:
        """Whether this process (this thread) holds the lock now."""
        return self._lock.is_locked

    def _acquire(self) -> None:
        """Take the lock; after a second of waiting, log who holds it (then wait the rest)."""
        if self._lock.is_locked or self.timeout <= _QUIET_WAIT:
            self._lock.acquire()
            return
        try:
            self._lock.acquire(timeout=_QUIET_WAIT)
            return
        except filelock.Timeout:
            logger.warning(
                "waiting for the lock held by %s on %s (up to %g s)",
                lock_holder(self.path),
                self.path,
                self.timeout,
            )
        self._lock.acquire(timeout=self.timeout - _QUIET_WAIT)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block.

        Raises:
            StoreLockedError: Another process holds it past the timeout.
            StoreLockUnsupportedError: The filesystem cannot ``flock`` (nothing is written).
            UnsafePathError: ``.lock`` is a symbolic link (its target is never opened).
        """
        try:
            self._acquire()
        except filelock.Timeout as err:
            raise StoreLockedError(
                f"store {self.path.parent} is locked by another process "
                f"(waited {self.timeout:g} s for {self.path})"
            ) from err
        except OSError as err:
            if err.errno == errno.ELOOP:  # filelock opens .lock with O_NOFOLLOW: it is a link
                raise nofollow.refusal(self.path) from err
            if err.errno not in _NO_FLOCK:
                raise
            raise StoreLockUnsupportedError(
                f"cannot lock store {self.path.parent}: the filesystem "
                f"({filesystem_of(self.path.parent)}) does not support flock ({err.strerror}); "
                "medstore refuses to write there rather than use a lock MONAI Label would not see"
            ) from err
        try:
            yield
        finally:
            self._lock.release()
