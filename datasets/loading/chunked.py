"""Chunked, compressed cache entries: one blosc2 NDArray file per decoded volume.

An entry holds the canonical channels-first array in its own dtype (an int16 CT stays int16),
cut into small chunks (``1 x 32 x 32 x 32`` for a volume) that are each compressed (LZ4HC after a
bit shuffle; label maps: Zstandard), which keeps a noisy CT smaller than its ``.nii.gz``. The file
is opened
memory-mapped; :class:`ChunkedArray` reads a region by decompressing only the chunks it
overlaps, so a patch read touches the bytes around the patch and nothing else.

The geometry (affine, spacing, reader facts) travels inside the file as blosc2 variable-length
metadata, so an entry is one file, published with one atomic rename.

Examples:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "entry.b2nd"
    >>> data = np.arange(2 * 40 * 3, dtype=np.int16).reshape(1, 2, 40, 3)
    >>> _ = path.write_bytes(encode(data, {"spacing": [1.0, 1.0, 1.0]}))
    >>> array = ChunkedArray.open(path)
    >>> array.shape, array.dtype, array.header["spacing"]
    ((1, 2, 40, 3), dtype('int16'), [1.0, 1.0, 1.0])
    >>> int(array[0, 1, 39, 2]), array[:, :, 33:35].shape
    (239, (1, 2, 2, 3))
    >>> bool((np.asarray(array) == data).all())
    True
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
from torch.utils.data import get_worker_info

__all__ = ["CHUNK_EDGE", "ChunkedArray", "chunk_shape", "compressed_nbytes", "encode"]

CHUNK_EDGE = 32
"""Chunk edge along each spatial axis of a volume (a 128³ patch touches ≤ 5³ chunks)."""
_PLANE_CHUNK_EDGE = 256
"""Chunk edge along the two spatial axes of a 2-D image."""
_HEADER_KEY = "medstore"
_SLABS_KEPT = 4
"""Decompressed chunk layers kept per process for slice-by-slice reads (image + label...)."""


def _cparams(dtype: np.dtype) -> dict[str, Any]:
    """The codec of an entry's chunks.

    Multi-byte voxels (CT, MR): LZ4HC level 5 after a bit shuffle, which separates the noisy
    low bits from the nearly constant high ones; on a noisy 512 x 512 x 300 int16 CT it is 7%
    larger than Zstandard level 1 after a byte shuffle (65 vs 60 MiB, the ``.nii.gz`` is 82)
    and decodes a 128³ patch in about 60% of the time. Single-byte voxels (label maps, mostly
    zeros): Zstandard level 1.
    """
    if dtype.itemsize > 1:
        return {"codec": blosc2.Codec.LZ4HC, "clevel": 5, "filters": [blosc2.Filter.BITSHUFFLE]}
    return {"codec": blosc2.Codec.ZSTD, "clevel": 1, "filters": [blosc2.Filter.SHUFFLE]}


def chunk_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The chunk shape of a channels-first canonical array of ``shape``.

    Args:
        shape: ``(C, D, H, W)`` or ``(C, H, W)`` (any other rank gets one chunk per channel).

    Returns:
        One channel per chunk; 32 voxels per spatial axis of a volume, 256 of a 2-D image.

    Example:
        >>> chunk_shape((1, 300, 512, 512)), chunk_shape((3, 64, 64)), chunk_shape((1, 0, 4, 4))
        ((1, 32, 32, 32), (1, 64, 64), (1, 1, 4, 4))
    """
    edge = CHUNK_EDGE if len(shape) >= 4 else _PLANE_CHUNK_EDGE
    return (1, *(max(1, min(int(s), edge)) for s in shape[1:]))


def encode(array: np.ndarray, header: dict[str, Any]) -> bytes:
    """The bytes of one cache entry: ``array`` chunked and compressed, ``header`` inside.

    Args:
        array: The canonical array (kept in its dtype).
        header: JSON-like facts stored with it (read back as :attr:`ChunkedArray.header`).

    Returns:
        A blosc2 contiguous frame, to be written to a ``.b2nd`` file.
    """
    data = np.ascontiguousarray(array)
    chunks = chunk_shape(data.shape)
    nd = blosc2.asarray(data, chunks=chunks, blocks=chunks, cparams=_cparams(data.dtype))
    nd.schunk.vlmeta[_HEADER_KEY] = header
    return bytes(nd.to_cframe())


