"""Voxel-value rules shared by the readers: size guards, rescale dtype choice, finiteness.

Examples:
    >>> import numpy as np
    >>> rescaled_dtype(np.dtype("uint16"), 1.0, -1024.0, lo=0, hi=4095)
    dtype('int16')
    >>> rescaled_dtype(np.dtype("int16"), 0.5, 0.0)
    dtype('float32')
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ImageReadError

__all__ = ["apply_rescale", "check_declared_size", "is_integral", "rescaled_dtype"]

_INT_CANDIDATES = tuple(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "int32", "int64"))
_F32_MAX = float(np.finfo(np.float32).max)


def check_declared_size(
    declared: int,
    *,
    max_bytes: int,
    available: int | None,
    path: str | os.PathLike[str],
    what: str = "voxel data",
) -> None:
    """Refuse a declared data size over the cap or larger than the file can hold.

    Args:
        declared: Bytes the header declares.
        max_bytes: The configured cap.
        available: Bytes the file can provide (``None`` when unknown).
        path: The file, for the message.
        what: What the bytes are, for the message.

    Raises:
        ImageReadError: The size is negative, over the cap, or over ``available``.

    Example:
        >>> check_declared_size(10, max_bytes=100, available=10, path="x.nii")
    """
    if declared < 0:
        raise ImageReadError(f"{path}: header declares a negative {what} size")
    if declared > max_bytes:
        raise ImageReadError(
            f"{path}: header declares {declared} bytes of {what}, over the "
            f"{max_bytes}-byte cap (raise max_bytes to read it)"
        )
    if available is not None and declared > available:
        raise ImageReadError(
            f"{path}: header declares {declared} bytes of {what} but the file holds only "
            f"{max(available, 0)} (truncated or corrupt)"
        )


def is_integral(value: float) -> bool:
    """True when ``value`` is a finite whole number."""
    return math.isfinite(value) and float(value).is_integer()


def rescaled_dtype(
    raw: np.dtype[Any],
    slope: float,
    inter: float,
    *,
    lo: float | None = None,
    hi: float | None = None,
) -> np.dtype[Any]:
    """The dtype of ``raw * slope + inter``: an integer type when both are integral, else float32.

    Args:
        raw: Stored dtype.
        slope: Rescale slope.
        inter: Rescale intercept.
        lo: Smallest stored value possible (defaults to the dtype's minimum).
        hi: Largest stored value possible (defaults to the dtype's maximum).

    Returns:
        The smallest integer dtype holding every possible result, ``raw`` itself when the
        transform is the identity, or float32.
    """
    if raw.kind == "f":
        return np.dtype(np.float32)
    if raw.kind == "b":
        raw = np.dtype(np.uint8)
    if slope == 1 and inter == 0:
        return raw.newbyteorder("=")
    if not (is_integral(slope) and is_integral(inter)):
        return np.dtype(np.float32)
    info = np.iinfo(raw)
    lo_v = float(info.min if lo is None else lo)
    hi_v = float(info.max if hi is None else hi)
    ends = (lo_v * slope + inter, hi_v * slope + inter)
    low, high = min(ends), max(ends)
    for cand in _INT_CANDIDATES:
        ci = np.iinfo(cand)
        if ci.min <= low and high <= ci.max:
            return cand
    return np.dtype(np.float32)


def apply_rescale(
    raw: npt.NDArray[Any],
    slope: float,
    inter: float,
    out_dtype: np.dtype[Any],
    *,
    path: str | os.PathLike[str] = "",
) -> npt.NDArray[Any]:
    """Return ``raw * slope + inter`` in ``out_dtype``, never making finite values non-finite.

    Args:
        raw: Stored values.
        slope: Rescale slope.
        inter: Rescale intercept.
        out_dtype: Target dtype from :func:`rescaled_dtype`.
        path: The file, for messages.

    Returns:
        The rescaled array (``raw`` itself when nothing changes).

    Raises:
        ImageReadError: The values overflow float32.
    """
    if slope == 1 and inter == 0 and raw.dtype == out_dtype:
        return raw
    if out_dtype.kind in "iu":
        out = raw.astype(out_dtype)
        if slope != 1:
            out *= out_dtype.type(slope)
        if inter != 0:
            out += out_dtype.type(inter)
        return out
    if raw.dtype.kind == "f":
        src_max = float(np.max(np.abs(raw[np.isfinite(raw)]), initial=0.0))
    else:
        info = np.iinfo(raw.dtype)
        src_max = float(max(abs(int(info.min)), abs(int(info.max))))
    with np.errstate(over="ignore", invalid="ignore"):
        out = raw.astype(np.float32)
        if slope != 1:
            out *= np.float32(slope)
        if inter != 0:
            out += np.float32(inter)
    if src_max * abs(slope) + abs(inter) > _F32_MAX * 0.5:
        bad = ~np.isfinite(out) & np.isfinite(raw)
        if bad.any():
            raise ImageReadError(f"{path}: voxel values overflow float32 after rescaling")
    return out
