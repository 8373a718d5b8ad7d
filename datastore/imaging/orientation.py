"""Canonical orientation: permute and flip voxel axes to (D, H, W), never resample.

The canonical layout of a volume is an array ``(D, H, W)`` whose index increases inferior→superior
along D, anterior→posterior along H and patient right→left along W: a stack of axial slices shown
the radiological way. In nibabel's axis-code language the three array axes point to ``("S", "P",
"L")``. Oblique scans go to the closest such layout (nibabel's ``io_orientation``).

Examples:
    >>> import numpy as np
    >>> ras = np.diag([2.0, 3.0, 4.0, 1.0])          # a RAS+ file, voxel axes (i, j, k)
    >>> arr = np.arange(24).reshape(2, 3, 4)
    >>> can, aff, tr = to_canonical(arr, ras)
    >>> can.shape, axis_codes(aff)
    ((4, 3, 2), ('S', 'P', 'L'))
    >>> bool((from_canonical(can, tr) == arr).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from nibabel import orientations as ornt

__all__ = [
    "CANONICAL_CODES",
    "LPS_TO_RAS",
    "CanonicalTransform",
    "axis_codes",
    "canonical_transform",
    "from_canonical",
    "to_canonical",
]

#: Axis codes of the canonical array axes (D, H, W).
CANONICAL_CODES: tuple[str, str, str] = ("S", "P", "L")


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``array``, made read-only (a shared module constant)."""
    array.setflags(write=False)
    return array


#: Multiply an LPS (DICOM) affine on the left by this to get RAS+ (read-only).
LPS_TO_RAS: npt.NDArray[np.float64] = _read_only(np.diag([-1.0, -1.0, 1.0, 1.0]))

_CANONICAL_ORNT = _read_only(ornt.axcodes2ornt(CANONICAL_CODES))


@dataclass(frozen=True)
class CanonicalTransform:
    """How a file's voxel axes map to the canonical (D, H, W) axes.

    Attributes:
        ornt: nibabel orientation transform (3x2: target axis, flip) from file to canonical.
        file_shape: Spatial shape of the array in the file's own voxel order.
    """

    ornt: tuple[tuple[int, int], ...]
    file_shape: tuple[int, int, int]

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the canonical array."""
        out = [0, 0, 0]
        for src, (dst, _flip) in enumerate(self.ornt):
            out[dst] = self.file_shape[src]
        return (out[0], out[1], out[2])

    @property
    def is_identity(self) -> bool:
        """True when the file is already in canonical layout."""
        return all(dst == i and flip == 1 for i, (dst, flip) in enumerate(self.ornt))

    def as_array(self) -> npt.NDArray[np.float64]:
        """The transform in nibabel's array form."""
        return np.asarray(self.ornt, dtype=np.float64)


def axis_codes(affine: npt.ArrayLike) -> tuple[str, ...]:
    """Axis codes (e.g. ``('L', 'A', 'S')``) of an affine's voxel axes, closest-axis for obliques.

    Args:
        affine: 4x4 voxel→RAS+ affine.

    Returns:
        One code per spatial axis.

    Example:
        >>> axis_codes(np.diag([-1.0, 1, 1, 1]))
        ('L', 'A', 'S')
    """
    codes = ornt.aff2axcodes(np.asarray(affine, dtype=np.float64))
    return tuple(str(c) for c in codes)


def canonical_transform(affine: npt.ArrayLike, file_shape: tuple[int, ...]) -> CanonicalTransform:
    """The transform taking an array with ``affine`` to canonical layout.

    Args:
        affine: 4x4 voxel→RAS+ affine of the file's voxel order.
        file_shape: The array shape; only the first three axes are spatial.

    Returns:
        The transform.

    Example:
        >>> canonical_transform(np.eye(4), (2, 3, 4)).canonical_shape
        (4, 3, 2)
    """
    aff = np.asarray(affine, dtype=np.float64)
    start = ornt.io_orientation(aff)
    if np.isnan(start).any():
        # Degenerate affine (a zero column): keep voxel order as if RAS+.
        start = ornt.axcodes2ornt(("R", "A", "S"))
    tr = ornt.ornt_transform(start, _CANONICAL_ORNT)
    spatial = tuple(int(s) for s in file_shape[:3])
    spatial = spatial + (1,) * (3 - len(spatial))
    return CanonicalTransform(
        ornt=tuple((int(a), int(f)) for a, f in tr),
        file_shape=(spatial[0], spatial[1], spatial[2]),
    )


