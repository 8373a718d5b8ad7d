"""Durable file replacement: temp file in the same folder, fsync, ``os.replace``, fsync the folder.

This is the write protocol for every file medstore replaces (manifest, labels, images,
side files). A failure at any step leaves the previous file intact and removes the temp file.
Under a store root (see :mod:`.nofollow`) no symbolic link below the root is followed: the folder
is walked from the root without following links, the temp file is created and moved relative to
that folder's descriptor, and a final name that is itself a link is refused
(:class:`~.errors.UnsafePathError`), never written through.

Each step passes a named crash point (:func:`~.crashpoints.crashpoint`, a test-only hook).

Examples:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_bytes(d / "a.json", b"{}")
    >>> (d / "a.json").read_bytes()
    b'{}'
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import nofollow
from .crashpoints import crashpoint

__all__ = [
    "atomic_copy",
    "atomic_write_bytes",
    "atomic_write_chunks",
    "chmod_if_supported",
    "create_durable",
    "current_umask",
    "fsync_dir",
    "new_file_mode",
]

_CHUNK = 1 << 20
_NO_CHMOD = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
_IS_WINDOWS = os.name == "nt"


def current_umask() -> int:
    """Return the process umask without changing it (Linux reads ``/proc``; else a brief swap).

    Returns:
        The umask bits, e.g. ``0o022``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(mode: int | None = None) -> int:
    """Permission bits for a newly created file: ``mode`` if given, else 0o666 minus the umask.

    Args:
        mode: An explicit mode (e.g. ``0o600`` for patient data), or ``None``.

    Returns:
        The permission bits.
    """
    return mode if mode is not None else 0o666 & ~current_umask()


def chmod_if_supported(path: str | os.PathLike[str] | int, mode: int) -> bool:
    """Set permission bits on a file this process just created; skip where the filesystem can't.

    exFAT and FAT (kernel driver) answer ``EPERM`` for a mode they cannot represent, some FUSE
    and network filesystems ``ENOTSUP``/``ENOSYS``: there the bits are not kept, the write goes on.

    Args:
        path: A file owned by this process (or its open descriptor).
        mode: The permission bits.

    Returns:
        Whether the bits were set.

    Examples:
        >>> import tempfile
        >>> chmod_if_supported(tempfile.mkstemp()[1], 0o600)
        True
    """
    try:
        os.chmod(path, mode)
    except OSError as err:
        if err.errno not in _NO_CHMOD:
            raise
        return False
    return True


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries to disk (no-op on Windows, which cannot open folders).

    Args:
        path: The folder.
    """
    if _IS_WINDOWS:
        return
    with nofollow.folder(path) as folder:
        folder.sync()


def _replace(folder: nofollow.Folder, tmp: str, name: str) -> None:
    """``os.replace`` within ``folder``, retried briefly on Windows while a reader holds it."""
    for attempt in range(50 if _IS_WINDOWS else 1):
        try:
            os.replace(
                folder.name(tmp), folder.name(name), src_dir_fd=folder.fd, dst_dir_fd=folder.fd
            )
            return
        except PermissionError:
            if not _IS_WINDOWS or attempt == 49:
                raise
            time.sleep(0.02)


def _target_mode(folder: nofollow.Folder, name: str, mode: int | None) -> tuple[int, int | None]:
    """Mode bits and group id the replacement should carry (those of the file it replaces).

    Raises:
        UnsafePathError: Under a store root, ``name`` is a symbolic link.
    """
    try:
        st = os.stat(folder.name(name), dir_fd=folder.fd, follow_symlinks=not folder.confined)
    except FileNotFoundError:
        return new_file_mode(mode), None
    if stat.S_ISLNK(st.st_mode):
        raise nofollow.refusal(folder.path / name)
    return stat.S_IMODE(st.st_mode), st.st_gid


def _create_temp(folder: nofollow.Folder, name: str) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` in ``folder`` (mode 0o600, like ``tempfile.mkstemp``)."""
    for _ in range(100):
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            return folder.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(folder.path))


def _set_owner(fd: int, path: str, bits: int, gid: int | None) -> None:
    """Give the temp file the bits and group it should keep (through its descriptor)."""
    target: int | str = fd if os.chmod in os.supports_fd else path
    chmod_if_supported(target, bits)
    if gid is not None and hasattr(os, "chown"):
        with contextlib.suppress(OSError):
            os.chown(target, -1, gid)


