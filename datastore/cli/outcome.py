"""What a command left behind when it stopped early: Ctrl-C and closed pipes.

A store changes only by committing a transaction, whose last step replaces ``datastore_v2.json``
and whose redo record waits in ``.medstore/pending/`` while it runs. Comparing the manifest's
identity (inode, size, mtime) and the pending records before and after a command tells whether an
interrupted command changed anything.

Examples:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> before = StoreSnapshot.of(root)
    >>> interrupted_message(before, StoreSnapshot.of(root))
    'interrupted: nothing was changed'
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..store.layout import StoreLayout

__all__ = ["StoreSnapshot", "interrupted_message", "silence_stdout"]


@dataclass(frozen=True)
class StoreSnapshot:
    """The manifest's identity and the pending redo records of a store folder.

    Args:
        manifest: ``(inode, size, mtime_ns)`` of ``datastore_v2.json``, ``None`` when absent.
        pending: Names in ``.medstore/pending/``.
    """

    manifest: tuple[int, int, int] | None
    pending: frozenset[str]

    @classmethod
    def of(cls, root: str | os.PathLike[str] | None) -> StoreSnapshot:
        """Take the snapshot of ``root`` (an absent folder gives an empty one).

        Args:
            root: The store folder, or ``None`` for a command without a store.

        Returns:
            The snapshot; nothing is written.
        """
        if root is None:
            return cls(None, frozenset())
        layout = StoreLayout.at(Path(root))
        try:
            st = layout.manifest.stat()
            manifest: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            manifest = None
        try:
            pending = frozenset(os.listdir(layout.pending))
        except OSError:
            pending = frozenset()
        return cls(manifest, pending)


def interrupted_message(before: StoreSnapshot, after: StoreSnapshot) -> str:
    """What to tell the user after Ctrl-C.

    Args:
        before: The store before the command.
        after: The store when the interrupt was caught.

    Returns:
        One line: nothing changed, or what was kept and how an interrupted save is completed.

    Examples:
        >>> empty = StoreSnapshot(None, frozenset())
        >>> interrupted_message(empty, StoreSnapshot((1, 2, 3), frozenset()))
        'interrupted: changes committed before Ctrl-C are kept'
    """
    if before == after:
        return "interrupted: nothing was changed"
    if after.pending - before.pending:
        return (
            "interrupted during a save: the next command completes or undoes it "
            "(or run 'medstore doctor' now)"
        )
    return "interrupted: changes committed before Ctrl-C are kept"


def silence_stdout() -> None:
    """Point stdout at ``/dev/null`` after the reader of a pipe went away.

    Python flushes stdout at exit; without this, a closed pipe (``medstore ls | head``) would
    raise once more there and print "Exception ignored ... BrokenPipeError".
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or already closed
        pass