def compressed_nbytes(array: np.ndarray) -> int:
    """Compressed size of ``array`` stored on its own as a cache entry (chunks and codec alike).

    Args:
        array: A channels-first array (e.g. one patch).

    Returns:
        The bytes of its compressed chunks.

    Example:
        >>> compressed_nbytes(np.zeros((1, 64, 64, 64), np.int16)) < 64**3 * 2 // 100
        True
    """
    data = np.ascontiguousarray(array)
    chunks = chunk_shape(data.shape)
    nd = blosc2.asarray(data, chunks=chunks, blocks=chunks, cparams=_cparams(data.dtype))
    return int(nd.schunk.cbytes)


_KeyPart = int | slice | None


def _normalise(key: Any, ndim: int) -> tuple[list[_KeyPart], list[int]]:
    """Split a basic index into the parts blosc2 reads and the positions of new axes."""
    parts = list(key) if isinstance(key, tuple) else [key]
    if any(p is Ellipsis for p in parts):
        at = next(i for i, p in enumerate(parts) if p is Ellipsis)
        used = sum(1 for p in parts if p is not None and p is not Ellipsis)
        parts[at : at + 1] = [slice(None)] * (ndim - used)
    for part in parts:
        if not (part is None or isinstance(part, (slice, int, np.integer))):
            raise TypeError(f"cached arrays take basic indices only, not {type(part).__name__}")
    new_axes: list[int] = []
    out_axis = 0
    read: list[_KeyPart] = []
    for part in parts:
        if part is None:
            new_axes.append(out_axis)
            out_axis += 1
        else:
            read.append(int(part) if isinstance(part, np.integer) else part)
            out_axis += 0 if isinstance(part, int) else 1
    read.extend([slice(None)] * (ndim - len(read)))
    return read, new_axes


class _SlabCache:
    """The chunk layers decompressed last in this process (for slice after slice reads)."""

    def __init__(self) -> None:
        self._slabs: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> np.ndarray | None:
        with self._lock:
            slab = self._slabs.get(key)
            if slab is not None:
                self._slabs.move_to_end(key)
            return slab

    def put(self, key: tuple[str, int, int], slab: np.ndarray) -> None:
        with self._lock:
            self._slabs[key] = slab
            while len(self._slabs) > _SLABS_KEPT:
                self._slabs.popitem(last=False)


_SLABS = _SlabCache()


_INHERITED: list[blosc2.NDArray] = []
"""Arrays a forked worker inherited and opened again: freeing one there would hang."""


def _open_nd(path: str) -> blosc2.NDArray:
    """Open an entry memory-mapped, read-only; on one decompression thread in a loader worker.

    Raises:
        OSError: The file is missing or unreadable.
        ValueError: It is not a blosc2 array.
    """
    single = blosc2.DParams(nthreads=1) if get_worker_info() is not None else None
    try:
        nd = blosc2.open(path, mode="r", mmap_mode="r", dparams=single)
    except (RuntimeError, KeyError) as err:  # blosc2 reports bad frames as RuntimeError
        raise ValueError(f"{path} is not a blosc2 array: {err}") from err
    if not isinstance(nd, blosc2.NDArray):
        raise ValueError(f"{path} is not a blosc2 NDArray")
    return nd


