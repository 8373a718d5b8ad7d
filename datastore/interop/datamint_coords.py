"""Datamint pixel coordinates ``(x, y, frame)`` on an image file's own voxel grid.

datamint 2.45 converts pixels to patient coordinates with medimgkit:

* NIfTI: frames are axial slices. The slice axis is the file axis pointing inferior/superior;
  frame ``f`` is voxel ``f`` along it when that axis points superior, else ``n - 1 - f``. Of the
  two other file axes, ``x`` indexes the lower-numbered one and ``y`` the higher, unflipped.
  The voxel goes through the file's affine (RAS+), and Datamint's patient point is that point
  with x and y negated (LPS).
* DICOM (a series, or one multi-frame file) and 2-D images: ``x`` is the column, ``y`` the row of
  frame ``f`` of the file's own frame order: the voxel ``(x, y, f)`` of the file.

Inside medstore, pixels index the canonical array; :class:`ImageGrid` maps file voxels to it.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.annotations.grid import ImageGrid
    >>> affine = np.diag([0.8, 0.8, 2.5, 1.0]); affine[:3, 3] = (-100, -120, -50)
    >>> grid = ImageGrid(native_affine=affine, native_shape=(64, 64, 32), format="nifti1")
    >>> grid.native_to_patient(datamint_to_native([(10, 20, 3)], grid)).tolist()
    [[-92.0, -104.0, -42.5]]
    >>> native_to_datamint(datamint_to_native([(10, 20, 3)], grid), grid).tolist()
    [[10.0, 20.0, 3.0]]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..annotations.geometry import FloatArray
from ..annotations.grid import ImageGrid
from ..errors import AnnotationError

__all__ = ["datamint_to_native", "native_to_datamint", "slice_axis"]


def slice_axis(grid: ImageGrid) -> tuple[int, bool]:
    """The file axis Datamint counts frames along, and whether it counts them backwards.

    Args:
        grid: The image's grid.

    Returns:
        ``(axis, reversed)``.

    Raises:
        AnnotationError: A NIfTI without an inferior/superior axis (not possible for nibabel's
            closest-axis codes, kept as a guard).
    """
    if not grid.format.startswith("nifti"):
        return 2, False
    codes = grid.axis_codes()
    for axis, code in enumerate(codes):
        if code in ("I", "S"):
            return axis, code != "S"
    raise AnnotationError(f"the image has no axial slice axis (axis codes {codes})")


def _axes(grid: ImageGrid) -> tuple[int, int, int, bool]:
    axis, backwards = slice_axis(grid)
    x_axis, y_axis = (a for a in range(3) if a != axis)
    return x_axis, y_axis, axis, backwards


def datamint_to_native(points: npt.ArrayLike, grid: ImageGrid) -> FloatArray:
    """Datamint pixel points ``(x, y, frame)`` to file voxel points ``(i, j, k)``.

    Args:
        points: ``(N, 3)`` points.
        grid: The image's grid.

    Returns:
        ``(N, 3)`` float64 file voxel points.
    """
    array = np.array(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise AnnotationError(f"Datamint pixel points must be (N, 3), got shape {array.shape}")
    x_axis, y_axis, axis, backwards = _axes(grid)
    native = np.empty_like(array)
    native[:, x_axis] = array[:, 0]
    native[:, y_axis] = array[:, 1]
    frames = array[:, 2]
    native[:, axis] = (grid.native_shape[axis] - 1) - frames if backwards else frames
    return native


def native_to_datamint(points: npt.ArrayLike, grid: ImageGrid) -> FloatArray:
    """File voxel points back to Datamint pixel points (exact inverse of the above).

    Args:
        points: ``(N, 3)`` file voxel points.
        grid: The image's grid.

    Returns:
        ``(N, 3)`` float64 ``(x, y, frame)`` points.
    """
    native = np.array(points, dtype=np.float64)
    x_axis, y_axis, axis, backwards = _axes(grid)
    out = np.empty_like(native)
    out[:, 0] = native[:, x_axis]
    out[:, 1] = native[:, y_axis]
    frames = native[:, axis]
    out[:, 2] = (grid.native_shape[axis] - 1) - frames if backwards else frames
    return out
