"""Uncompressed copies of cache entries, for items that read a volume whole or plane by plane.

A patch decompresses the few chunks around it, but a whole-volume item decompresses every
chunk of its entry, and a pass over a volume's slices every chunk layer: several times the cost
of copying the same voxels from an uncompressed memory map that sits in the page cache. So the
first whole-volume or slice read of an entry writes a copy of its array beside it, uncompressed
and in the array's own dtype (``<entry stem>.npy``), and later whole-volume and slice reads
memory-map that copy. Patch reads never make one: a cache used only for patches stays
compressed.

The copy carries its entry's name, so it follows the entry's content key: it is replaced with
the entry when the source changes, pruned with it (same stem), and like every cache file it is
disposable (a missing or damaged copy is written again from the entry).

Example:
    >>> import tempfile
    >>> from medstore.datasets.loading.chunked import encode
    >>> entry = Path(tempfile.mkdtemp()) / "key-version.b2nd"
    >>> data = np.arange(2 * 40 * 3, dtype=np.int16).reshape(1, 2, 40, 3)
    >>> _ = entry.write_bytes(encode(data, {}))
    >>> copy = write_copy(entry, ChunkedArray.open(entry))
    >>> copy_path(entry).name, copy.dtype, bool((copy == data).all())
    ('key-version.npy', dtype('int16'), True)
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from medstore.datastore.durable import atomic_write_chunks

from .chunked import ChunkedArray

__all__ = ["COPY_SUFFIX", "copy_path", "open_copy", "write_copy"]

COPY_SUFFIX = ".npy"
"""Suffix of an entry's uncompressed copy (the entry's own name otherwise)."""


def copy_path(entry: Path) -> Path:
    """The uncompressed copy's file of the entry file ``entry``.

    Args:
        entry: A ``.b2nd`` cache entry.

    Returns:
        ``entry`` with the suffix ``.npy``.
    """
    return entry.with_suffix(COPY_SUFFIX)


def open_copy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """Memory-map the copy at ``path`` read-only, if it holds an array of ``shape`` and ``dtype``.

    Args:
        path: The copy's file.
        shape: The entry's shape.
        dtype: The entry's dtype.

    Returns:
        The read-only memory map, or ``None`` when it is absent, damaged or of another array.
    """
    try:
        copy = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(copy, np.ndarray) or copy.shape != shape or copy.dtype != dtype:
        return None
    return copy


def _npy_pieces(array: ChunkedArray) -> Iterator[bytes | memoryview]:
    """The bytes of ``array`` as a ``.npy`` file: its header, then one chunk layer at a time."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(array.dtype),
            "fortran_order": False,
            "shape": array.shape,
        },
    )
    yield header.getvalue()
    if array.ndim < 2 or array.size == 0:
        yield np.ascontiguousarray(np.asarray(array)).tobytes()
        return
    edge = array.chunks[1]
    for start in range(0, array.shape[1], edge):
        layer = np.ascontiguousarray(array[:, start : start + edge])
        yield layer.data.cast("B")


def write_copy(entry: Path, array: ChunkedArray) -> np.ndarray | None:
    """Write the uncompressed copy of ``array`` (the entry at ``entry``) and memory-map it.

    Written atomically (temp file, fsync, rename) and streamed one chunk layer at a time, so
    a volume is never held whole in memory on the way.

    Args:
        entry: The entry's file.
        array: The entry, opened.

    Returns:
        The copy, memory-mapped read-only; ``None`` when it could not be written (read-only or
        full folder...): the caller then reads the compressed entry.
    """
    target = copy_path(entry)
    try:
        atomic_write_chunks(target, _npy_pieces(array), point="cache.copy")
    except OSError:
        return None
    return open_copy(target, array.shape, array.dtype)
