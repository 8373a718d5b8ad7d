"""Decode-once cache: each volume decoded once per content version into a chunked, compressed file.

An entry is one blosc2 ``.b2nd`` file (see :mod:`.chunked`): the canonical array in its own
dtype, in small compressed chunks, memory-mapped on read, so a patch read decompresses only the
chunks around the patch and the cache stays smaller than the ``.nii.gz`` files it came from.

The folder is self-describing for whoever tidies it (see :mod:`.cache_upkeep`): a
``CACHEDIR.TAG``, only disposable files, and modification times that record last use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from medstore.datastore import (
    ImageNotFoundError,
    ImageReadError,
    atomic_write_bytes,
    nofollow,
)

from .cache_entry import (
    FORMAT_VERSION,
    CachedVolume,
    Reader,
    VolumeArray,
    digest,
    entry_bytes,
    read_canonical,
    version_of,
)
from .cache_folders import default_user_cache_dir, store_cache_folder, user_cache_folder
from .cache_upkeep import CachePrune, prune_folder, touch
from .chunked import ChunkedArray
from .contiguous import COPY_SUFFIX, copy_path, open_copy, write_copy
from .entry_lock import FolderUnusableError, locked_folder

__all__ = [
    "CachedVolume",
    "VolumeArray",
    "VolumeCache",
    "default_user_cache_dir",
    "read_canonical",
    "store_cache_folder",
    "user_cache_folder",
]

_LOG = logging.getLogger(__name__)
_SUFFIX = ".b2nd"
_LEGACY_SUFFIXES = (".npy", ".json")
"""Files of format-1 entries (an uncompressed ``.npy`` and its geometry), removed when met;
``.npy`` is also the suffix of an entry's uncompressed copy (see :mod:`.contiguous`)."""


