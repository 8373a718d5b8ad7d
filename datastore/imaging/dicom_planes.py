"""Where annotation planes and volumes sit on an image's canonical grid (SEG and RTSTRUCT).

A DICOM SEG or RT Structure Set describes its content in patient coordinates (LPS mm); these
helpers bring it onto the canonical voxel grid of the image it annotates, refusing what does not
fit instead of resampling: :func:`place_on_grid` puts a volume whose axes match the image's
(an integer voxel offset, same spacing and directions) into the image's array;
:func:`plane_voxels` gives, for every pixel of a source slice, its canonical voxel;
:func:`source_datasets` reads a series folder's slice headers in slice order.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.imaging import ImageHeader
    >>> h = ImageHeader(format="x", kind="volume", shape=(3, 4, 5), channels=1, dtype="uint8",
    ...                 spacing=(1.0, 1.0, 1.0), affine=tuple(map(tuple, np.eye(4))))
    >>> aff = np.eye(4); aff[:3, 3] = [1, 2, 0]          # starts at voxel (1, 2, 0)
    >>> out = place_on_grid(np.ones((2, 2, 5), np.uint8), aff, h, where="seg.dcm")
    >>> int(out.sum()), bool(out[1:3, 2:4].all())
    (20, True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset

from ..errors import ImageReadError
from .orientation import LPS_TO_RAS
from .types import ImageHeader

__all__ = ["place_on_grid", "plane_voxels", "source_datasets", "world_to_voxel"]

#: Largest distance (in voxels) a position may be off the grid and still count as on it.
GRID_TOLERANCE = 0.1


def _shape3(header: ImageHeader) -> tuple[int, int, int]:
    s = header.shape if len(header.shape) == 3 else (1, *header.shape)
    return (int(s[0]), int(s[1]), int(s[2]))


def world_to_voxel(points_lps: npt.ArrayLike, header: ImageHeader) -> npt.NDArray[np.float64]:
    """Continuous canonical voxel coordinates ``(d, h, w)`` of LPS points (one per row).

    Args:
        points_lps: ``(N, 3)`` patient coordinates in mm (DICOM's LPS).
        header: The image's header.

    Returns:
        ``(N, 3)`` canonical voxel coordinates (integers at voxel centres).
    """
    pts = np.atleast_2d(np.asarray(points_lps, dtype=np.float64))
    ras = (LPS_TO_RAS[:3, :3] @ pts.T).T
    inv = np.linalg.inv(header.affine_array)
    return (inv[:3, :3] @ ras.T).T + inv[:3, 3]


def place_on_grid(
    array: npt.NDArray[Any],
    affine: npt.NDArray[np.float64],
    header: ImageHeader,
    *,
    where: object,
) -> npt.NDArray[Any]:
    """Put a canonical array with its own RAS+ ``affine`` into the image's canonical grid.

    Args:
        array: ``(D, H, W)`` array in canonical layout.
        affine: Its RAS+ affine.
        header: The image it must fit.
        where: The file, for messages.

    Returns:
        An array of the image's canonical shape (zeros outside ``array``).

    Raises:
        ImageReadError: Other spacing or directions, an offset that is not a whole number of
            voxels, or a part outside the image.
    """
    target = header.affine_array
    scale = np.abs(target[:3, :3]).max()
    if not np.allclose(affine[:3, :3], target[:3, :3], atol=1e-3 * max(scale, 1.0)):
        raise ImageReadError(
            f"{where}: its frames do not match the referenced image's geometry "
            "(other spacing or orientation)"
        )
    offset = world_to_voxel((LPS_TO_RAS[:3, :3] @ affine[:3, 3])[np.newaxis], header)[0]
    start = np.round(offset)
    if np.abs(offset - start).max() > GRID_TOLERANCE:
        raise ImageReadError(
            f"{where}: its frames are off the referenced image's voxel grid by "
            f"{np.abs(offset - start).max():.2f} voxel"
        )
    shape = _shape3(header)
    lo = start.astype(int)
    hi = lo + np.asarray(array.shape[:3])
    if (lo < 0).any() or (hi > np.asarray(shape)).any():
        raise ImageReadError(
            f"{where}: its frames reach outside the referenced image (voxels {lo.tolist()} to "
            f"{(hi - 1).tolist()} of an image of {list(shape)})"
        )
    out = np.zeros(shape, dtype=array.dtype)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = array
    return out


def plane_voxels(ds: Dataset, header: ImageHeader) -> npt.NDArray[np.int64]:
    """Canonical voxel ``(d, h, w)`` of every pixel ``(row, column)`` of a source slice.

    Args:
        ds: The slice's header (ImagePositionPatient, ImageOrientationPatient, PixelSpacing).
        header: The image's header.

    Returns:
        ``(Rows, Columns, 3)`` integer indices.

    Raises:
        ImageReadError: The slice is not on the image's voxel grid.
    """
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    rows, cols = int(ds.Rows), int(ds.Columns)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    pts = ipp + c[..., None] * dc * iop[:3] + r[..., None] * dr * iop[3:]
    vox = world_to_voxel(pts.reshape(-1, 3), header).reshape(rows, cols, 3)
    idx = np.round(vox)
    if np.abs(vox - idx).max() > GRID_TOLERANCE:
        raise ImageReadError(f"{ds.get('SOPInstanceUID', '?')}: slice is off the image's grid")
    return idx.astype(np.int64)


def source_datasets(folder: str | os.PathLike[str]) -> list[Dataset]:
    """The slice headers (no pixels) of a DICOM series folder, sorted along the slice normal.

    Args:
        folder: A series folder in the store (non-image files such as a SEG are skipped).

    Returns:
        Datasets with their geometry and UIDs.

    Raises:
        ImageReadError: No image slices in the folder.
    """
    out: list[Dataset] = []
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError):
            continue
        if "ImagePositionPatient" in ds and "Rows" in ds:
            out.append(ds)
    if not out:
        raise ImageReadError(f"{folder}: no DICOM image slices")
    iop = np.asarray([float(v) for v in out[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    out.sort(key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))
    return out
