"""Paths inside a store, opened, created, replaced and removed without following symbolic links.

The rule: below a store's root, no component of a path medstore writes (or removes, or lists to
decide what to write) is ever followed when it is a symbolic link. A folder swapped for a link
to somewhere else (``labels/final``, ``.medstore/history``), or a file planted as one
(``.medstore/splits.jsonl``), is refused with :class:`~.errors.UnsafePathError` naming the link;
nothing is written where it points. Two exceptions, on purpose: the store root itself may be a
link (it is opened once, following it), and images added with ``link=True`` are read where their
link points (never written: replacing or removing one replaces or removes the link itself).

How: a store registers its root with :func:`confine` when it opens. For any path under
a registered root, every function here opens the root, then each folder below it with
``O_NOFOLLOW | O_DIRECTORY`` relative to the one above (``openat``-style, so a link swapped in
mid-way cannot redirect the walk), and acts on the final name relative to its parent's
descriptor (``dir_fd``, ``src_dir_fd``/``dst_dir_fd``; a final component opened as a file also
gets ``O_NOFOLLOW``). A rename or unlink acts on the final entry itself, never on a link's target:
:mod:`.durable` refuses to replace a final name that is a link, while a transaction step replacing
or removing a ``--link`` image moves or removes the link itself.
Paths under no registered root (a user's export folder) behave as the plain ``os`` calls do.
Where the platform has no ``dir_fd`` (Windows), each component is checked with ``lstat`` instead.

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> confine(root)
    >>> makedirs(root / "labels" / "final")
    >>> (root / "elsewhere").symlink_to(root / "labels")
    >>> makedirs(root / "elsewhere" / "final")
    Traceback (most recent call last):
    ...
    medstore.datastore.errors.UnsafePathError: refusing to go through the symbolic link ...
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UnsafePathError

__all__ = [
    "Folder",
    "confine",
    "confining_root",
    "copy_tree",
    "folder",
    "is_link",
    "is_real_dir",
    "lexists",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "open_fd",
    "parent",
    "read_bytes",
    "refusal",
    "replace",
    "rmtree",
    "symlink",
    "unlink",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_HAS_DIR_FD = bool(_NOFOLLOW) and {os.open, os.mkdir, os.stat, os.unlink} <= os.supports_dir_fd
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})  # BSDs differ from Linux
_CHUNK = 1 << 20
_ROOTS: set[str] = set()


def confine(root: str | os.PathLike[str]) -> None:
    """Register a store root: from now on no link below it is followed by this module.

    Args:
        root: The store folder (it may itself be a symbolic link).
    """
    _ROOTS.add(os.path.abspath(root))


def confining_root(path: str | os.PathLike[str]) -> str | None:
    """The registered store root ``path`` lies under (the nearest one), or ``None``.

    Examples:
        >>> confine("/data/store_a")
        >>> confining_root("/data/store_a/labels/final/x.nii.gz")
        '/data/store_a'
        >>> confining_root("/data/other/x.nii.gz") is None
        True
    """
    current = os.path.abspath(path)
    while True:
        if current in _ROOTS:
            return current
        up = os.path.dirname(current)
        if up == current:
            return None
        current = up


def refusal(shown: str | os.PathLike[str]) -> UnsafePathError:
    """The error refusing the link ``shown`` (named in the message)."""
    return UnsafePathError(
        f"refusing to go through the symbolic link {shown}: inside a store medstore never "
        "follows links (only the store folder itself, and images added with link=True, may be "
        "links)"
    )


@dataclass(frozen=True)
class Folder:
    """An open folder: entries are addressed by :meth:`name` relative to :attr:`fd`.

    Attributes:
        path: The folder's path (for messages).
        fd: Its descriptor, or ``None`` where the platform has no ``dir_fd`` (then names are
            full paths).
        confined: Whether it lies under a registered store root (links are refused there).
    """

    path: Path
    fd: int | None
    confined: bool

    def name(self, entry: str) -> str:
        """What to pass, with ``dir_fd=self.fd``, to address ``entry`` in this folder."""
        return entry if self.fd is not None else os.path.join(self.path, entry)

    def open(self, entry: str, flags: int, mode: int = 0o666) -> int:
        """``os.open`` an entry; a link there is refused when :attr:`confined`."""
        flags |= _CLOEXEC | (_NOFOLLOW if self.confined else 0)
        try:
            return os.open(self.name(entry), flags, mode, dir_fd=self.fd)
        except OSError as err:
            if self.confined and err.errno in _LINK_ERRNOS and self.is_link(entry):
                raise refusal(self.path / entry) from err
            raise

    def lstat(self, entry: str) -> os.stat_result:
        """The entry's own status (a link is not followed)."""
        return os.stat(self.name(entry), dir_fd=self.fd, follow_symlinks=False)

    def is_link(self, entry: str) -> bool:
        """Whether the entry is a symbolic link."""
        try:
            return stat.S_ISLNK(self.lstat(entry).st_mode)
        except OSError:
            return False

    def lexists(self, entry: str) -> bool:
        """Whether the entry exists (a dangling link counts)."""
        try:
            self.lstat(entry)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def is_real_dir(self, entry: str) -> bool:
        """Whether the entry is a folder (not a link to one)."""
        try:
            return stat.S_ISDIR(self.lstat(entry).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def sync(self) -> None:
        """Flush the folder's entries to disk (no-op without a descriptor)."""
        if self.fd is not None:
            os.fsync(self.fd)


def _open_dir(parent: Folder, entry: str, *, create: bool) -> Folder:
    """Open (or create) the sub-folder ``entry`` of ``parent``, never through a link."""
    path = parent.path / entry
    if parent.fd is None:
        if parent.confined and os.path.islink(path):
            raise refusal(path)
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
        if not os.path.isdir(path):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
        return Folder(path, None, parent.confined)
    try:
        fd = parent.open(entry, os.O_RDONLY | _DIRECTORY)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(entry, 0o777, dir_fd=parent.fd)
        fd = parent.open(entry, os.O_RDONLY | _DIRECTORY)
    return Folder(path, fd, parent.confined)


def _close(handle: Folder) -> None:
    if handle.fd is not None:
        os.close(handle.fd)


def _open_root(root: str, *, create: bool) -> int | None:
    """Open a store root, following it (the root itself may be a link)."""
    if not _HAS_DIR_FD:
        if create:
            os.makedirs(root, exist_ok=True)
        return None
    try:
        return os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise
    os.makedirs(root, exist_ok=True)
    return os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)


