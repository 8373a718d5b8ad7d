"""An append-only log of checksummed records: the durable layer of a manifest journal.

A large store cannot rewrite ``datastore_v2.json`` (hundreds of MB) at every save; a journal
keeps recent changes as records appended here and folds them into the manifest later. This
module is only the log: framing, checksums, durability and safety, no manifest semantics.

- Each record is framed as ``MAGIC (2 bytes) | length (4, little-endian) | CRC-32 (4) |
  payload``. A reader stops at the first frame that is incomplete, has the wrong magic, or whose
  checksum does not match: that frame and anything after it were never acknowledged (a write
  torn by a crash or a power cut), so they are ignored, never half-applied.
- :meth:`RecordLog.append` returns only once the record is durable (``fdatasync``; the folder
  is fsynced when the log is created). A torn tail left by a crashed writer is cut off before
  the next record is written, so it cannot hide records appended after it. A failed append cuts
  the log back to where it was, so a save reported as failed is never replayed later.
- It writes only while the caller holds the store lock (:class:`~.store_lock.StoreLock`), and
  never through a symbolic link (:mod:`~medstore.datastore.nofollow`).

Examples:
    >>> import tempfile, pathlib
    >>> from medstore.datastore.store.store_lock import StoreLock
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> lock = StoreLock(root / ".lock", timeout=5.0)
    >>> log = RecordLog(root / "journal.log")
    >>> with lock.held():
    ...     _ = log.append(b'{"op": 1}', lock=lock)
    ...     _ = log.append(b'{"op": 2}', lock=lock)
    >>> log.read().records
    [b'{"op": 1}', b'{"op": 2}']
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from .. import nofollow
from ..crashpoints import crashpoint
from ..durable import fsync_dir
from ..errors import StoreLockedError
from .store_lock import StoreLock

__all__ = ["MAGIC", "LogContents", "RecordLog"]

MAGIC = b"\xa5\x4a"
_HEADER = struct.Struct("<2sII")  # magic, payload length, CRC-32 of the payload
_MAX_RECORD = 1 << 30


def frame(payload: bytes) -> bytes:
    """One record as it is written: header, then payload.

    Examples:
        >>> frame(b"x")[:2] == MAGIC, len(frame(b"x"))
        (True, 11)
    """
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class LogContents:
    """What a log holds from some offset on.

    Args:
        records: The payloads of the complete, valid records, in order.
        end: The offset just after the last valid record (where the next one belongs).
        torn: Bytes after ``end`` that form no valid record (a write torn by a crash).
    """

    records: list[bytes]
    end: int
    torn: int


def parse(data: bytes, *, offset: int = 0) -> LogContents:
    """Split ``data`` (the log's bytes from ``offset`` on) into valid records.

    Args:
        data: Bytes read from the log, starting at a record boundary.
        offset: The file offset ``data`` starts at.

    Returns:
        The records, the end of the last valid one, and how many bytes after it are torn.

    Examples:
        >>> parse(frame(b"a") + frame(b"b")[:-1]).records
        [b'a']
    """
    records: list[bytes] = []
    pos = 0
    view = memoryview(data)
    while pos + _HEADER.size <= len(view):
        magic, length, crc = _HEADER.unpack_from(view, pos)
        start = pos + _HEADER.size
        if magic != MAGIC or length > _MAX_RECORD or start + length > len(view):
            break
        payload = bytes(view[start : start + length])
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        pos = start + length
    return LogContents(records, offset + pos, len(view) - pos)


def _sync(fd: int) -> None:
    sync = getattr(os, "fdatasync", None) or os.fsync  # macOS has no fdatasync
    sync(fd)


class RecordLog:
    """One append-only record log file.

    Args:
        path: The log file (under a store root: no link on the way is followed).
        file_mode: Permission bits of a newly created log.
    """

    def __init__(self, path: Path, *, file_mode: int = 0o600) -> None:
        self.path = path
        self.file_mode = file_mode
        self._known: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) we left

    def read(self, *, offset: int = 0) -> LogContents:
        """The valid records from ``offset`` (a record boundary, e.g. a previous ``end``) on.

        Returns:
            The records; none when the log does not exist.

        Raises:
            UnsafePathError: The log (or a folder on the way) is a symbolic link.
        """
        try:
            fd = nofollow.open_fd(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return LogContents([], 0, 0)
        try:
            size = os.fstat(fd).st_size
            data = os.pread(fd, max(0, size - offset), offset) if size > offset else b""
        finally:
            os.close(fd)
        return parse(data, offset=offset)

    def append(self, payload: bytes, *, lock: StoreLock) -> int:
        """Append one record durably; returns the offset just after it.

        Args:
            payload: The record's bytes.
            lock: The store lock, which this process must hold.

        Returns:
            The log's new valid end.

        Raises:
            StoreLockedError: This process does not hold ``lock``: nothing is written.
            UnsafePathError: The log (or a folder on the way) is a symbolic link.
            OSError: The write failed; the log is cut back to its previous end (if even that
                fails, the error carries ``record_landed = None``: the record may be replayed).
        """
        if not lock.is_held:
            raise StoreLockedError(f"not holding the store lock {lock.path}: nothing written")
        record = frame(payload)
        nofollow.makedirs(self.path.parent)
        created = not nofollow.lexists(self.path)
        fd = nofollow.open_fd(self.path, os.O_RDWR | os.O_CREAT, self.file_mode)
        try:
            self._known = None
            end = self._valid_end(fd)
            try:
                self._write_at(fd, record, end)
                crashpoint("journal.before_sync")
                _sync(fd)
            except OSError as err:
                self._cut_back(fd, end, err)
                raise
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self._known = (st.st_ino, st.st_size, st.st_mtime_ns)
        return end + len(record)

    def _valid_end(self, fd: int) -> int:
        """The end of the valid records; a torn tail after it is cut off (never acknowledged).

        When the file is exactly as this process's last append left it (inode, size, mtime),
        that append's end is trusted (O(1) per append, whatever the log's length); otherwise
        (another process appended or reset it) the whole log is checked before a byte is cut.
        """
        st = os.fstat(fd)
        if self._known == (st.st_ino, st.st_size, st.st_mtime_ns):
            return st.st_size
        contents = parse(os.pread(fd, st.st_size, 0)) if st.st_size else LogContents([], 0, 0)
        if contents.torn:
            os.ftruncate(fd, contents.end)
            _sync(fd)
        return contents.end

    @staticmethod
    def _write_at(fd: int, record: bytes, end: int) -> None:
        view = memoryview(record)
        half = len(view) // 2
        written = 0
        while written < len(view):
            if written >= half:
                crashpoint("journal.mid_record")
            stop = half if written < half else len(view)
            written += os.pwrite(fd, view[written:stop], end + written)

    @staticmethod
    def _cut_back(fd: int, end: int, err: OSError) -> None:
        try:
            os.ftruncate(fd, end)
            _sync(fd)
        except OSError:
            err.record_landed = None  # type: ignore[attr-defined]

    def reset(self, *, lock: StoreLock) -> None:
        """Empty the log (once its records are folded elsewhere), durably.

        Raises:
            StoreLockedError: This process does not hold ``lock``: nothing is changed.
            UnsafePathError: The log (or a folder on the way) is a symbolic link.
        """
        if not lock.is_held:
            raise StoreLockedError(f"not holding the store lock {lock.path}: nothing changed")
        with contextlib.suppress(FileNotFoundError):
            fd = nofollow.open_fd(self.path, os.O_RDWR)
            try:
                os.ftruncate(fd, 0)
                _sync(fd)
            finally:
                os.close(fd)