class ChunkedArray:
    """A read-only, memory-mapped cache entry read region by region as numpy arrays.

    Indexing with integers, slices and ``None`` returns a new numpy array and decompresses only
    the chunks the region overlaps. A single plane (one integer on a spatial axis, whole ranges
    elsewhere) is cut from its decompressed chunk layer, which is kept for the next planes, so
    slicing a volume plane after plane decompresses each chunk once.

    Args:
        nd: The opened blosc2 array.
        path: Its file (names the entry in the per-process layer cache).
    """

    def __init__(self, nd: blosc2.NDArray, path: str) -> None:
        self._nd = nd
        self._path = path
        self.shape: tuple[int, ...] = tuple(int(s) for s in nd.shape)
        self.dtype = np.dtype(nd.dtype)
        self.chunks: tuple[int, ...] = tuple(int(c) for c in nd.chunks)
        self._chunk_bytes: np.ndarray | None = None
        self._opened_in = os.getpid()

    @property
    def _data(self) -> blosc2.NDArray:
        """The blosc2 array, opened in this process (decompressing on one thread in a worker).

        The loader already runs a process per core; blosc2's own pool (a thread per core) in
        each of them only makes them compete. With one thread each, 2 workers on this project's
        2-core machine read 66.7-68.1 instead of 60.9-61.9 patches a second (nnU-Net's loader
        does the same). An array a worker inherited through a fork is opened again there; the
        inherited one is kept, never freed nor changed: its decompression context waits for
        the parent's pool threads, which the worker does not have.
        """
        pid = os.getpid()
        if self._opened_in != pid:
            self._opened_in = pid
            _INHERITED.append(self._nd)
            self._nd = _open_nd(self._path)
        return self._nd

    @classmethod
    def open(cls, path: str | Path) -> ChunkedArray:
        """Open an entry file memory-mapped, read-only.

        Args:
            path: The ``.b2nd`` file.

        Returns:
            The array.

        Raises:
            OSError: The file is missing or unreadable.
            ValueError: It is not a blosc2 array.
        """
        return cls(_open_nd(str(path)), str(path))

    @property
    def header(self) -> dict[str, Any]:
        """The facts stored with the array (empty when none)."""
        try:
            return dict(self._nd.schunk.vlmeta[_HEADER_KEY])
        except KeyError:
            return {}

    @property
    def path(self) -> Path:
        """The entry's file."""
        return Path(self._path)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the decompressed array in bytes."""
        return self.size * self.dtype.itemsize

    @property
    def compressed_bytes(self) -> int:
        """Size of the compressed data in bytes."""
        return int(self._nd.schunk.cbytes)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ChunkedArray(shape={self.shape}, dtype={self.dtype}, chunks={self.chunks})"

    def __getitem__(self, key: Any) -> np.ndarray:
        read, new_axes = _normalise(key, self.ndim)
        plane = self._plane(read)
        out = plane if plane is not None else np.asarray(self._data[tuple(read)])
        for axis in new_axes:
            out = np.expand_dims(out, axis)
        return out

    def _plane(self, read: list[_KeyPart]) -> np.ndarray | None:
        """The plane ``read`` selects, cut from its cached chunk layer; ``None`` if not a plane."""
        ints = [i for i, part in enumerate(read) if isinstance(part, int)]
        if (
            len(ints) != 1
            or ints[0] == 0
            or any(isinstance(p, slice) and p != slice(None) for p in read)
        ):
            return None
        axis = ints[0]
        index = int(read[axis])  # type: ignore[arg-type]
        index += self.shape[axis] if index < 0 else 0
        if not 0 <= index < self.shape[axis]:
            raise IndexError(f"index {read[axis]} is out of bounds for axis {axis}")
        edge = self.chunks[axis]
        layer = index // edge
        slab = _SLABS.get((self._path, axis, layer))
        if slab is None:
            region = [slice(None)] * self.ndim
            region[axis] = slice(layer * edge, min(self.shape[axis], (layer + 1) * edge))
            slab = np.asarray(self._data[tuple(region)])
            _SLABS.put((self._path, axis, layer), slab)
        cut: list[_KeyPart] = [slice(None)] * self.ndim
        cut[axis] = index - layer * edge
        return np.array(slab[tuple(cut)])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=dtype or self.dtype)
        self.copy_into(out)
        return out

    def copy_into(self, out: np.ndarray) -> None:
        """Decompress the whole array into ``out`` (cast to its dtype), one chunk layer at a time.

        Args:
            out: An array of the same shape.

        Raises:
            ValueError: Shapes differ.
        """
        if tuple(out.shape) != self.shape:
            raise ValueError(f"cannot copy shape {self.shape} into shape {tuple(out.shape)}")
        if self.ndim < 2 or self.size == 0:
            np.copyto(out, np.asarray(self._data[...]), casting="unsafe")
            return
        edge = self.chunks[1]
        for start in range(0, self.shape[1], edge):
            layer = (slice(None), slice(start, start + edge))
            np.copyto(out[layer], np.asarray(self._data[layer]), casting="unsafe")

    def chunk_bytes_touched(self, region: Sequence[slice]) -> int:
        """Compressed bytes of the chunks that ``region`` overlaps (from the chunk index).

        Args:
            region: One ``slice(start, stop)`` per axis, inside the array.

        Returns:
            The sum of the compressed sizes of those chunks.
        """
        sizes = self._chunk_sizes()
        grid = sizes.shape
        ranges = []
        for axis, part in enumerate(region):
            start, stop, _ = part.indices(self.shape[axis])
            if stop <= start:
                return 0
            ranges.append(range(start // self.chunks[axis], (stop - 1) // self.chunks[axis] + 1))
        index = np.ix_(*[np.asarray(r) for r in ranges])
        assert len(grid) == len(ranges)
        return int(sizes[index].sum())

    def _chunk_sizes(self) -> np.ndarray:
        """Compressed size of every chunk, shaped as the chunk grid (read from chunk headers)."""
        if self._chunk_bytes is None:
            grid = tuple(-(-s // c) for s, c in zip(self._nd.ext_shape, self.chunks, strict=True))
            schunk = self._nd.schunk
            sizes = [
                blosc2.get_cbuffer_sizes(schunk.get_lazychunk(i))[1] for i in range(schunk.nchunks)
            ]
            self._chunk_bytes = np.asarray(sizes, dtype=np.int64).reshape(grid)
        return self._chunk_bytes
