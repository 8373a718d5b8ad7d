"""Where each class of a label lies: sampled voxel coordinates, computed once per label version.

Foreground oversampling centres a patch on a voxel of a requested class. Finding such voxels
needs the whole label, so :func:`class_locations` reads it once per label version and keeps a
sample of each value's voxel coordinates (like nnU-Net: up to 10,000 per value, and at least 1%
of them) in a ``<entry>-classes.npz`` file beside the label's cache entry. The entry's name is
content-keyed, so a rewritten label gets new locations; the file is written atomically and is
disposable like every cache file (see :mod:`medstore.datasets.loading.cache_upkeep`).

Example:
    >>> import numpy as np
    >>> label = np.zeros((1, 4, 5, 6), np.uint8)
    >>> label[0, 1, 2, 3] = 2
    >>> found = locate(label)
    >>> sorted(found), found[2].tolist()
    ([2], [[1, 2, 3]])
"""

from __future__ import annotations

import contextlib
import io
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from medstore.datastore import atomic_write_bytes

from ..loading.cache import VolumeArray, VolumeCache
from ..loading.cache_upkeep import touch
from ..records import ImageRecord, LabelRecord
from .volumes import label_volume

__all__ = ["LOCATIONS_SUFFIX", "Locations", "class_locations", "locate"]

LOCATIONS_SUFFIX = "-classes.npz"
"""Appended to a label entry's stem to name its class-locations file."""
_SAMPLES = 10_000
_MIN_COVERAGE = 0.01

Locations = dict[int, np.ndarray]
"""``{label value: int32 (n, 3) voxel coordinates (d, h, w)}``, for every value present but 0."""

_MEMORY: dict[str, Locations] = {}
_MUTEX = threading.Lock()


def locate(array: VolumeArray) -> Locations:
    """Sample the voxel coordinates of every nonzero value of a channels-first label.

    Args:
        array: ``(1, D, H, W)`` label (a cache entry or an array).

    Returns:
        ``{value: (n, 3) coordinates}``, ``n = max(min(10000, count), ceil(1% of count))``,
        sampled with a fixed seed (the same label always gives the same sample), sorted.
    """
    data = np.asarray(array)
    spatial = data.shape[1:]
    flat = data.reshape(-1)
    nonzero = np.flatnonzero(flat)
    values = flat[nonzero]
    rng = np.random.default_rng(0)
    found: Locations = {}
    for value in np.unique(values):
        where = nonzero[values == value]
        keep = max(min(_SAMPLES, where.size), math.ceil(where.size * _MIN_COVERAGE))
        if keep < where.size:
            where = np.sort(rng.choice(where, keep, replace=False))
        coords = np.stack(np.unravel_index(where % math.prod(spatial), spatial), axis=1)
        found[int(value)] = coords.astype(np.int32)
    return found


def _read(path: Path) -> Locations | None:
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {int(key[1:]): saved[key] for key in saved.files}
    except (OSError, ValueError, KeyError):
        return None


def _write(path: Path, found: Locations) -> None:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {f"v{value}": coords for value, coords in found.items()}
    np.savez(buffer, **arrays)
    with contextlib.suppress(OSError):  # read-only or full: the locations stay in memory
        atomic_write_bytes(path, buffer.getvalue(), point="cache.classes")


def class_locations(cache: VolumeCache, record: ImageRecord, label: LabelRecord) -> Locations:
    """The class locations of ``label``: from this process's memory, its file, or computed.

    Args:
        cache: The decode-once cache holding the label.
        record: The label's image.
        label: The label.

    Returns:
        Sampled coordinates per label value (see :func:`locate`).
    """
    checksum = str(label.info.get("checksum") or "") or None
    volume = label_volume(cache, record, label)
    entry = cache.entry_path(label.path, checksum=checksum)
    key = str(entry) if entry is not None else f"{label.path}|{id(volume.array)}"
    with _MUTEX:
        known = _MEMORY.get(key)
    if known is not None:
        return known
    side = entry.with_name(entry.stem + LOCATIONS_SUFFIX) if entry is not None else None
    found = _read(side) if side is not None else None
    if found is None:
        found = locate(volume.array)
        if side is not None:
            _write(side, found)
    elif side is not None:
        touch(side)
    with _MUTEX:
        _MEMORY[key] = found
    return found
