"""Labels against their image: write a canonical label in the image's own geometry, check one.

A label computed on the canonical array of an image is brought back to the image file's voxel
order (the inverse of :func:`~.orientation.to_canonical`) and written as NIfTI
with the image file's affine, durably (temp file, fsync, replace). :func:`check_label_geometry`
refuses a label whose canonical shape, affine or dtype does not fit its image.

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([-1.0, 1, 1, 1])),
    ...          d / "img.nii.gz")
    >>> write_label_like(np.ones((6, 5, 4), np.uint8), d / "img.nii.gz", d / "lab.nii.gz")
    >>> check_label_geometry(d / "lab.nii.gz", d / "img.nii.gz")
"""

from __future__ import annotations

import gzip
import os
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from ..durable import atomic_write_bytes
from ..errors import LabelGeometryError
from .orientation import canonical_transform, from_canonical
from .registry import probe_image
from .types import DEFAULT_MAX_BYTES, ImageHeader

__all__ = ["check_label_geometry", "label_nifti_bytes", "write_label_like"]

_LABEL_DTYPES = tuple(np.dtype(t) for t in ("uint8", "int16", "uint16", "int32", "int64"))


def _spatial3(header: ImageHeader) -> tuple[int, ...]:
    """Canonical spatial shape as 3-D (a 2-D image has one slice)."""
    return header.shape if len(header.shape) == 3 else (1, *header.shape)


def _compact(label: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The label in the smallest integer dtype holding its values."""
    if label.dtype == np.bool_:
        return label.astype(np.uint8)
    if label.dtype.kind not in "iu":
        raise LabelGeometryError(f"a label must have an integer dtype, got {label.dtype}")
    if label.size == 0:
        return label.astype(np.uint8)
    lo, hi = int(label.min()), int(label.max())
    for cand in _LABEL_DTYPES:
        info = np.iinfo(cand)
        if info.min <= lo and hi <= info.max:
            return label.astype(cand, copy=label.dtype != cand)
    raise LabelGeometryError(f"label values {lo}..{hi} do not fit a NIfTI integer type")


def label_nifti_bytes(
    label_canonical: npt.NDArray[Any], header: ImageHeader, *, gz: bool = True
) -> bytes:
    """Serialise a canonical label as NIfTI-1 in the geometry ``header`` describes.

    Args:
        label_canonical: (D, H, W) or (1, D, H, W) for volumes, (H, W) or (1, H, W) for 2-D.
        header: The image's header (from :func:`probe_image`).
        gz: Gzip the result (for ``.nii.gz``).

    Returns:
        The file content.

    Raises:
        LabelGeometryError: Shape or dtype does not fit.
    """
    want = _spatial3(header)
    arr = np.asarray(label_canonical)
    if arr.ndim == len(header.shape) + 1 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if tuple(arr.shape) != want:
        raise LabelGeometryError(
            f"label shape {tuple(np.shape(label_canonical))} does not match the image's "
            f"canonical shape {header.shape}"
        )
    arr = _compact(arr)
    tr = canonical_transform(header.native_affine_array, header.native_shape or want[::-1])
    native = np.ascontiguousarray(from_canonical(arr, tr))
    img = nib.Nifti1Image(native, header.native_affine_array)
    img.header.set_data_dtype(native.dtype)
    img.set_qform(header.native_affine_array, code=1)
    img.set_sform(header.native_affine_array, code=1)
    data = img.to_bytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if gz else data


def write_label_like(
    label_canonical: npt.NDArray[Any],
    image_path: str | os.PathLike[str],
    dest_path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> None:
    """Write a label computed on the canonical image as NIfTI in the image file's own geometry.

    ``.nii.gz`` destinations are gzipped; the write is durable and atomic.

    Args:
        label_canonical: Label in canonical layout (see :func:`label_nifti_bytes`).
        image_path: The image the label belongs to (file or DICOM series folder).
        dest_path: Where to write (``.nii`` or ``.nii.gz``).
        max_bytes: Size cap used when probing the image.

    Raises:
        LabelGeometryError: Shape or dtype does not fit the image.
        ImageReadError: The image cannot be probed.
        OSError: The write failed (the destination is unchanged).

    Example:
        See the module example.
    """
    header = probe_image(image_path, max_bytes=max_bytes)
    gz = os.fspath(dest_path).lower().endswith(".gz")
    atomic_write_bytes(dest_path, label_nifti_bytes(label_canonical, header, gz=gz), point="label")


def check_label_geometry(
    label_path: str | os.PathLike[str],
    image_path: str | os.PathLike[str],
    *,
    atol: float = 1e-3,
) -> None:
    """Check that a label file fits its image: canonical shape, affine, integer dtype, one channel.

    A Slicer ``.seg.nrrd`` may hold several channels: its layers of overlapping segments.

    Args:
        label_path: The label file.
        image_path: The image file or series folder.
        atol: Absolute tolerance on every affine entry (mm).

    Raises:
        LabelGeometryError: A mismatch, naming what differs.
        ImageReadError: Either file cannot be probed.

    Example:
        See the module example.
    """
    lab = probe_image(label_path)
    img = probe_image(image_path)
    if lab.channels != 1 and not os.fspath(label_path).lower().endswith(".seg.nrrd"):
        raise LabelGeometryError(f"{label_path}: a label has one channel, found {lab.channels}")
    if np.dtype(lab.dtype).kind not in "iub":
        raise LabelGeometryError(f"{label_path}: label dtype {lab.dtype} is not an integer type")
    if _spatial3(lab) != _spatial3(img):
        raise LabelGeometryError(
            f"{label_path}: canonical shape {lab.shape} differs from the image's {img.shape}"
        )
    diff = float(np.abs(lab.affine_array - img.affine_array).max())
    if diff > atol:
        raise LabelGeometryError(
            f"{label_path}: affine differs from the image's by up to {diff:.4g} mm "
            f"(tolerance {atol})"
        )
