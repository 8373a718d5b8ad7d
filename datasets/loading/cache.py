"""Decode-once cache: each volume decoded once per content version into an mmap-read ``.npy``.

The folder is self-describing for whoever tidies it (see :mod:`.cache_upkeep`): a
``CACHEDIR.TAG``, only disposable files, and modification times that record last use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from medstore.datastore import (
    ImageNotFoundError,
    ImageReadError,
    StoreLayout,
    atomic_write_bytes,
)

from .cache_upkeep import CachePrune, prune_folder, tag_folder, touch

__all__ = [
    "CachedVolume",
    "VolumeCache",
    "default_user_cache_dir",
    "read_canonical",
    "store_cache_folder",
]

_LOG = logging.getLogger(__name__)
_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class CachedVolume:
    """A decoded volume: a read-only (usually memory-mapped) array and its geometry.

    Attributes:
        array: Channels-first canonical array, ``(C, D, H, W)`` or ``(C, H, W)``.
        affine: 4x4 RAS+ affine of the array's voxel grid.
        spacing: Voxel size following the array's spatial axes.
        meta: JSON-safe header facts from the reader.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, ...]
    meta: dict[str, Any] = field(default_factory=dict)


Reader = Callable[[str], CachedVolume]


def read_canonical(path: str) -> CachedVolume:
    """Decode one image with :func:`medstore.datastore.imaging.read_image` (canonical layout).

    Args:
        path: Image file or DICOM series folder.

    Returns:
        The decoded volume (in memory, not cached).

    Raises:
        ImageReadError: The file cannot be decoded.
        UnsupportedFormatError: No reader handles it.
    """
    from medstore.datastore.imaging import read_image

    data = read_image(path)
    return CachedVolume(
        array=np.asarray(data.array),
        affine=np.asarray(data.affine, dtype=np.float64),
        spacing=tuple(float(s) for s in data.spacing),
        meta=_json_safe(dict(getattr(data, "meta", {}) or {})),
    )


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    """Keep the JSON-serialisable scalar/list entries of a reader's meta dict."""
    safe: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[str(key)] = value
    return safe


def default_user_cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/medstore`` or ``~/.cache/medstore``.

    Returns:
        The folder path (not created).

    Example:
        >>> default_user_cache_dir().name
        'medstore'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medstore"


def store_cache_folder(store: Any, root: Path) -> Path:
    """Default cache folder of a store: the one its layout names, or the user cache if read-only.

    A writable store's layout names ``.medstore/cache``; a read-only store gets a folder of the
    user cache, keyed by the store's path.

    Args:
        store: The store (``read_only`` and ``layout.cache`` or ``side_path`` are consulted).
        root: Its folder.

    Returns:
        The folder (not created).
    """
    if not getattr(store, "read_only", False):
        named = getattr(getattr(store, "layout", None), "cache", None)  # the store's own name
        return named if isinstance(named, Path) else StoreLayout.at(root).cache
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return default_user_cache_dir() / digest


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _version_of(path: str) -> str:
    """Content-version fingerprint from ``stat`` (a folder: every entry's stat)."""
    st = os.stat(path)
    if not os.path.isdir(path):
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    parts = []
    with os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            est = entry.stat()
            parts.append(f"{entry.name}:{est.st_size}:{est.st_mtime_ns}:{est.st_ino}")
    return _digest("|".join(parts))


