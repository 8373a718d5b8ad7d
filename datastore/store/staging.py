"""Staging new files inside the store before a transaction moves them into place.

Staged files (``staged-<uuid><ext>``) live in ``.medstore/pending/`` beside the redo records, on the
same file system as their destination; they are fsynced, and the record's folder fsync makes their
names durable before anything depends on them.

Examples:
    >>> import tempfile, pathlib
    >>> area = StagingArea(pathlib.Path(tempfile.mkdtemp()) / "staging")
    >>> path = area.write_bytes(b"x", ".json")
    >>> path.read_bytes()
    b'x'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from .. import nofollow
from ..durable import create_durable, new_file_mode
from ..errors import UnsafePathError
from .source_files import open_regular

__all__ = ["StagingArea", "file_checksum"]

_CHUNK = 1 << 20
STAGED_PREFIX = "staged-"


def file_checksum(path: str | os.PathLike[str]) -> str:
    """``"SHA256:<hex>"`` of a file (or of every file of a folder, in name order).

    Args:
        path: A file or a DICOM series folder.

    Returns:
        The checksum in the form older MONAI Label wrote.
    """
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return f"SHA256:{digest.hexdigest()}"


def _is_leftover(name: str) -> bool:
    return name.startswith(STAGED_PREFIX) or (name.startswith(".") and name.endswith(".tmp"))


class StagingArea:
    """A folder for files on their way into the store.

    Args:
        folder: ``<root>/.medstore/pending``.
        file_mode: Permission bits for new files (``None``: the process umask).
    """

    def __init__(self, folder: Path, *, file_mode: int | None = None) -> None:
        self.folder = folder
        self.file_mode = file_mode

    def _new_path(self, ext: str) -> Path:
        nofollow.makedirs(self.folder)
        return self.folder / f"{STAGED_PREFIX}{uuid.uuid4().hex}{ext}"

    def _is_own(self, src: str | os.PathLike[str]) -> bool:
        """Whether ``src`` lies in the store's side folder (history, trash) beside staging."""
        side = os.path.dirname(os.path.abspath(self.folder))
        return os.path.abspath(src).startswith(side + os.sep)

    def copy_file(self, src: str | os.PathLike[str], ext: str) -> tuple[Path, str]:
        """Copy a file (or a series folder) into staging, fsynced, hashing it on the way.

        Args:
            src: The source (one of the store's own, under ``.medstore``, is opened without
                following links below the store root).
            ext: The extension to give the staged copy.

        Returns:
            ``(staged_path, checksum)``.
        """
        staged = self._new_path(ext)
        own = self._is_own(src)  # kept versions and trash: never read through a planted link
        if nofollow.is_real_dir(src) if own else Path(src).is_dir():
            nofollow.copy_tree(src, staged, mode=new_file_mode(self.file_mode))
            return staged, file_checksum(staged)
        digest = hashlib.sha256()
        with open_regular(src, own=own) as source:  # checked when opened: never a FIFO, device
            create_durable(staged, src=source, mode=self.file_mode, on_chunk=digest.update)
        return staged, f"SHA256:{digest.hexdigest()}"

    def write_bytes(self, data: bytes, ext: str) -> Path:
        """Stage in-memory content (fsynced; call :meth:`sync` before relying on its name).

        Args:
            data: The bytes.
            ext: The staged file's extension.

        Returns:
            The staged path.
        """
        staged = self._new_path(ext)
        create_durable(staged, data=data, mode=self.file_mode)
        return staged

    def link(self, target: str | os.PathLike[str], ext: str) -> Path:
        """Stage a symlink to ``target`` (images imported with ``--link``).

        Args:
            target: Absolute path the link points to.
            ext: The link's extension.

        Returns:
            The staged link.
        """
        staged = self._new_path(ext)
        nofollow.symlink(os.path.abspath(target), staged)
        return staged

    def discard(self, staged: Path) -> None:
        """Delete one staged file, link or series folder that will not be used."""
        _remove(staged)

    def has_leftovers(self) -> bool:
        """Whether staged files or temp files are lying in the folder (one listing)."""
        try:
            return any(_is_leftover(name) for name in nofollow.listdir(self.folder))
        except FileNotFoundError:
            return False

    def clear_orphans(self) -> int:
        """Delete staged leftovers of saves that never wrote a redo record (lock held, after
        recovery), and temp files of interrupted writes.

        Returns:
            How many were deleted.
        """
        try:
            entries = [self.folder / n for n in nofollow.listdir(self.folder) if _is_leftover(n)]
        except FileNotFoundError:
            return 0
        for entry in entries:
            _remove(entry)
        return len(entries)


def _remove(staged: Path) -> None:
    """Delete a staged file, link or series folder (never through a link)."""
    with contextlib.suppress(UnsafePathError):  # nothing of ours lies through a link
        if nofollow.is_real_dir(staged):
            nofollow.rmtree(staged, ignore_errors=True)
        else:
            nofollow.unlink(staged, missing_ok=True)
