"""Value types of the imaging package: read limits, image header facts and decoded image data.

Examples:
    >>> h = ImageHeader(format="nifti1", kind="volume", shape=(2, 3, 4), channels=1,
    ...                 dtype="int16", spacing=(1.0, 1.0, 1.0))
    >>> h.info_facts()["shape"], h.array_shape
    ([2, 3, 4], (1, 2, 3, 4))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_MAX_BYTES", "ImageData", "ImageHeader", "ImageKind", "ReadLimits"]

#: Default cap on the declared voxel-data size of one image (4 GiB).
DEFAULT_MAX_BYTES = 4 << 30

#: "volume": (C, D, H, W) with patient geometry; "video": (C, T, H, W) frames;
#: "image": (C, H, W) 2-D picture.
ImageKind = Literal["volume", "video", "image"]

_Matrix = tuple[tuple[float, float, float, float], ...]


def _as_matrix(affine: npt.ArrayLike) -> _Matrix:
    """A 4x4 affine as a hashable tuple of rows."""
    a = np.asarray(affine, dtype=np.float64).reshape(4, 4)
    return tuple((float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in a)


@dataclass(frozen=True)
class ReadLimits:
    """Safety limits applied before any allocation.

    Attributes:
        max_bytes: Largest declared voxel-data size (bytes) a reader will accept.
    """

    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class ImageHeader:
    """Header facts of one image, read without loading voxels.

    Attributes:
        format: Reader name, e.g. ``"nifti1"``, ``"dicom"``, ``"dicom-series"``.
        kind: ``"volume"``, ``"video"`` or ``"image"``.
        shape: Spatial shape in canonical order: (D, H, W) for volumes and videos (D = frames),
            (H, W) for 2-D images. Channels are separate.
        channels: Number of channels C (4-D NIfTI volumes, RGB).
        dtype: numpy dtype name of the array :func:`read_image` returns.
        spacing: Voxel size in mm along ``shape`` (frames of a video: frame time or 1.0).
        affine: 4x4 RAS+ affine of the canonical array (rows as tuples).
        orientation: Axis codes of the file's own voxel axes, e.g. ``("L", "A", "S")``.
        native_affine: 4x4 RAS+ affine of the file's own voxel order (i, j, k).
        native_shape: Spatial shape in the file's own voxel order.
        modality: DICOM Modality (``"CT"``, ``"MR"``...) when known.
        n_frames: Number of frames (slices of a series, frames of a multi-frame file).
        series_uid: DICOM SeriesInstanceUID when present.
        study_uid: DICOM StudyInstanceUID when present.
        patient_id: DICOM PatientID when present (never the patient's name).
    """

    format: str
    kind: ImageKind
    shape: tuple[int, ...]
    channels: int
    dtype: str
    spacing: tuple[float, ...]
    affine: _Matrix = field(default_factory=lambda: _as_matrix(np.eye(4)))
    orientation: tuple[str, ...] = ("S", "P", "L")
    native_affine: _Matrix = field(default_factory=lambda: _as_matrix(np.eye(4)))
    native_shape: tuple[int, ...] = ()
    modality: str | None = None
    n_frames: int = 1
    series_uid: str | None = None
    study_uid: str | None = None
    patient_id: str | None = None

    @property
    def array_shape(self) -> tuple[int, ...]:
        """Shape of the array :func:`read_image` returns: ``(C, *shape)``."""
        return (self.channels, *self.shape)

    @property
    def affine_array(self) -> npt.NDArray[np.float64]:
        """The canonical affine as a 4x4 array."""
        return np.array(self.affine, dtype=np.float64)

    @property
    def native_affine_array(self) -> npt.NDArray[np.float64]:
        """The file-order affine as a 4x4 array."""
        return np.array(self.native_affine, dtype=np.float64)

    def info_facts(self) -> dict[str, Any]:
        """JSON-safe facts to store in a manifest entry's ``info`` (no patient names).

        Returns:
            ``{"shape": [...], "spacing": [...], "dtype": "int16", "modality": "CT", ...}``;
            ``modality`` only when known, ``channels`` only when not 1.

        Example:
            >>> ImageHeader(format="png", kind="image", shape=(4, 5), channels=3,
            ...             dtype="uint8", spacing=(1.0, 1.0)).info_facts()["channels"]
            3
        """
        facts: dict[str, Any] = {
            "shape": [int(s) for s in self.shape],
            "spacing": [round(float(s), 6) for s in self.spacing],
            "dtype": self.dtype,
            "format": self.format,
        }
        if self.modality:
            facts["modality"] = self.modality
        if self.channels != 1:
            facts["channels"] = int(self.channels)
        return facts


@dataclass(frozen=True)
class ImageData:
    """A decoded image in canonical layout.

    Attributes:
        array: Channels-first array, (C, D, H, W) or (C, H, W). May be a strided view.
        affine: 4x4 RAS+ affine of the spatial axes of ``array``.
        spacing: Voxel size along the spatial axes of ``array``.
        header: The header facts (as :func:`probe_image` returns them).
        meta: Extra facts (format, orientation, rescale, frame times...).
    """

    array: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]
    spacing: tuple[float, ...]
    header: ImageHeader
    meta: dict[str, Any] = field(default_factory=dict)


def matrix(affine: npt.ArrayLike) -> _Matrix:
    """Public alias of the tuple-of-rows conversion used by :class:`ImageHeader`.

    Args:
        affine: Any 4x4 array-like.

    Returns:
        The affine as a tuple of four 4-tuples.
    """
    return _as_matrix(affine)
