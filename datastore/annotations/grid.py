"""The voxel grid of one image file, and exact maps between its voxels and medstore's pixels.

Inside medstore, annotation pixel points ``(x, y, z)`` index the canonical array ``(D, H, W)``
(``x`` = column W, ``y`` = row H, ``z`` = slice D; continuous, an integer is a voxel centre).
Other tools index the file's own voxel order instead (``(i, j, k)`` of a NIfTI, ``(column, row,
slice)`` of a DICOM series). The canonical array is the file's array with axes permuted and
flipped only, so both maps are exact: a permutation plus ``n - 1 - v`` on flipped axes.

Examples:
    >>> import numpy as np
    >>> grid = ImageGrid(native_affine=np.diag([0.8, 0.8, 2.5, 1.0]), native_shape=(64, 64, 32))
    >>> grid.native_to_pixel([(10, 20, 3)]).tolist()     # RAS file: W and H run the other way
    [[53.0, 43.0, 3.0]]
    >>> grid.pixel_to_native([(53, 43, 3)]).tolist()
    [[10.0, 20.0, 3.0]]
    >>> grid.native_to_patient([(10, 20, 3)]).tolist()   # RAS+ mm
    [[8.0, 16.0, 7.5]]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from nibabel.orientations import inv_ornt_aff

from ..errors import AnnotationError
from ..imaging.orientation import CanonicalTransform, canonical_transform
from ..imaging.registry import probe_image
from ..imaging.types import ImageHeader
from .geometry import FloatArray, as_affine

__all__ = ["ImageGrid"]


class _ImageSource(Protocol):
    def get_image_uri(self, image_id: str) -> str: ...


def _points(points: npt.ArrayLike) -> FloatArray:
    array = np.array(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise AnnotationError(f"voxel points must be (N, 3), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise AnnotationError("voxel points must be finite")
    return array


@dataclass(frozen=True, eq=False)
class ImageGrid:
    """The file-order voxel grid of an image: its RAS+ affine and spatial shape.

    Args:
        native_affine: 4x4 affine from the file's voxel index ``(i, j, k)`` to RAS+ mm.
        native_shape: Spatial shape in the file's voxel order (2-D images: ``(W, H, 1)``).
        format: Reader name (``"nifti1"``, ``"dicom-series"``...), which decides how a tool's
            slice numbering maps onto the grid.
    """

    native_affine: npt.NDArray[np.float64]
    native_shape: tuple[int, int, int]
    format: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "native_affine", as_affine(self.native_affine))
        shape = tuple(int(s) for s in self.native_shape)
        shape = (*shape, 1, 1, 1)[:3]
        if min(shape) < 1:
            raise AnnotationError(f"an image grid needs a positive shape, got {shape}")
        object.__setattr__(self, "native_shape", shape)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_header(cls, header: ImageHeader) -> ImageGrid:
        """The grid of an image from its header (see ``imaging.probe_image``).

        Returns:
            The grid of the file's own voxel order.
        """
        if header.native_shape:
            affine, shape = header.native_affine, tuple(header.native_shape)
        else:  # a reader without file geometry: its canonical array is the file's grid
            affine, shape = header.affine, tuple(reversed(header.shape))
        return cls(
            native_affine=np.asarray(affine, dtype=np.float64),
            native_shape=shape,  # type: ignore[arg-type]
            format=header.format,
        )

    @classmethod
    def of_file(cls, path: str | os.PathLike[str]) -> ImageGrid:
        """The grid of an image file or DICOM series folder (header only, no voxels read)."""
        return cls.from_header(probe_image(path))

    @classmethod
    def of_image(cls, store: _ImageSource, image_id: str) -> ImageGrid:
        """The grid of a store's image.

        Args:
            store: A ``LocalDatastore`` (anything with ``get_image_uri``).
            image_id: The image.

        Returns:
            The grid of the image's file.
        """
        return cls.of_file(store.get_image_uri(image_id))

    # -- facts ------------------------------------------------------------------------------

    @cached_property
    def transform(self) -> CanonicalTransform:
        """How the file's voxel axes map to the canonical ``(D, H, W)`` axes."""
        return canonical_transform(self.native_affine, self.native_shape)

    @cached_property
    def canonical_affine(self) -> FloatArray:
        """The RAS+ affine of the canonical ``(D, H, W)`` array."""
        inverse = inv_ornt_aff(self.transform.as_array(), self.native_shape)
        result: FloatArray = self.native_affine @ inverse
        return result

    def axis_codes(self) -> tuple[str, str, str]:
        """nibabel axis codes of the file's voxel axes, e.g. ``('L', 'A', 'S')``."""
        from nibabel.orientations import aff2axcodes

        codes = aff2axcodes(self.native_affine)
        return (str(codes[0]), str(codes[1]), str(codes[2]))

    # -- maps -------------------------------------------------------------------------------

    def native_to_pixel(self, points: npt.ArrayLike) -> FloatArray:
        """File voxel points ``(i, j, k)`` to medstore pixel points ``(x, y, z)`` = (W, H, D).

        Args:
            points: ``(N, 3)`` continuous voxel indices in the file's order.

        Returns:
            ``(N, 3)`` float64 canonical pixel points.
        """
        native = _points(points)
        canonical = np.empty_like(native)  # (d, h, w)
        for src, (dst, flip) in enumerate(self.transform.ornt):
            values = native[:, src]
            canonical[:, dst] = values if flip == 1 else (self.native_shape[src] - 1) - values
        return np.ascontiguousarray(canonical[:, ::-1])

    def pixel_to_native(self, points: npt.ArrayLike) -> FloatArray:
        """Medstore pixel points ``(x, y, z)`` back to file voxel points (exact inverse)."""
        canonical = _points(points)[:, ::-1]  # (d, h, w)
        native = np.empty_like(canonical)
        for src, (dst, flip) in enumerate(self.transform.ornt):
            values = canonical[:, dst]
            native[:, src] = values if flip == 1 else (self.native_shape[src] - 1) - values
        return native

    def native_to_patient(self, points: npt.ArrayLike) -> FloatArray:
        """File voxel points to RAS+ mm through the file's own affine."""
        native = _points(points)
        result: FloatArray = native @ self.native_affine[:3, :3].T + self.native_affine[:3, 3]
        return result

    def patient_to_native(self, points: npt.ArrayLike) -> FloatArray:
        """RAS+ mm to continuous file voxel points (not rounded)."""
        world = _points(points)
        matrix = self.native_affine
        solved = np.linalg.solve(matrix[:3, :3], (world - matrix[:3, 3]).T).T
        result: FloatArray = np.ascontiguousarray(solved, dtype=np.float64)
        return result

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (format, shape, axis codes) for messages and side files."""
        return {
            "format": self.format,
            "native_shape": list(self.native_shape),
            "axis_codes": list(self.axis_codes()),
        }


def probed_frame_count(store: _ImageSource, image_id: str) -> int | None:
    """Frames (canonical ``D``) of a store's image, from its header; ``None`` if unreadable.

    Args:
        store: A ``LocalDatastore`` (anything with ``get_image_uri``).
        image_id: The image.

    Returns:
        The frame count (1 for a 2-D image), or ``None`` when the header cannot be read.
    """
    try:
        return int(ImageGrid.of_image(store, image_id).transform.canonical_shape[0])
    except (OSError, ValueError, LookupError):
        return None