@contextlib.contextmanager
def folder(path: str | os.PathLike[str], *, create: bool = False) -> Iterator[Folder]:
    """Hold a folder open, walked from its store root without following links.

    Args:
        path: The folder.
        create: Create it (and missing folders above it, up to the root) when missing.

    Yields:
        The open folder.

    Raises:
        UnsafePathError: A component below the store root is a symbolic link.
        FileNotFoundError: A component is missing and ``create`` is false.
    """
    full = Path(os.path.abspath(path))
    root = confining_root(full)
    if root is None:
        if create:
            os.makedirs(full, exist_ok=True)
        fd = os.open(full, os.O_RDONLY | _DIRECTORY | _CLOEXEC) if _HAS_DIR_FD else None
        current = Folder(full, fd, False)
    else:
        current = Folder(Path(root), _open_root(root, create=create), True)
        try:
            for part in full.relative_to(root).parts:
                step = _open_dir(current, part, create=create)
                _close(current)
                current = step
        except BaseException:
            _close(current)
            raise
    try:
        yield current
    finally:
        _close(current)


@contextlib.contextmanager
def parent(path: str | os.PathLike[str], *, create: bool = False) -> Iterator[tuple[Folder, str]]:
    """Hold ``path``'s folder open (see :func:`folder`); yield it with ``path``'s final name."""
    full = os.path.abspath(path)
    with folder(os.path.dirname(full), create=create) as held:
        yield held, os.path.basename(full)