@contextlib.contextmanager
def _durable_temp(dest: Path, mode: int | None, point: str) -> Iterator[BinaryIO]:
    """Yield a temp file beside ``dest``; on clean exit make it durable and move it over."""
    dest = Path(dest)
    with nofollow.parent(dest) as (folder, name):
        bits, gid = _target_mode(folder, name, mode)
        fd, tmp = _create_temp(folder, name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                crashpoint(f"{point}.mid_write")
                handle.flush()
                os.fsync(handle.fileno())
                _set_owner(handle.fileno(), folder.name(tmp), bits, gid)
            crashpoint(f"{point}.before_replace")
            _replace(folder, tmp, name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder.name(tmp), dir_fd=folder.fd)
            raise
        crashpoint(f"{point}.before_dir_fsync")
        if not _IS_WINDOWS:
            folder.sync()


def atomic_write_bytes(
    dest: str | os.PathLike[str], data: bytes, *, mode: int | None = None, point: str = "write"
) -> None:
    """Durably replace ``dest`` with ``data``.

    The replacement keeps the permission bits and group of the file it replaces; a new file gets
    ``mode`` or, when ``None``, the process umask's default.

    Args:
        dest: Final path.
        data: The complete new content.
        mode: Permission bits for a new file.
        point: Crash-point prefix for tests (``"<point>.mid_write"`` etc.).

    Raises:
        UnsafePathError: Under a store root, a component of ``dest`` (or ``dest`` itself) is a
            symbolic link: nothing is written.
        OSError: Any failure; ``dest`` is then unchanged and no temp file is left.
    """
    view = memoryview(data)  # halves without copying (a manifest may be hundreds of MB)
    with _durable_temp(Path(dest), mode, point) as handle:
        half = len(view) // 2
        handle.write(view[:half])
        crashpoint(f"{point}.half_written")
        handle.write(view[half:])


def atomic_write_chunks(
    dest: str | os.PathLike[str],
    chunks: Iterable[bytes | memoryview],
    *,
    mode: int | None = None,
    point: str = "write",
) -> None:
    """Durably replace ``dest`` with the concatenation of ``chunks``, never all in memory.

    As :func:`atomic_write_bytes`, for content produced piece by piece (e.g. a large array
    decompressed layer by layer).

    Args:
        dest: Final path.
        chunks: The content, in order (consumed once).
        mode: Permission bits for a new file.
        point: Crash-point prefix for tests (``"<point>.mid_write"`` etc.).

    Raises:
        UnsafePathError: Under a store root, a component of ``dest`` (or ``dest`` itself) is a
            symbolic link: nothing is written.
        OSError: Any failure; ``dest`` is then unchanged and no temp file is left (as when
            ``chunks`` raises, which propagates).

    Example:
        >>> import tempfile
        >>> dest = Path(tempfile.mkdtemp()) / "out.bin"
        >>> atomic_write_chunks(dest, iter([b"ab", memoryview(b"cd")]))
        >>> dest.read_bytes()
        b'abcd'
    """
    with _durable_temp(Path(dest), mode, point) as handle:
        for chunk in chunks:
            handle.write(chunk)


def atomic_copy(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    mode: int | None = None,
    point: str = "copy",
    on_chunk: Callable[[bytes], None] | None = None,
) -> None:
    """Durably replace ``dest`` with a copy of ``src`` (streamed, never wholly in memory).

    Args:
        src: File to copy.
        dest: Final path.
        mode: Permission bits for a new file.
        point: Crash-point prefix for tests.
        on_chunk: Called with each chunk copied (to hash or report progress on the way).

    Raises:
        UnsafePathError: Under a store root, a component of ``dest`` (or ``dest`` itself) is a
            symbolic link: nothing is written.
        OSError: Any failure; ``dest`` is then unchanged and no temp file is left.
    """
    with open(src, "rb") as source, _durable_temp(Path(dest), mode, point) as handle:
        if on_chunk is None:
            shutil.copyfileobj(source, handle, _CHUNK)
            return
        while chunk := source.read(_CHUNK):
            handle.write(chunk)
            on_chunk(chunk)


def _readable(src: str | os.PathLike[str] | BinaryIO) -> contextlib.AbstractContextManager[Any]:
    """``src`` opened for reading, or ``src`` itself when already open (then left open)."""
    if isinstance(src, str | os.PathLike):
        return open(src, "rb")
    return contextlib.nullcontext(src)


def create_durable(
    dest: str | os.PathLike[str],
    *,
    src: str | os.PathLike[str] | BinaryIO | None = None,
    data: bytes = b"",
    mode: int | None = None,
    on_chunk: Callable[[bytes], None] | None = None,
) -> None:
    """Create a *new* file (never replacing one) from ``src`` or ``data`` and fsync it.

    The folder is not fsynced: callers creating many files fsync it once afterwards. On failure
    the partial file is removed.

    Args:
        dest: A path that must not exist yet.
        src: File to copy (a path, or a file open for reading, read from where it stands), or
            ``None`` to write ``data``.
        data: Content when ``src`` is ``None``.
        mode: Permission bits (``None``: the umask's default).
        on_chunk: Called with each chunk copied.

    Raises:
        FileExistsError: ``dest`` exists.
        UnsafePathError: Under a store root, a component of ``dest`` is a symbolic link.
        OSError: Any other failure.
    """
    with nofollow.parent(dest) as (folder, name):
        final = folder.name(name)
        fd = folder.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, new_file_mode(mode))
        try:
            with os.fdopen(fd, "wb") as handle:
                if src is None:
                    handle.write(data)
                else:
                    with _readable(src) as source:
                        while chunk := source.read(_CHUNK):
                            handle.write(chunk)
                            if on_chunk is not None:
                                on_chunk(chunk)
                crashpoint("create.before_fsync")
                handle.flush()
                os.fsync(handle.fileno())
                if mode is not None:
                    _set_owner(handle.fileno(), final, mode, None)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(final, dir_fd=folder.fd)
            raise