class VolumeCache:
    """Decode-once cache of canonical arrays under one folder, shared by processes and workers.

    Each source file (keyed by its real path) has at most one entry per content version
    (``stat`` size/mtime/inode plus the manifest checksum when known): ``<key>-<version>.b2nd``,
    the array chunked and compressed in its own dtype with its geometry inside (see
    :mod:`.chunked`). Entries are written atomically (temp file, fsync, ``os.replace``) under a
    per-source kernel file lock, so concurrent DataLoader workers and processes decode a volume
    once; readers open the file memory-mapped, so every worker shares the OS page cache, and
    decompress only the chunks they read. A changed source gets a new version key and the old
    entry is removed.

    A folder that cannot be written (a store on a read-only mount) or cannot lock (some network
    filesystems) is not used for new entries: the cache moves to ``fallback``, and decodes
    without caching, with one warning, only when that cannot be used either.

    Args:
        folder: Cache folder (created on first write).
        reader: Decoder used on a miss (default :func:`read_canonical`).
        max_open: Opened entries kept per process.
        fallback: Folder used when ``folder`` is unusable (default: a per-user cache folder
            keyed by ``folder``'s path).

    Example:
        >>> import tempfile
        >>> cache = VolumeCache(Path(tempfile.mkdtemp()) / "cache")
        >>> cache.folder.name
        'cache'
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        reader: Reader | None = None,
        max_open: int = 64,
        fallback: str | os.PathLike[str] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._fallback = Path(fallback) if fallback is not None else None
        self._reader = reader
        self._max_open = max_open
        self._open: OrderedDict[str, CachedVolume] = OrderedDict()
        self._copies: dict[str, tuple[Path, tuple[int, ...], np.dtype, CachedVolume]] = {}
        """Entry name -> its copy's file, shape, dtype, and a volume with its geometry."""
        self._real: dict[str, str] = {}
        self._mutex = threading.Lock()
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        state["_copies"] = {}
        del state["_mutex"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mutex = threading.Lock()

    @property
    def fallback(self) -> Path:
        """The folder used when :attr:`folder` cannot be written or locked."""
        if self._fallback is None:
            self._fallback = default_user_cache_dir() / digest(str(self.folder.resolve()))[:16]
        return self._fallback

    def _entry(self, path: str, version: str, checksum: str | None) -> tuple[str, str]:
        """``(source key, entry file name)`` of ``path`` at this content version."""
        real = self._real.get(path)
        if real is None:
            real = self._real[path] = os.path.realpath(path)
        source_key = digest(real)
        version_key = digest(f"{FORMAT_VERSION}|{version}|{checksum or ''}")
        return source_key, f"{source_key}-{version_key}{_SUFFIX}"

    def entry_path(self, path: str, *, checksum: str | None = None) -> Path | None:
        """The entry file that holds ``path`` now, if it has been cached.

        Args:
            path: Source file.
            checksum: Manifest checksum, as passed to :meth:`get`.

        Returns:
            The ``.b2nd`` file, or ``None`` when not cached (or the source is gone).
        """
        try:
            _, name = self._entry(path, version_of(path), checksum)
        except OSError:
            return None
        for folder in (self.folder, self.fallback):
            if (folder / name).is_file():
                return folder / name
        return None

    def get(
        self,
        path: str,
        *,
        checksum: str | None = None,
        what: str = "image",
        keep_open: bool = True,
        contiguous: bool = False,
    ) -> CachedVolume:
        """Return the cached volume for ``path``, decoding and storing it on a miss.

        Args:
            path: Source image or label file (or DICOM series folder).
            checksum: Manifest checksum, mixed into the version key when known.
            what: Human name used in errors, e.g. ``"image 'case_1'"``.
            keep_open: Keep the opened entry among the ``max_open`` this process holds (for
                slices or patches read one after another). ``False`` for a volume read whole
                once: an entry opened for this call is dropped with the returned volume; one
                already held open is returned as it is.
            contiguous: Return the entry's uncompressed copy, memory-mapped (written beside
                the entry on first use; see :mod:`.contiguous`), for reads of the whole volume
                or of plane after plane. Falls back to the compressed entry when the copy
                cannot be written.

        Returns:
            The volume; its ``array`` is a memory-mapped :class:`~.chunked.ChunkedArray` when
            the cache is usable.

        Raises:
            ImageNotFoundError: The source file no longer exists.
            ImageReadError: The source or its cache entry cannot be read.
        """
        try:
            version = version_of(path)
        except FileNotFoundError as err:
            raise ImageNotFoundError(
                f"{what}: file {path} no longer exists (removed since the dataset was built)"
            ) from err
        except OSError as err:
            raise ImageReadError(f"{what}: cannot stat {path}: {err}") from err
        source_key, name = self._entry(path, version, checksum)
        key = name[: -len(_SUFFIX)] + COPY_SUFFIX if contiguous else name
        with self._mutex:
            hit = self._open.get(key)
            if hit is not None:
                self._open.move_to_end(key)
                return hit
            volume = self._open.get(name)
        if volume is None and contiguous:
            volume = self._known_copy(name)
            if volume is not None and not keep_open:
                return volume
        if volume is None:
            volume = self._lookup(name)
        if volume is None:
            volume = self._fill(path, source_key, name, what)
        if not isinstance(volume.array, ChunkedArray):
            return volume  # decoded without caching
        if contiguous and isinstance(volume.array, ChunkedArray):
            volume = self._contiguous(volume, source_key, name)
            key = key if isinstance(volume.array, np.ndarray) else name
        if not keep_open:
            return volume
        with self._mutex:
            self._open[key] = volume
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return volume

    def _contiguous(self, volume: CachedVolume, source_key: str, name: str) -> CachedVolume:
        """``volume`` with its entry's uncompressed copy as array (written when missing).

        The copy goes beside the entry, under the source's lock, so workers write it once;
        where it cannot be written, ``volume`` itself is returned.
        """
        array = volume.array
        assert isinstance(array, ChunkedArray)
        target = copy_path(array.path)
        copy = open_copy(target, array.shape, array.dtype)
        if copy is None:
            try:
                with locked_folder(array.path.parent, source_key):
                    copy = open_copy(target, array.shape, array.dtype)
                    if copy is None:
                        copy = write_copy(array.path, array)
            except FolderUnusableError:
                copy = None
        if copy is None:
            return volume
        known = dataclasses.replace(volume, array=np.empty((0,), array.dtype))  # no map kept
        with self._mutex:
            self._copies[name] = (target, array.shape, array.dtype, known)
        return dataclasses.replace(volume, array=copy)

    def _known_copy(self, name: str) -> CachedVolume | None:
        """The copy of entry ``name`` read before in this process, without opening the entry.

        The copy's name carries the entry's content key, so a copy of the right shape and
        dtype still at its place holds this version; its use is recorded as the entry's.
        """
        with self._mutex:
            known = self._copies.get(name)
        if known is None:
            return None
        target, shape, dtype, volume = known
        copy = open_copy(target, shape, dtype)
        if copy is None:
            with self._mutex:
                self._copies.pop(name, None)
            return None
        touch(target)  # last use of the entry (pruned by stem, with its copy)
        return dataclasses.replace(volume, array=copy)

    def _lookup(self, name: str) -> CachedVolume | None:
        """An existing entry in the folder, else in the fallback folder (recording the use)."""
        for folder in (self.folder, self.fallback):
            volume = self._load(folder / name)
            if volume is not None:
                touch(folder / name)  # mtime = last use, for age-based pruning
                return volume
        return None

    @staticmethod
    def _load(entry: Path) -> CachedVolume | None:
        """Open an existing entry, or ``None`` when it is absent or unreadable."""
        try:
            array = ChunkedArray.open(entry)
            header = array.header
        except (OSError, ValueError):
            return None
        if list(array.shape) != header.get("shape") or str(array.dtype) != header.get("dtype"):
            return None
        return CachedVolume(
            array=array,
            affine=np.asarray(header["affine"], dtype=np.float64),
            spacing=tuple(header["spacing"]),
            meta=header.get("meta", {}),
        )

    def _decode(self, path: str, what: str) -> CachedVolume:
        reader = self._reader or read_canonical
        try:
            return reader(path)
        except FileNotFoundError as err:
            raise ImageNotFoundError(f"{what}: file {path} no longer exists") from err

    def _fill(self, path: str, source_key: str, name: str, what: str) -> CachedVolume:
        """Decode ``path`` once (under a per-source lock) and publish the entry.

        Tries the folder, then the fallback folder; decodes without caching, with one warning,
        when neither can be created, written and locked.
        """
        problems: list[str] = []
        decoded: CachedVolume | None = None
        for folder in (self.folder, self.fallback):
            try:
                with locked_folder(folder, source_key):
                    existing = self._load(folder / name)
                    if existing is not None:
                        return existing
                    if decoded is None:
                        decoded = self._decode(path, what)
                    entry = folder / name
                    try:
                        atomic_write_bytes(entry, entry_bytes(decoded, path), point="cache.entry")
                    except OSError as err:
                        raise FolderUnusableError(f"cannot write {entry.name}: {err}") from err
                    self._drop_stale(folder, source_key, entry)
                    return self._load(entry) or decoded
            except FolderUnusableError as err:
                problems.append(f"{folder}: {err}")
        self._warn_uncached(problems)
        return decoded if decoded is not None else self._decode(path, what)

    def prune(self, *, older_than_days: float, dry_run: bool = False) -> CachePrune:
        """Remove the entries not used for ``older_than_days`` (see :func:`.prune_folder`).

        Args:
            older_than_days: Minimum time since an entry's last use.
            dry_run: Report without deleting.

        Returns:
            What was (or would be) removed.

        Example:
            >>> import tempfile
            >>> VolumeCache(Path(tempfile.mkdtemp())).prune(older_than_days=30)
            CachePrune(entries=0, bytes_freed=0)
        """
        return prune_folder(self.folder, older_than_days=older_than_days, dry_run=dry_run)

    @staticmethod
    def _drop_stale(folder: Path, source_key: str, keep: Path) -> None:
        """Remove entries of older versions of the same source (and format-1 leftovers)."""
        for old in folder.glob(f"{source_key}-*"):
            if old.name != keep.name and old.suffix in (_SUFFIX, ".npz", *_LEGACY_SUFFIXES):
                # older versions' entries, class locations and uncompressed copies
                with contextlib.suppress(OSError):  # never through a link under a store
                    nofollow.unlink(old)

    def _warn_uncached(self, problems: list[str]) -> None:
        if not self._warned:
            _LOG.warning(
                "no usable cache folder (%s); decoding without caching", "; ".join(problems)
            )
            self._warned = True

    def prefetch(
        self, sources: Iterable[tuple[str, str | None, str]], *, progress: bool = True
    ) -> int:
        """Fill the cache for ``(path, checksum, what)`` triples, with a tqdm progress bar.

        Args:
            sources: Triples as accepted by :meth:`get`.
            progress: Show a progress bar.

        Returns:
            The number of sources processed.
        """
        from tqdm.auto import tqdm

        items = list(sources)
        for path, checksum, what in tqdm(items, desc="medstore cache", disable=not progress):
            self.get(path, checksum=checksum, what=what, keep_open=False)
        return len(items)

    def clear(self) -> None:
        """Forget open entries and delete every cache entry in the folder."""
        with self._mutex:
            self._open.clear()
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                if entry.suffix in (_SUFFIX, ".npz", ".lock", *_LEGACY_SUFFIXES):
                    with contextlib.suppress(OSError):  # never through a link under a store
                        nofollow.unlink(entry)