def open_fd(path: str | os.PathLike[str], flags: int, mode: int = 0o666) -> int:
    """``os.open`` a file under a store; a link anywhere below the root is refused."""
    with parent(path) as (held, name):
        return held.open(name, flags, mode)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of a file under a store, opened without following links."""
    with os.fdopen(open_fd(path, os.O_RDONLY), "rb") as handle:
        return handle.read()


def lstat(path: str | os.PathLike[str]) -> os.stat_result:
    """The status of ``path`` itself (a final link is not followed, an earlier one refused)."""
    with parent(path) as (held, name):
        return held.lstat(name)


def lexists(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` exists as an entry (a dangling link counts)."""
    try:
        with parent(path) as (held, name):
            return held.lexists(name)
    except (FileNotFoundError, NotADirectoryError):  # a folder on the way is missing
        return False


def is_link(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a symbolic link."""
    try:
        return stat.S_ISLNK(lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def is_real_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder (not a link to one)."""
    try:
        with parent(path) as (held, name):
            return held.is_real_dir(name)
    except (FileNotFoundError, NotADirectoryError):  # a folder on the way is missing
        return False


def makedirs(path: str | os.PathLike[str]) -> None:
    """Create a folder and the missing ones above it (``exist_ok``), never through a link."""
    with folder(path, create=True):
        pass


def listdir(path: str | os.PathLike[str]) -> list[str]:
    """The names in a folder, opened without following links."""
    with folder(path) as held:
        return os.listdir(held.fd if held.fd is not None else held.path)


def replace(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """``os.replace`` of two entries (a link at either end is moved or replaced, not followed)."""
    with parent(src) as (a, a_name), parent(dest) as (b, b_name):
        os.replace(a.name(a_name), b.name(b_name), src_dir_fd=a.fd, dst_dir_fd=b.fd)


def link(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Hard-link the entry ``src`` (a link itself, not its target) as ``dest``."""
    with parent(src) as (a, a_name), parent(dest) as (b, b_name):
        os.link(
            a.name(a_name),
            b.name(b_name),
            src_dir_fd=a.fd,
            dst_dir_fd=b.fd,
            follow_symlinks=False,
        )


def unlink(path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
    """Remove a file or link (never a link's target)."""
    try:
        with parent(path) as (held, name):
            os.unlink(held.name(name), dir_fd=held.fd)
    except (FileNotFoundError, NotADirectoryError):
        if not missing_ok:
            raise


def rmtree(path: str | os.PathLike[str], *, ignore_errors: bool = False) -> None:
    """Remove a folder tree (a link is refused, never followed)."""
    try:
        with parent(path) as (held, name):
            if held.fd is None:
                shutil.rmtree(held.name(name))
            else:
                shutil.rmtree(name, dir_fd=held.fd)
    except OSError:
        if not ignore_errors:
            raise


def symlink(target: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Create the link ``path`` pointing at ``target`` (``--link`` images)."""
    with parent(path) as (held, name):
        os.symlink(target, held.name(name), dir_fd=held.fd)


def copy_tree(src: str | os.PathLike[str], dest: str | os.PathLike[str], *, mode: int) -> None:
    """Copy the folder ``src`` to the new folder ``dest``, every file fsynced.

    ``src`` is read as given (a user's DICOM series folder, links inside it followed like
    ``shutil.copytree``); ``dest`` is created without following links.

    Args:
        src: The folder to copy.
        dest: A path that must not exist yet.
        mode: Permission bits of the new files.
    """
    with parent(dest) as (held, name):
        os.mkdir(held.name(name), 0o777, dir_fd=held.fd)
        target = _open_dir(held, name, create=False)
        try:
            _copy_into(Path(src), target, mode)
        finally:
            _close(target)


def _copy_into(src: Path, target: Folder, mode: int) -> None:
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        if entry.is_dir():
            os.mkdir(target.name(entry.name), 0o777, dir_fd=target.fd)
            sub = _open_dir(target, entry.name, create=False)
            try:
                _copy_into(Path(entry.path), sub, mode)
            finally:
                _close(sub)
        elif entry.is_file():
            fd = target.open(entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with open(entry.path, "rb") as source, os.fdopen(fd, "wb") as copy:
                shutil.copyfileobj(source, copy, _CHUNK)
                copy.flush()
                os.fsync(copy.fileno())
    target.sync()
