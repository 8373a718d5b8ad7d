"""Build canonical headers and image data from a reader's native array geometry.

Examples:
    >>> import numpy as np
    >>> h = volume_header("nifti1", native_affine=np.diag([-2.0, 2, 3, 1]), native_shape=(4, 5, 6),
    ...                   channels=1, dtype=np.dtype("int16"))
    >>> h.shape, h.spacing, h.orientation
    ((6, 5, 4), (3.0, 2.0, 2.0), ('L', 'A', 'S'))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from nibabel.orientations import inv_ornt_aff

from .orientation import axis_codes, canonical_transform, to_canonical
from .types import ImageData, ImageHeader, ImageKind, matrix

__all__ = ["flat_affine", "spacing_of", "to_image_data", "volume_header"]


def spacing_of(affine: npt.ArrayLike) -> tuple[float, ...]:
    """Voxel sizes (column norms of the 3x3 part) of an affine.

    Args:
        affine: 4x4 affine.

    Returns:
        Three spacings.
    """
    a = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.sqrt((a[:3, :3] ** 2).sum(axis=0)))


def flat_affine(spacing_dhw: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    """Native (W, H, D) affine of an image without patient geometry, canonical by construction.

    The native voxel order is (column, row, frame) and points to ``("L", "P", "S")`` so that
    :func:`to_canonical` only transposes it to (frame, row, column).

    Args:
        spacing_dhw: Frame, row and column spacing.

    Returns:
        The 4x4 affine.
    """
    d, h, w = spacing_dhw
    return np.diag([-w, -h, d, 1.0])


def volume_header(
    fmt: str,
    *,
    native_affine: npt.ArrayLike,
    native_shape: tuple[int, ...],
    channels: int,
    dtype: np.dtype[Any],
    kind: ImageKind = "volume",
    **facts: Any,
) -> ImageHeader:
    """Header of a 3-D image given the geometry of its file-order voxels.

    Args:
        fmt: Reader name.
        native_affine: 4x4 RAS+ affine of the file's voxel order.
        native_shape: Spatial shape in the file's voxel order.
        channels: Channel count.
        dtype: dtype that reading will return.
        kind: ``"volume"`` or ``"video"``.
        **facts: Further :class:`ImageHeader` fields (modality, uids, n_frames...).

    Returns:
        The header, canonical shape/affine/spacing filled in.
    """
    aff = np.asarray(native_affine, dtype=np.float64)
    shape3 = tuple(int(s) for s in native_shape[:3])
    tr = canonical_transform(aff, shape3)
    can_aff = aff @ inv_ornt_aff(tr.as_array(), shape3)
    return ImageHeader(
        format=fmt,
        kind=kind,
        shape=tr.canonical_shape,
        channels=int(channels),
        dtype=np.dtype(dtype).name,
        spacing=spacing_of(can_aff),
        affine=matrix(can_aff),
        orientation=axis_codes(aff),
        native_affine=matrix(aff),
        native_shape=shape3,
        **facts,
    )


def to_image_data(
    array: npt.NDArray[Any],
    affine: npt.ArrayLike,
    header: ImageHeader,
    meta: dict[str, Any] | None = None,
) -> ImageData:
    """Reorient a spatial-first array (``(i, j, k)`` or ``(i, j, k, C)``) into :class:`ImageData`.

    Args:
        array: Voxels with the three spatial axes first (in ``affine``'s order) and an optional
            trailing channel axis.
        affine: 4x4 RAS+ affine of ``array``'s spatial axes.
        header: The image's header (its dtype is what ``array`` must have).
        meta: Extra facts.

    Returns:
        Channels-first canonical data (views where possible, no copy).
    """
    if array.ndim == 3:
        array = array[..., np.newaxis]
    can, can_aff, tr = to_canonical(array, affine)
    out = np.moveaxis(can, -1, 0)
    info: dict[str, Any] = {
        "format": header.format,
        "kind": header.kind,
        "orientation": list(header.orientation),
        "canonical_transform": [list(p) for p in tr.ornt],
    }
    info.update(meta or {})
    return ImageData(
        array=out, affine=can_aff, spacing=spacing_of(can_aff), header=header, meta=info
    )
