"""DICOM value transforms shared by the file and series readers: rescale pairs and header facts.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.imaging.dicom_io import FrameLayout
    >>> f = FrameLayout(4, 4, 1, 1, 16, 12, False, "MONOCHROME2", 0)
    >>> combined_dtype(f, [(1.0, -1024.0)])
    dtype('int16')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from ._values import apply_rescale, rescaled_dtype
from .dicom_io import FrameLayout

__all__ = ["apply_pairs", "combined_dtype", "dataset_facts", "rescale_pair", "rescale_pairs"]


def _float(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


def rescale_pair(*sources: Dataset | Mapping[str, Any] | None) -> tuple[float, float]:
    """RescaleSlope/RescaleIntercept from the first source that has them (default 1, 0).

    Args:
        *sources: Datasets or functional-group items to look in, in priority order.

    Returns:
        ``(slope, intercept)``; a zero or missing slope counts as 1.
    """
    for src in sources:
        if src is not None and "RescaleSlope" in src:
            slope = _float(src.get("RescaleSlope"), 1.0) or 1.0
            return slope, _float(src.get("RescaleIntercept"), 0.0)
    return 1.0, 0.0


def rescale_pairs(ds: Dataset, n_frames: int) -> list[tuple[float, float]]:
    """Per-frame (slope, intercept) of a file: Enhanced groups, RT Dose scaling or top level.

    Args:
        ds: The dataset.
        n_frames: Frames in the file.

    Returns:
        One pair per frame.
    """
    if "DoseGridScaling" in ds:
        return [(_float(ds.get("DoseGridScaling"), 1.0) or 1.0, 0.0)] * n_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    shared_pv = _first(shared, "PixelValueTransformationSequence")
    if per_frame and len(per_frame) == n_frames:
        return [
            rescale_pair(_first(fg, "PixelValueTransformationSequence"), shared_pv, ds)
            for fg in per_frame
        ]
    return [rescale_pair(shared_pv, ds)] * n_frames


def _first(owner: Dataset | None, keyword: str) -> Dataset | None:
    if owner is None:
        return None
    seq = owner.get(keyword)
    return seq[0] if seq else None


def _stored_range(f: FrameLayout) -> tuple[float | None, float | None]:
    if f.float_kind or f.photometric == "PALETTE COLOR":
        return None, None
    bits = max(1, min(f.bits_stored, f.bits_allocated))
    if f.signed:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def combined_dtype(f: FrameLayout, pairs: Sequence[tuple[float, float]]) -> np.dtype[Any]:
    """Output dtype for all frames: integer when every pair is integral, else float32.

    Args:
        f: Pixel layout.
        pairs: Per-frame (slope, intercept).

    Returns:
        The dtype.
    """
    lo, hi = _stored_range(f)
    dtypes = {rescaled_dtype(f.dtype, s, i, lo=lo, hi=hi) for s, i in set(pairs)}
    if any(d.kind == "f" for d in dtypes):
        return np.dtype(np.float32)
    return np.result_type(*dtypes)


def apply_pairs(
    raw: npt.NDArray[Any],
    pairs: Sequence[tuple[float, float]],
    out_dtype: np.dtype[Any],
    *,
    path: str = "",
) -> npt.NDArray[Any]:
    """Rescale frames (axis 0 of ``raw``) with their own (slope, intercept).

    Args:
        raw: Stored values, frames first.
        pairs: One pair per frame.
        out_dtype: From :func:`combined_dtype`.
        path: For messages.

    Returns:
        The rescaled array (``raw`` itself when nothing changes).
    """
    if len(set(pairs)) == 1:
        slope, inter = pairs[0]
        return apply_rescale(raw, slope, inter, out_dtype, path=path)
    out = np.empty(raw.shape, dtype=out_dtype)
    for k, (slope, inter) in enumerate(pairs):
        out[k] = apply_rescale(raw[k], slope, inter, out_dtype, path=path)
    return out


def dataset_facts(ds: Dataset) -> dict[str, Any]:
    """Header facts safe to keep: modality and UIDs, patient id (never the patient's name).

    Args:
        ds: The dataset.

    Returns:
        Keyword arguments for :class:`~medstore.datastore.imaging.types.ImageHeader`.
    """

    def text(key: str) -> str | None:
        value = ds.get(key)
        return str(value).strip() or None if value is not None else None

    return {
        "modality": text("Modality"),
        "series_uid": text("SeriesInstanceUID"),
        "study_uid": text("StudyInstanceUID"),
        "patient_id": text("PatientID"),
    }
