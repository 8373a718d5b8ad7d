"""Slicer segmentations saved cropped, put back on their image's grid.

3D Slicer may save a ``.seg.nrrd`` cropped to the segments' extent ("crop to minimum extent"):
the file then holds a box smaller than its image, its ``space origin`` is the world position of
the box's first voxel and ``Segmentation_ReferenceImageExtentOffset`` says where that voxel lies
in the reference image's grid. A box on the image's grid (same voxel axes and spacing, whole-voxel
offset, inside the image) is padded with zeros to the image's extent, the way Slicer itself loads
it; anything else is refused, since fitting it would need resampling.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.imaging import ImageHeader
    >>> from medstore.datastore.imaging.seg_nrrd import Segmentation
    >>> image = ImageHeader(format="nifti1", kind="volume", shape=(4, 5, 6), channels=1,
    ...                     dtype="int16", affine=np.eye(4), spacing=(1.0, 1.0, 1.0))
    >>> box = np.eye(4); box[:3, 3] = (1, 2, 3)          # the crop starts at voxel (1, 2, 3)
    >>> seg = Segmentation(np.ones((1, 2, 2, 2), np.uint8), (), box)
    >>> padded = pad_to_image(seg, image)
    >>> padded.layers.shape, int(padded.layers.sum()), bool(padded.layers[0, 1:3, 2:4, 3:5].all())
    ((1, 4, 5, 6), 8, True)
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import LabelGeometryError
from .registry import probe_image
from .seg_nrrd import Segmentation, read_segmentation, segmentation_bytes
from .types import ImageHeader

__all__ = ["pad_to_image", "padded_seg_nrrd"]

#: Largest distance (mm per affine entry, voxels for the offset) still read as "on the grid".
ATOL = 1e-3


def pad_to_image(
    seg: Segmentation, image: ImageHeader, *, shown: str = "segmentation"
) -> Segmentation:
    """Pad a segmentation cropped on its image's grid to the image's canonical extent.

    Args:
        seg: Layers in canonical layout with their canonical affine (:func:`read_segmentation`).
        image: The image's header.
        shown: How messages name the segmentation.

    Returns:
        The segmentation on the image's full grid (``seg`` itself when it already is).

    Raises:
        LabelGeometryError: Its voxel axes or spacing differ from the image's, it is offset by
            a fraction of a voxel, or part of it lies outside the image.
    """
    shape = image.shape if len(image.shape) == 3 else (1, *image.shape)
    img_aff, seg_aff = image.affine_array, np.asarray(seg.affine, dtype=np.float64)
    box = tuple(int(s) for s in seg.layers.shape[1:])
    if len(box) != 3:
        raise LabelGeometryError(f"{shown}: layers of shape {box} are not a volume")
    dirs_diff = float(np.abs(seg_aff[:3, :3] - img_aff[:3, :3]).max())
    if dirs_diff > ATOL:
        raise LabelGeometryError(
            f"{shown}: its voxel axes or spacing differ from the image's (by up to "
            f"{dirs_diff:.4g} mm); a segmentation cropped on the image's grid is padded, "
            "others would need resampling"
        )
    offset = np.linalg.solve(img_aff, np.append(seg_aff[:3, 3], 1.0))[:3]
    whole = np.round(offset)
    if float(np.abs(offset - whole).max()) > ATOL:
        raise LabelGeometryError(
            f"{shown}: its first voxel lies between the image's voxels (offset "
            f"{np.array2string(offset, precision=3)}); it is not on the image's grid"
        )
    start = tuple(int(v) for v in whole)
    stop = tuple(a + b for a, b in zip(start, box, strict=True))
    if min(start) < 0 or any(b > s for b, s in zip(stop, shape, strict=True)):
        raise LabelGeometryError(
            f"{shown}: its box of {box} voxels at {start} reaches outside the image's canonical "
            f"extent {tuple(shape)}"
        )
    if start == (0, 0, 0) and box == tuple(shape):
        return seg
    layers = np.zeros((seg.layers.shape[0], *shape), dtype=seg.layers.dtype)
    layers[:, start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]] = seg.layers
    return Segmentation(layers, seg.segments, img_aff.copy())


def padded_seg_nrrd(
    path: str | os.PathLike[str], image_path: str | os.PathLike[str], *, shown: str = ""
) -> bytes | None:
    """A ``.seg.nrrd`` saved cropped, rewritten on its image's full grid.

    The segments (names, values, layers, colours) are kept; the voxels outside the crop are 0.

    Args:
        path: The ``.seg.nrrd``.
        image_path: Its image.
        shown: How messages name the file (default: its path).

    Returns:
        The padded file's content, or ``None`` when the file already has the image's canonical
        shape and affine (nothing to pad).

    Raises:
        LabelGeometryError: See :func:`pad_to_image`.
        ImageReadError: Either file cannot be read.
    """
    image = probe_image(image_path)
    label = probe_image(path)
    shape = image.shape if len(image.shape) == 3 else (1, *image.shape)
    same = label.shape == tuple(shape)
    if same and float(np.abs(label.affine_array - image.affine_array).max()) <= ATOL:
        return None
    seg = pad_to_image(read_segmentation(path), image, shown=shown or str(path))
    return segmentation_bytes(seg, image)
