"""Pixel <-> patient coordinate conversion through an image affine, and small measurements.

Convention: a volume array is ``(D, H, W)`` (channels dropped) and its 4x4 affine maps
the array index ``(d, h, w, 1)`` to RAS+ millimetres. Annotation *pixel* points are written the
way viewers and the seeds write them, ``(x, y[, z])`` with ``x`` = column (W), ``y`` = row (H) and
``z`` = slice/frame (D); a 2-D point takes ``z`` from the annotation's frame (or 0).

Examples:
    >>> import numpy as np
    >>> affine = np.diag([2.0, 0.5, 0.5, 1.0])
    >>> pixel_to_patient(np.array([[10.0, 20.0, 3.0]]), affine).tolist()
    [[6.0, 10.0, 5.0]]
    >>> patient_to_pixel(np.array([[6.0, 10.0, 5.0]]), affine).tolist()
    [[10.0, 20.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import AnnotationError

__all__ = [
    "as_affine",
    "frame_count",
    "patient_to_pixel",
    "pixel_to_patient",
    "polyline_length",
    "voxel_sizes",
]

FloatArray = npt.NDArray[np.float64]


def as_affine(affine: npt.ArrayLike) -> FloatArray:
    """Check and return a finite, invertible 4x4 affine as float64.

    Args:
        affine: Anything numpy turns into a 4x4 matrix.

    Returns:
        The affine as a new float64 array.

    Raises:
        AnnotationError: Wrong shape, non-finite values or a singular matrix.
    """
    matrix = np.array(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise AnnotationError(f"an affine must be 4x4, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise AnnotationError("the affine has NaN or infinite values")
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise AnnotationError("the affine is singular")
    return matrix


def _xyz(points: npt.ArrayLike, default_z: float) -> FloatArray:
    array = np.array(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise AnnotationError(f"points must be (N, 2) or (N, 3), got shape {array.shape}")
    if array.shape[1] == 2:
        array = np.column_stack([array, np.full(len(array), float(default_z))])
    return array


def pixel_to_patient(
    points: npt.ArrayLike, affine: npt.ArrayLike, *, default_z: float = 0.0
) -> FloatArray:
    """Map pixel points ``(x, y[, z])`` to RAS+ millimetres.

    Args:
        points: ``(N, 2)`` or ``(N, 3)`` pixel points (column, row, slice).
        affine: The 4x4 affine of the ``(D, H, W)`` array.
        default_z: Slice used for 2-D points.

    Returns:
        ``(N, 3)`` float64 patient points.

    Raises:
        AnnotationError: Bad points or affine.
    """
    matrix = as_affine(affine)
    xyz = _xyz(points, default_z)
    index = xyz[:, ::-1]  # (x, y, z) -> (d, h, w)
    result: FloatArray = index @ matrix[:3, :3].T + matrix[:3, 3]
    return result


def patient_to_pixel(points: npt.ArrayLike, affine: npt.ArrayLike) -> FloatArray:
    """Map RAS+ millimetre points to pixel points ``(x, y, z)`` (exact inverse of the above).

    Args:
        points: ``(N, 3)`` patient points.
        affine: The 4x4 affine of the ``(D, H, W)`` array.

    Returns:
        ``(N, 3)`` float64 pixel points (column, row, slice), not rounded.

    Raises:
        AnnotationError: Bad points or affine.
    """
    matrix = as_affine(affine)
    world = np.array(points, dtype=np.float64)
    if world.ndim != 2 or world.shape[1] != 3:
        raise AnnotationError(f"patient points must be (N, 3), got shape {world.shape}")
    index = np.linalg.solve(matrix[:3, :3], (world - matrix[:3, 3]).T).T
    result: FloatArray = np.ascontiguousarray(index[:, ::-1], dtype=np.float64)
    return result


def voxel_sizes(affine: npt.ArrayLike) -> tuple[float, float, float]:
    """Millimetres per pixel step along x (columns), y (rows) and z (slices).

    Args:
        affine: The 4x4 affine of the ``(D, H, W)`` array.

    Returns:
        ``(sx, sy, sz)``.
    """
    matrix = as_affine(affine)
    norms = np.linalg.norm(matrix[:3, :3], axis=0)  # per index axis (d, h, w)
    return float(norms[2]), float(norms[1]), float(norms[0])


def polyline_length(
    points: Sequence[Sequence[float]] | FloatArray, *, closed: bool = False
) -> float:
    """Summed Euclidean length of consecutive segments.

    Args:
        points: ``(N, k)`` points.
        closed: Add the segment from the last point back to the first.

    Returns:
        The length in the points' units.
    """
    array = np.array(points, dtype=np.float64)
    if len(array) < 2:
        return 0.0
    if closed:
        array = np.vstack([array, array[:1]])
    return float(np.linalg.norm(np.diff(array, axis=0), axis=1).sum())


def frame_count(info: dict[str, Any]) -> int | None:
    """Number of frames (slices) of an image from its info, when known.

    ``info["shape"]`` is the canonical ``(D, H, W)`` (or ``(C, D, H, W)``); a 2-D shape has one
    frame. ``num_frames``/``frames`` win when present.

    Args:
        info: The image's manifest info.

    Returns:
        The frame count, or ``None`` when the info does not say.
    """
    for key in ("num_frames", "frames"):
        if isinstance(info.get(key), int):
            return int(info[key])
    shape = info.get("shape")
    if not isinstance(shape, list | tuple) or not shape:
        return None
    if len(shape) == 2:
        return 1
    if len(shape) == 4:
        return int(shape[1])
    return int(shape[-3])
