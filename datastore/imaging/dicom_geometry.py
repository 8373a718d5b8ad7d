"""DICOM plane geometry: frame positions, slice sorting along the normal, LPS→RAS affines.

A stack of planes (slices of a series, frames of an Enhanced multi-frame file) is sorted by
ImagePositionPatient projected on the slice normal; the slice step comes from the positions, never
from SliceThickness. Mixed orientation or pixel size, duplicated positions, gaps (a missing slice),
uneven steps and positions off a straight line are refused with :class:`ImageReadError`.

Examples:
    >>> import numpy as np
    >>> planes = [Plane(np.array([0.0, 0.0, z]), np.array([1.0, 0, 0, 0, 1, 0]), (0.5, 0.5))
    ...           for z in (5.0, 0.0, 2.5)]
    >>> st = stack_planes(planes, where="demo")
    >>> st.order, round(st.step, 3)
    ((1, 2, 0), 2.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from ..errors import ImageReadError
from .orientation import LPS_TO_RAS

__all__ = ["Plane", "Stack", "classic_plane", "enhanced_planes", "stack_planes"]

_ORIENT_TOL = 1e-3
_SPACING_RTOL = 1e-3


@dataclass(frozen=True)
class Plane:
    """Geometry of one frame, in DICOM LPS millimetres.

    Attributes:
        position: ImagePositionPatient (centre of the first transmitted pixel).
        orientation: ImageOrientationPatient (row direction, then column direction).
        spacing: PixelSpacing (between rows, between columns).
        thickness: SliceThickness / SpacingBetweenSlices, used only for a single plane.
    """

    position: npt.NDArray[np.float64]
    orientation: npt.NDArray[np.float64]
    spacing: tuple[float, float]
    thickness: float | None = None

    @property
    def normal(self) -> npt.NDArray[np.float64]:
        """Unit slice normal (row direction x column direction)."""
        n = np.cross(self.orientation[:3], self.orientation[3:])
        norm = float(np.linalg.norm(n))
        return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class Stack:
    """Sorted planes and the affine of the array (slice, row, column).

    Attributes:
        order: Indices of the input planes, sorted along the normal.
        step: Distance between consecutive slices in mm.
        affine_krc: 4x4 RAS+ affine of voxel index (slice, row, column).
    """

    order: tuple[int, ...]
    step: float
    affine_krc: npt.NDArray[np.float64]

    @property
    def affine_crk(self) -> npt.NDArray[np.float64]:
        """The same affine for voxel order (column, row, slice), the file's own (i, j, k)."""
        return self.affine_krc[:, [2, 1, 0, 3]]


def _floats(value: Any, n: int) -> npt.NDArray[np.float64] | None:
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.isfinite(arr).all() else None


def _thickness(*sources: Dataset | Mapping[str, Any] | None) -> float | None:
    for src in sources:
        if src is None:
            continue
        for key in ("SpacingBetweenSlices", "SliceThickness"):
            try:
                v = float(src.get(key) or 0)
            except (TypeError, ValueError):
                continue
            if v > 0:
                return v
    return None


def _spacing(*sources: Dataset | Mapping[str, Any] | None) -> tuple[float, float]:
    for src in sources:
        if src is None:
            continue
        for key in ("PixelSpacing", "ImagerPixelSpacing"):
            sp = _floats(src.get(key) or [], 2)
            if sp is not None and (sp > 0).all():
                return float(sp[0]), float(sp[1])
    return 1.0, 1.0


def classic_plane(ds: Dataset | Mapping[str, Any]) -> Plane | None:
    """The plane of a classic (single-frame style) image, or ``None`` without patient geometry.

    Args:
        ds: The dataset, or its ``fast_values`` dict.

    Returns:
        The plane from top-level ImagePositionPatient / ImageOrientationPatient / PixelSpacing.
    """
    ipp = _floats(ds.get("ImagePositionPatient") or [], 3)
    iop = _floats(ds.get("ImageOrientationPatient") or [], 6)
    if ipp is None or iop is None:
        return None
    return Plane(ipp, iop, _spacing(ds), _thickness(ds))


def _item(seq_owner: Dataset | None, keyword: str) -> Dataset | None:
    if seq_owner is None:
        return None
    seq = seq_owner.get(keyword)
    return seq[0] if seq else None


