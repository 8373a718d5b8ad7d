"""What a decode-once cache entry holds, how a source's content version is keyed, and the decoder.

A :class:`CachedVolume` is a canonical array with its geometry; :func:`entry_bytes` turns a
decoded one into an entry file (see :mod:`.chunked`); :func:`version_of` fingerprints a source's
content version from ``stat``, which with the manifest checksum keys its entry.

Example:
    >>> digest("a") == digest("a") and len(digest("a"))
    24
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .chunked import ChunkedArray, encode

__all__ = [
    "FORMAT_VERSION",
    "CachedVolume",
    "Reader",
    "VolumeArray",
    "digest",
    "entry_bytes",
    "json_safe",
    "read_canonical",
    "version_of",
]

FORMAT_VERSION = 3
"""2: Zstandard chunks; 3: LZ4HC after a bit shuffle for multi-byte dtypes (faster to read)."""

VolumeArray = np.ndarray | ChunkedArray
"""A cached array: a chunked cache entry, its uncompressed copy memory-mapped, or an in-memory
array when caching was skipped."""


@dataclass(frozen=True, eq=False)
class CachedVolume:
    """A decoded volume: a read-only (usually memory-mapped) array and its geometry.

    Attributes:
        array: Channels-first canonical array, ``(C, D, H, W)`` or ``(C, H, W)``: a
            :class:`~.chunked.ChunkedArray` (indexing returns numpy arrays, decompressing only
            the chunks read) or, when the cache could not be used, a numpy array.
        affine: 4x4 RAS+ affine of the array's voxel grid.
        spacing: Voxel size following the array's spatial axes.
        meta: JSON-safe header facts from the reader.
    """

    array: VolumeArray
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
        meta=json_safe(dict(getattr(data, "meta", {}) or {})),
    )


def json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    """Keep the JSON-serialisable entries of a reader's meta dict.

    Args:
        meta: The reader's facts.

    Returns:
        Those that ``json.dumps`` accepts, keys as strings.

    Example:
        >>> json_safe({"a": 1, "b": object()})
        {'a': 1}
    """
    safe: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[str(key)] = value
    return safe


def digest(text: str) -> str:
    """A 24-hex-digit SHA-256 of ``text`` (names of cache files).

    Args:
        text: Any text (a path, a version key).

    Returns:
        The digest's first 24 hex digits.
    """
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def version_of(path: str) -> str:
    """Content-version fingerprint from ``stat`` (a folder: every entry's stat).

    Args:
        path: A source file or DICOM series folder.

    Returns:
        ``size:mtime_ns:inode`` (a folder: a digest of its entries' names and stats).

    Raises:
        OSError: ``path`` cannot be stat'ed (``FileNotFoundError`` when it is gone).
    """
    st = os.stat(path)
    if not os.path.isdir(path):
        return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    parts = []
    with os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            est = entry.stat()
            parts.append(f"{entry.name}:{est.st_size}:{est.st_mtime_ns}:{est.st_ino}")
    return digest("|".join(parts))


def entry_bytes(volume: CachedVolume, path: str) -> bytes:
    """The entry file of a decoded volume: its array chunked and compressed, geometry inside.

    Args:
        volume: The decoded volume.
        path: Its source (recorded, resolved, in the header).

    Returns:
        The bytes of the ``.b2nd`` entry.
    """
    array = np.asarray(volume.array)
    header = {
        "format_version": FORMAT_VERSION,
        "source": os.path.realpath(path),
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "affine": np.asarray(volume.affine, dtype=np.float64).tolist(),
        "spacing": [float(s) for s in volume.spacing],
        "meta": json_safe(volume.meta),
    }
    return encode(array, header)
