"""A read-only file for pydicom that refuses reads longer than what remains (hostile lengths).

pydicom reads a value by asking the file for its declared length; a hostile or corrupt length
would make it allocate gigabytes. DICOM files are therefore handed to pydicom through
:class:`GuardedFile`.

Examples:
    >>> from pydicom.data import get_testdata_file
    >>> with GuardedFile(get_testdata_file("CT_small.dcm")) as fh:
    ...     fh.seek(128); fh.read(4)
    128
    b'DICM'
"""

from __future__ import annotations

import io
import os
from typing import Any

from ..errors import ImageReadError

__all__ = ["GuardedFile"]

_SMALL_READ = 12  # tag + VR + length reads may legitimately run into the end of file


class GuardedFile(io.RawIOBase):
    """A read-only file whose ``read(n)`` refuses ``n`` beyond the bytes that remain.

    Args:
        path: The file to open (binary, read-only; closed by :meth:`close`).

    Raises:
        OSError: The file cannot be opened.

    Examples:
        >>> from pydicom.data import get_testdata_file
        >>> with GuardedFile(get_testdata_file("CT_small.dcm")) as fh:
        ...     fh.size > 132
        True
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._size = os.fstat(self._fh.fileno()).st_size
        self.name = os.fspath(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return self._fh.read()
        remaining = self._size - self._fh.tell()
        if n > remaining and n > _SMALL_READ:
            raise ImageReadError(
                f"{self.name}: a DICOM element declares {n} bytes at offset "
                f"{self._fh.tell()} but only {max(remaining, 0)} remain (corrupt or hostile length)"
            )
        return self._fh.read(n)

    def readinto(self, buf: Any) -> int:
        return self._fh.readinto(buf)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    @property
    def size(self) -> int:
        """Size of the file in bytes when it was opened."""
        return self._size

    def close(self) -> None:
        self._fh.close()
        super().close()
