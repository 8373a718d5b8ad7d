"""The one NIfTI factory of the tests: single-file NIfTI-1/2 bytes and files built from arrays.

Files are assembled by hand (header, 4 extension bytes, Fortran-order voxels) so that every header
field is exactly what was asked for, scale factors included, which nibabel would rewrite.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = ["NiftiFile", "affine_for_codes", "make_nifti", "nifti_bytes"]

NiftiFile = Callable[..., Path]
"""The type of the ``nifti_file`` fixture (``tests/conftest.py``): ``(name, **fill) -> path``."""


def affine_for_codes(
    codes: Sequence[str], zooms: Sequence[float], shape: Sequence[int]
) -> npt.NDArray[np.float64]:
    """An affine whose voxel axes point to ``codes``, centred on the volume."""
    ornt = nib.orientations.axcodes2ornt(tuple(codes))
    aff = np.eye(4)
    aff[:3, :3] = 0
    for i, (axis, flip) in enumerate(ornt):
        aff[int(axis), i] = flip * zooms[i]
    aff[:3, 3] = -aff[:3, :3] @ (np.asarray(shape[:3]) - 1) / 2
    return aff


def nifti_bytes(
    array: npt.ArrayLike,
    affine: npt.ArrayLike | None = None,
    *,
    slope: float = np.nan,
    inter: float = 0.0,
    version: int = 1,
    compressed: bool = False,
) -> bytes:
    """A single-file NIfTI of ``array`` (file voxel order) with ``affine`` (default identity).

    Both qform and sform carry ``affine`` (code 1); ``scl_slope``/``scl_inter`` are written as given
    (NaN slope: unscaled). ``compressed`` gzips with a fixed time stamp, so equal arguments give
    equal bytes.
    """
    data = np.asarray(array)
    klass = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    hdr = klass(endianness=">" if data.dtype.byteorder == ">" else "<")
    hdr.set_data_shape(data.shape)
    hdr.set_data_dtype(data.dtype)
    aff = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    hdr.set_qform(aff, code=1)
    hdr.set_sform(aff, code=1)
    size = 348 if version == 1 else 540
    hdr["vox_offset"] = size + 4
    hdr["scl_slope"] = slope
    hdr["scl_inter"] = inter
    raw = hdr.binaryblock + b"\x00" * 4 + data.tobytes(order="F")
    return gzip.compress(raw, compresslevel=1, mtime=0) if compressed else raw


def make_nifti(
    path: Path,
    array: npt.ArrayLike,
    affine: npt.ArrayLike | None = None,
    *,
    slope: float = np.nan,
    inter: float = 0.0,
    version: int = 1,
) -> Path:
    """Write :func:`nifti_bytes` to ``path`` (gzipped if it ends in ``.gz``; folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compressed = path.name.endswith(".gz")
    path.write_bytes(
        nifti_bytes(array, affine, slope=slope, inter=inter, version=version, compressed=compressed)
    )
    return path