class VolumeCache:
    """Decode-once cache of canonical arrays under one folder, shared by processes and workers.

    Each source file (keyed by its real path) has at most one entry per content version
    (``stat`` size/mtime/inode plus the manifest checksum when known): ``<key>-<version>.npy``
    with a ``.json`` beside it for the geometry. Entries are written atomically (temp file,
    fsync, ``os.replace``) under a per-source file lock, so concurrent DataLoader workers and
    processes decode a volume once; readers ``np.load(mmap_mode="r")`` so every worker shares
    the OS page cache. A changed source gets a new version key and the old entry is removed.

    Args:
        folder: Cache folder (created on first write).
        reader: Decoder used on a miss (default :func:`read_canonical`).
        max_open: Memory maps kept open per process.

    Example:
        >>> import tempfile
        >>> cache = VolumeCache(Path(tempfile.mkdtemp()) / "cache")
        >>> cache.folder.name
        'cache'
    """

    def __init__(
        self, folder: str | os.PathLike[str], *, reader: Reader | None = None, max_open: int = 64
    ) -> None:
        self.folder = Path(folder)
        self._reader = reader
        self._max_open = max_open
        self._open: OrderedDict[str, CachedVolume] = OrderedDict()
        self._real: dict[str, str] = {}
        self._mutex = threading.Lock()
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        del state["_mutex"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mutex = threading.Lock()

    def _entry(self, path: str, version: str, checksum: str | None) -> tuple[str, Path]:
        real = self._real.get(path)
        if real is None:
            real = self._real[path] = os.path.realpath(path)
        source_key = _digest(real)
        version_key = _digest(f"{_FORMAT_VERSION}|{version}|{checksum or ''}")
        return source_key, self.folder / f"{source_key}-{version_key}.npy"

    def get(
        self,
        path: str,
        *,
        checksum: str | None = None,
        what: str = "image",
        keep_open: bool = True,
    ) -> CachedVolume:
        """Return the cached volume for ``path``, decoding and storing it on a miss.

        Args:
            path: Source image or label file (or DICOM series folder).
            checksum: Manifest checksum, mixed into the version key when known.
            what: Human name used in errors, e.g. ``"image 'case_1'"``.
            keep_open: Keep the memory map among the ``max_open`` this process holds (for
                slices read one after another). ``False`` for a volume read whole once: a map
                opened for this call is closed when the returned volume is dropped, so a
                DataLoader worker does not keep every volume it has read mapped (and counted in
                its resident memory); a map already held open is returned as it is.

        Returns:
            The volume; its ``array`` is a read-only memory map when the cache is usable.

        Raises:
            ImageNotFoundError: The source file no longer exists.
            ImageReadError: The source or its cache entry cannot be read.
        """
        try:
            version = _version_of(path)
        except FileNotFoundError as err:
            raise ImageNotFoundError(
                f"{what}: file {path} no longer exists (removed since the dataset was built)"
            ) from err
        except OSError as err:
            raise ImageReadError(f"{what}: cannot stat {path}: {err}") from err
        source_key, npy = self._entry(path, version, checksum)
        with self._mutex:
            hit = self._open.get(str(npy))
            if hit is not None:
                self._open.move_to_end(str(npy))
                return hit
        volume = self._load(npy)
        if volume is None:
            volume = self._fill(path, source_key, npy, what)
        else:
            touch(npy, npy.with_suffix(".json"))  # mtime = last use, for age-based pruning
        if not keep_open:
            return volume
        with self._mutex:
            self._open[str(npy)] = volume
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return volume

    def _load(self, npy: Path) -> CachedVolume | None:
        """Open an existing entry, or ``None`` when it is absent or unreadable."""
        try:
            meta = json.loads(npy.with_suffix(".json").read_text(encoding="utf-8"))
            array = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        if list(array.shape) != meta.get("shape") or str(array.dtype) != meta.get("dtype"):
            return None
        return CachedVolume(
            array=array,
            affine=np.asarray(meta["affine"], dtype=np.float64),
            spacing=tuple(meta["spacing"]),
            meta=meta.get("meta", {}),
        )

    def _decode(self, path: str, what: str) -> CachedVolume:
        reader = self._reader or read_canonical
        try:
            return reader(path)
        except FileNotFoundError as err:
            raise ImageNotFoundError(f"{what}: file {path} no longer exists") from err

    def _fill(self, path: str, source_key: str, npy: Path, what: str) -> CachedVolume:
        """Decode ``path`` once (under a per-source lock) and publish the entry."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tag_folder(self.folder)
            lock = FileLock(str(self.folder / f"{source_key}.lock"))
            lock.acquire()
        except OSError as err:
            self._warn_uncached(err)
            return self._decode(path, what)
        try:
            existing = self._load(npy)
            if existing is not None:
                return existing
            volume = self._decode(path, what)
            array = np.ascontiguousarray(volume.array)
            header = {
                "format_version": _FORMAT_VERSION,
                "source": os.path.realpath(path),
                "shape": list(array.shape),
                "dtype": str(array.dtype),
                "affine": np.asarray(volume.affine, dtype=np.float64).tolist(),
                "spacing": [float(s) for s in volume.spacing],
                "meta": _json_safe(volume.meta),
            }
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            try:
                atomic_write_bytes(
                    npy.with_suffix(".json"), json.dumps(header).encode(), point="cache.meta"
                )
                atomic_write_bytes(npy, buffer.getbuffer().tobytes(), point="cache.npy")
            except OSError as err:
                self._warn_uncached(err)
                return volume
            self._drop_stale(source_key, npy)
            return self._load(npy) or volume
        finally:
            lock.release()

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

    def _drop_stale(self, source_key: str, keep: Path) -> None:
        """Remove entries of older versions of the same source."""
        for old in self.folder.glob(f"{source_key}-*"):
            if old.stem != keep.stem and old.suffix in (".npy", ".json"):
                with contextlib.suppress(OSError):
                    old.unlink()

    def _warn_uncached(self, err: OSError) -> None:
        if not self._warned:
            _LOG.warning(
                "cache folder %s is unusable (%s); decoding without caching", self.folder, err
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
        """Forget open maps and delete every cache entry in the folder."""
        with self._mutex:
            self._open.clear()
        if self.folder.is_dir():
            for entry in self.folder.iterdir():
                if entry.suffix in (".npy", ".json", ".lock"):
                    with contextlib.suppress(OSError):
                        entry.unlink()
