"""How the decode-once cache folder can be tidied by anyone, without knowing its file names.

The cache folder describes itself to whatever prunes it (the store's ``gc``, backup tools):

- it holds a ``CACHEDIR.TAG``, the conventional cache-directory tag (a file whose first line is
  ``Signature: 8a477f597d28d172789f06886806bc55``), which backup and cleaning tools recognise as
  "a cache: skip it or empty it";
- every file in it is disposable: a missing or half-removed entry is a miss, decoded again, and
  a process that already has an entry open keeps its memory map;
- a file's modification time is its last use, to the hour: a process that opens an entry
  touches it unless it was touched within the last hour.

So "delete the files of this folder not modified for N days" removes the entries
unused for N days. :func:`prune_folder` does that entry by entry (an entry is a decoded
``<source>-<version>.b2nd``, a label's also a ``<source>-<version>-classes.npz`` of class
locations; entries of the first format were a ``.npy`` and its ``.json`` geometry), plus the old
per-source lock files.

Examples:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> tag_folder(folder)
    >>> (folder / CACHEDIR_TAG).read_text().splitlines()[0]
    'Signature: 8a477f597d28d172789f06886806bc55'
    >>> prune_folder(folder, older_than_days=0)
    CachePrune(entries=0, bytes_freed=0)
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from medstore.datastore import atomic_write_bytes, nofollow

__all__ = ["CACHEDIR_TAG", "CachePrune", "prune_folder", "tag_folder", "touch"]

CACHEDIR_TAG = "CACHEDIR.TAG"
"""The cache-directory tag file written in every cache folder."""
_TAG_TEXT = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# medstore decoded-volume cache: every file here is disposable and is rebuilt on demand.\n"
    b"# A file's modification time is its last use.\n"
)
_ENTRY_SUFFIXES = (".b2nd", ".npz", ".npy", ".json")
_USE_RESOLUTION_S = 3600.0  # a use is recorded at most once an hour per file


@dataclass(frozen=True)
class CachePrune:
    """What :func:`prune_folder` removed (or, in a dry run, would remove).

    Attributes:
        entries: Cache entries (a decoded volume and its geometry file).
        bytes_freed: Their size in bytes.
    """

    entries: int = 0
    bytes_freed: int = 0


def tag_folder(folder: Path) -> None:
    """Write ``CACHEDIR.TAG`` in ``folder`` when it is missing (best effort).

    Args:
        folder: An existing cache folder.
    """
    tag = folder / CACHEDIR_TAG
    if not tag.exists():
        with contextlib.suppress(OSError):
            atomic_write_bytes(tag, _TAG_TEXT)


def touch(*paths: Path) -> None:
    """Record a use: set the files' modification time to now (best effort, e.g. read-only).

    Pruning counts in days, so a file used within the last hour keeps its time: reading an
    entry in every item of every epoch does not also write its metadata every time.

    Args:
        *paths: The files of one entry.
    """
    recent = time.time() - _USE_RESOLUTION_S
    for path in paths:
        with contextlib.suppress(OSError):
            if os.stat(path).st_mtime < recent:
                os.utime(path)


def prune_folder(folder: Path, *, older_than_days: float, dry_run: bool = False) -> CachePrune:
    """Remove the cache entries of ``folder`` not used for ``older_than_days``.

    An entry goes as a whole (all its files) once its newest file is older than the
    cutoff; a source's lock file goes when it is that old and no entry of the source is left.

    Args:
        folder: The cache folder (absent: nothing to do).
        older_than_days: Minimum time since an entry's last use.
        dry_run: Report without deleting.

    Returns:
        What was (or would be) removed.
    """
    if not folder.is_dir():
        return CachePrune()
    cutoff = time.time() - older_than_days * 86400
    groups: dict[str, list[Path]] = {}
    for path in folder.glob("*-*"):
        if path.suffix in _ENTRY_SUFFIXES:
            groups.setdefault(path.stem, []).append(path)
    entries = freed = 0
    kept_sources: set[str] = set()
    for stem, files in sorted(groups.items()):
        stats = []
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                stats.append((path, path.stat()))
        if not stats or max(st.st_mtime for _, st in stats) >= cutoff:
            kept_sources.add(stem.split("-", 1)[0])
            continue
        entries += 1
        freed += sum(st.st_size for _, st in stats)
        if not dry_run:
            for path, _ in stats:
                with contextlib.suppress(OSError):  # never through a link under a store
                    nofollow.unlink(path)
    if not dry_run:
        for lock in folder.glob("*.lock"):
            with contextlib.suppress(OSError):
                if lock.stem not in kept_sources and lock.stat().st_mtime < cutoff:
                    nofollow.unlink(lock)
    return CachePrune(entries, freed)