def _apply(arr: npt.NDArray[np.generic], tr: npt.NDArray[np.float64]) -> npt.NDArray[np.generic]:
    """Flip then permute the first three axes of ``arr`` as nibabel's ``apply_orientation``."""
    out = arr
    for ax, (_dst, flip) in enumerate(tr):
        if flip == -1:
            out = np.flip(out, axis=ax)
    perm = [0, 0, 0]
    for src, (dst, _f) in enumerate(tr):
        perm[int(dst)] = src
    return np.transpose(out, (*perm, *range(3, out.ndim)))


def to_canonical(
    array: npt.NDArray[np.generic], affine: npt.ArrayLike
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.float64], CanonicalTransform]:
    """Reorient an array (spatial axes first, in the affine's voxel order) to canonical layout.

    Only views are taken (flips and transposes); no voxel is copied or resampled. Axes after the
    first three (time, channels) stay where they are.

    Args:
        array: Array whose first three axes are the voxel axes of ``affine``.
        affine: 4x4 voxel→RAS+ affine.

    Returns:
        ``(canonical_array, canonical_affine, transform)``; ``canonical_array`` is ``(D, H, W,
        ...)`` and ``canonical_affine`` maps its indices to RAS+ mm.

    Raises:
        ValueError: ``array`` has fewer than three axes.

    Example:
        >>> a, aff, t = to_canonical(np.zeros((5, 6, 7)), np.diag([-1.0, -1, 1, 1]))  # LPS file
        >>> a.shape, t.is_identity
        ((7, 6, 5), False)
    """
    if array.ndim < 3:
        raise ValueError(f"to_canonical needs at least 3 axes, got shape {array.shape}")
    tr = canonical_transform(affine, array.shape)
    arr_tr = tr.as_array()
    out = _apply(array, arr_tr)
    aff = np.asarray(affine, dtype=np.float64) @ ornt.inv_ornt_aff(arr_tr, array.shape[:3])
    return out, aff, tr


def from_canonical(
    array: npt.NDArray[np.generic], transform: CanonicalTransform
) -> npt.NDArray[np.generic]:
    """Inverse of :func:`to_canonical`: bring a canonical ``(D, H, W, ...)`` array to file order.

    Args:
        array: Canonical array (e.g. a label computed on a canonical image).
        transform: The transform :func:`to_canonical` returned for the image.

    Returns:
        A view in the file's voxel order.

    Raises:
        ValueError: The array's spatial shape is not the transform's canonical shape.

    Example:
        >>> t = canonical_transform(np.eye(4), (2, 3, 4))
        >>> from_canonical(np.zeros((4, 3, 2)), t).shape
        (2, 3, 4)
    """
    if tuple(array.shape[:3]) != transform.canonical_shape:
        raise ValueError(
            f"array shape {array.shape[:3]} is not the canonical shape {transform.canonical_shape}"
        )
    inverse = ornt.ornt_transform(_CANONICAL_ORNT, _orientation_of(transform))
    return _apply(array, inverse)


def _orientation_of(transform: CanonicalTransform) -> npt.NDArray[np.float64]:
    """The file's own orientation (in RAS terms) recovered from a transform to canonical."""
    file_ornt = np.zeros((3, 2))
    for src, (dst, flip) in enumerate(transform.ornt):
        file_ornt[src, 0] = _CANONICAL_ORNT[dst, 0]
        file_ornt[src, 1] = _CANONICAL_ORNT[dst, 1] * flip
    return file_ornt