def enhanced_planes(ds: Dataset) -> list[Plane] | None:
    """Per-frame planes of an Enhanced multi-frame file (functional groups), else ``None``.

    Args:
        ds: The dataset.

    Returns:
        One plane per frame, or ``None`` when the file has no per-frame plane positions.
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return None
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    shared_orient = _item(shared, "PlaneOrientationSequence")
    shared_measure = _item(shared, "PixelMeasuresSequence")
    planes = []
    for fg in per_frame:
        pos = _item(fg, "PlanePositionSequence")
        orient = _item(fg, "PlaneOrientationSequence") or shared_orient
        measure = _item(fg, "PixelMeasuresSequence") or shared_measure
        ipp = _floats(pos.get("ImagePositionPatient") or [], 3) if pos is not None else None
        iop = (
            _floats(orient.get("ImageOrientationPatient") or [], 6) if orient is not None else None
        )
        if ipp is None or iop is None:
            return None
        planes.append(Plane(ipp, iop, _spacing(measure, ds), _thickness(measure, ds)))
    return planes


def _check_consistent(planes: Sequence[Plane], where: str) -> None:
    first = planes[0]
    for i, p in enumerate(planes[1:], start=1):
        if np.abs(p.orientation - first.orientation).max() > _ORIENT_TOL:
            raise ImageReadError(
                f"{where}: inconsistent orientation: slice {i} has ImageOrientationPatient "
                f"{np.round(p.orientation, 4).tolist()} but slice 0 has "
                f"{np.round(first.orientation, 4).tolist()}"
            )
        if not np.allclose(p.spacing, first.spacing, rtol=_SPACING_RTOL, atol=1e-6):
            raise ImageReadError(
                f"{where}: inconsistent pixel spacing: {p.spacing} vs {first.spacing}"
            )


def _uniform_step(dist: npt.NDArray[np.float64], where: str) -> float:
    diffs = np.diff(dist)
    if diffs.size == 0:
        return 0.0
    tiny = max(1e-3, 1e-4 * float(np.abs(dist).max(initial=1.0)))
    if (diffs < tiny).any():
        k = int(np.argmax(diffs < tiny))
        raise ImageReadError(
            f"{where}: duplicate slice positions at {dist[k]:.3f} mm along the normal "
            "(several series, echoes or time points in one folder?)"
        )
    step = float(np.median(diffs))
    tol = max(0.05 * step, 0.01)
    bad = np.flatnonzero(np.abs(diffs - step) > tol)
    if bad.size:
        k = int(bad[0])
        ratio = diffs[k] / step
        what = (
            f"missing slice(s): gap of {diffs[k]:.3f} mm between positions {dist[k]:.3f} and "
            f"{dist[k + 1]:.3f} mm where the spacing is {step:.3f} mm"
            if ratio > 1.5
            else f"uneven slice spacing: {diffs[k]:.3f} mm where the spacing is {step:.3f} mm"
        )
        raise ImageReadError(f"{where}: {what}")
    return step


def stack_planes(
    planes: Sequence[Plane], *, where: str, fallback_step: float | None = None
) -> Stack:
    """Sort planes along their normal, check them, and build the (slice, row, column) affine.

    Args:
        planes: One plane per slice/frame, in file or frame order.
        where: Folder or file named in error messages.
        fallback_step: Slice step for a single plane (else its thickness, else 1 mm).

    Returns:
        The sorted stack.

    Raises:
        ImageReadError: Inconsistent orientation or spacing, duplicates, gaps, uneven steps,
            or positions off a straight line.
    """
    if not planes:
        raise ImageReadError(f"{where}: no image slices")
    _check_consistent(planes, where)
    first = planes[0]
    normal = first.normal
    pos = np.stack([p.position for p in planes])
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    dist_sorted = dist[order]
    pos_sorted = pos[order]
    step = _uniform_step(dist_sorted, where)
    n = len(planes)
    if n > 1:
        step_vec = (pos_sorted[-1] - pos_sorted[0]) / (n - 1)
        expected = pos_sorted[0] + np.arange(n)[:, None] * step_vec
        off = float(np.abs(pos_sorted - expected).max())
        if off > max(0.1, 0.05 * step):
            raise ImageReadError(
                f"{where}: slice positions are not on a straight line (off by {off:.3f} mm)"
            )
    else:
        step = float(fallback_step or first.thickness or 1.0)
        step_vec = normal * step
    lps = np.eye(4)
    lps[:3, 0] = step_vec
    lps[:3, 1] = first.orientation[3:] * first.spacing[0]
    lps[:3, 2] = first.orientation[:3] * first.spacing[1]
    lps[:3, 3] = pos_sorted[0]
    return Stack(tuple(int(i) for i in order), float(step), LPS_TO_RAS @ lps)
