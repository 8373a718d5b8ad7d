"""Open a file the store is about to copy in: a regular file, checked on the descriptor copied.

``add_image``, ``save_label`` and the imports check a source's type before they copy it, but a
path can be replaced between that check and the copy. :func:`open_regular` therefore opens the
source with ``O_NONBLOCK`` (opening a FIFO never waits for a writer), checks the *opened* file with
``fstat``: a regular file (never a FIFO, a device such as ``/dev/zero`` whose reads never end, or
a socket), the same file the path named just before. The copy then reads that descriptor.

Examples:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.nii"), "wb") as f:
    ...     _ = f.write(b"data")
    >>> with open_regular(os.path.join(folder, "a.nii")) as source:
    ...     source.read()
    b'data'
    >>> os.mkfifo(os.path.join(folder, "pipe.nii"))
    >>> try:
    ...     open_regular(os.path.join(folder, "pipe.nii"))
    ... except ImageReadError as err:
    ...     print(str(err).split(": ")[-1])
    not a regular file (a FIFO, device or socket)
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from .. import nofollow
from ..errors import ImageReadError

__all__ = ["open_regular", "read_regular"]

_NOT_REGULAR = "not a regular file (a FIFO, device or socket)"

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def open_regular(path: str | os.PathLike[str], *, own: bool = False) -> BinaryIO:
    """Open ``path`` for reading, refusing anything but the regular file it names.

    Args:
        path: The source file (links are followed: a source may live anywhere).
        own: The file is one of the store's own (a kept label version, a trashed image): it is
            opened without following a link at any component below the store root
            (:mod:`..nofollow`), so a planted link never brings a file from elsewhere in.

    Returns:
        The open file, in blocking mode again, positioned at its start.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: ``path`` is not a regular file, or was replaced while being opened.
        UnsafePathError: ``own`` and a component below the store root is a symbolic link.
    """
    shown = os.fspath(path)
    before = nofollow.lstat(path) if own else os.stat(path)
    if own and stat.S_ISLNK(before.st_mode):
        raise nofollow.refusal(shown)
    if not stat.S_ISREG(before.st_mode):  # never opened at all
        raise ImageReadError(f"{shown}: {_NOT_REGULAR}")
    fd = nofollow.open_fd(path, _FLAGS) if own else os.open(path, _FLAGS)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise ImageReadError(f"{shown}: {_NOT_REGULAR}")
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise ImageReadError(f"{shown}: replaced by another file while being opened")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The whole content of the regular file ``path`` (a FIFO or device fails at once).

    Args:
        path: A stored image or label file (a ``--link`` image is read where it points).

    Returns:
        Its bytes.

    Raises:
        IsADirectoryError: ``path`` is a folder (a DICOM series), as ``open`` says.
        ImageReadError: ``path`` is a FIFO, a device or a socket.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory", os.fspath(path))
    with open_regular(path) as source:
        return source.read()
