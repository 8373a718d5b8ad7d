"""Segmentation entities: a 2-D binary mask (run-length coded) and a semantic label map.

A :class:`VolumeSegmentation` keeps its class map (``segments``) and voxel counts in the
annotation file; its voxels live in a label file in MONAI Label's layout (see
:mod:`medstore.datastore.annotations.labels`).

Examples:
    >>> import numpy as np
    >>> mask = np.zeros((4, 5), dtype=bool); mask[1:3, 1:4] = True
    >>> seg = ImageSegmentation.from_mask(mask, identifier="lesion", frame_index=0)
    >>> (seg.pixel_count, bool((seg.mask == mask).all()))
    (6, True)
    >>> same = ImageSegmentation(segmentation_data=mask.astype(np.uint8), name="lesion", index=0)
    >>> (same == seg, same.get_area(), same.mask_shape)
    (True, 6, (4, 5))
    >>> labels = np.eye(3, dtype=np.uint8)[None]
    >>> vol = VolumeSegmentation.from_semantic_segmentation(labels, "liver")
    >>> vol.label_info()
    [{'name': 'liver', 'idx': 1}]
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
from pydantic import AliasChoices, Field, PrivateAttr, model_validator

from ..errors import AnnotationError
from .base import Annotation, Part
from .geometry import as_affine, voxel_sizes

__all__ = ["ImageSegmentation", "Segment", "VolumeSegmentation"]


def _rle_encode(mask: npt.NDArray[np.bool_]) -> list[int]:
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] if flat[0] else []) + [int(r) for r in runs]


def _rle_decode(runs: list[int], shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(shape)


def _binary_mask(data: Any) -> npt.NDArray[np.bool_]:
    """Datamint's mask rules: 2-D, integer values (floats only when whole), none negative."""
    array = np.asarray(data)
    if array.ndim != 2:
        raise ValueError(f"an image mask must be 2-D (H x W), got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not (array == np.round(array)).all():
            raise ValueError("the mask has non-integer (or non-finite) float values")
    elif array.dtype.kind not in "biu":
        raise ValueError(f"the mask must hold integers, got dtype {array.dtype}")
    if array.dtype.kind != "b" and (array < 0).any():
        raise ValueError("the mask has negative values")
    return array != 0


class ImageSegmentation(Annotation):
    """A 2-D binary mask, stored as C-order run lengths starting with a background run.

    Datamint's constructor works too: ``ImageSegmentation(segmentation_data=mask, name=...)`` (or
    ``mask=``), with a numpy array or PIL image; non-zero pixels are inside.
    """

    TYPE: ClassVar[str] = "segmentation"

    shape: tuple[int, int]
    rle: list[int]
    mask_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _datamint_mask(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not {"segmentation_data", "mask"} & set(data):
            return data
        data = dict(data)
        given = [data.pop(key) for key in ("segmentation_data", "mask") if key in data]
        given = [item for item in given if item is not None]
        if len(given) > 1:
            raise ValueError("give segmentation_data or mask, not both")
        if given:
            binary = _binary_mask(given[0])
            data.update(shape=binary.shape, rle=_rle_encode(binary))
        return data

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()

    @model_validator(mode="after")
    def _check_rle(self) -> Self:
        if min(self.shape) < 1:
            raise ValueError("mask shape must be positive")
        if any(run < 0 for run in self.rle) or sum(self.rle) != self.shape[0] * self.shape[1]:
            raise ValueError("run lengths do not add up to the mask shape")
        return self

    @classmethod
    def from_mask(cls, mask: npt.ArrayLike, *, identifier: str, **fields: Any) -> ImageSegmentation:
        """Build from a 2-D array (non-zero = inside).

        Args:
            mask: ``(H, W)`` array.
            identifier: The structure's name.
            **fields: Further fields (``frame_index``, ``created_by``, ...).

        Returns:
            The segmentation.

        Raises:
            AnnotationError: Not 2-D, or non-finite values.
        """
        array = np.asarray(mask)
        if array.ndim != 2:
            raise AnnotationError(f"an image mask must be 2-D, got shape {array.shape}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise AnnotationError("the mask has NaN or infinite values")
        binary = array != 0
        return cls(identifier=identifier, shape=binary.shape, rle=_rle_encode(binary), **fields)

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """The decoded ``(H, W)`` boolean mask."""
        return _rle_decode(self.rle, self.shape)

    @property
    def pixel_count(self) -> int:
        """Number of pixels inside the mask."""
        return int(sum(self.rle[1::2]))

    @property
    def segmentation_data(self) -> npt.NDArray[np.uint8]:
        """The mask as Datamint holds it: ``(H, W)`` uint8, 1 inside and 0 outside."""
        return self.mask.astype(np.uint8)

    @property
    def mask_shape(self) -> tuple[int, int]:
        """``(H, W)`` (Datamint)."""
        return self.shape

    def get_area(self) -> int:
        """Number of pixels inside the mask (Datamint's name for :attr:`pixel_count`)."""
        return self.pixel_count

    def to_pil_image(self) -> Any:
        """The mask as a PIL ``Image`` (mode ``L``, 1 inside), as Datamint gives it."""
        from PIL import Image

        return Image.fromarray(self.segmentation_data)

    def area_mm2(self, affine: npt.ArrayLike) -> float:
        """Area in mm² (pixel count x column spacing x row spacing of the image affine)."""
        sx, sy, _ = voxel_sizes(affine)
        return self.pixel_count * sx * sy


class Segment(Part):
    """One class of a label map: name, integer value, and optional colour/anchor/metadata."""

    name: str = Field(min_length=1, validation_alias=AliasChoices("name", "label"))
    idx: int = Field(ge=0, validation_alias=AliasChoices("idx", "index", "id"))
    color: tuple[float, ...] | None = None
    anchor_position: tuple[float, float, float] | None = None
    voxel_count: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None


def _name_to_value(
    class_map: dict[int, str] | dict[str, int] | str, present: set[int]
) -> dict[str, int]:
    """``{name: value}`` from Datamint's ``{value: name}``, a single name, or ``{name: value}``."""
    if isinstance(class_map, str):
        if len(present) > 1:
            raise AnnotationError(
                f"class_map: one class name given but the map holds values {sorted(present)}"
            )
        return {class_map: next(iter(present), 1)}
    if not isinstance(class_map, dict):
        raise AnnotationError(f"class_map must be a dict or a name, got {type(class_map).__name__}")
    if all(isinstance(k, int | np.integer) and isinstance(v, str) for k, v in class_map.items()):
        return {str(v): int(k) for k, v in class_map.items()}
    if all(isinstance(k, str) and isinstance(v, int | np.integer) for k, v in class_map.items()):
        return {str(k): int(v) for k, v in class_map.items()}
    raise AnnotationError("class_map: expected {value: name} (int -> str)")


class VolumeSegmentation(Annotation):
    """A semantic label map: ``segments`` name the integer values (``class_map``)."""

    TYPE: ClassVar[str] = "volume_segmentation"

    identifier: str = Field(
        "segmentation", min_length=1, validation_alias=AliasChoices("identifier", "name", "label")
    )
    segments: list[Segment] = Field(default_factory=list)
    shape: tuple[int, ...] | None = None
    content_sha256: str | None = None
    label_tag: str | None = None
    mask_url: str | None = None
    _array: npt.NDArray[Any] | None = PrivateAttr(None)

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()

    @model_validator(mode="after")
    def _check_segments(self) -> Self:
        names = [s.name for s in self.segments]
        values = [s.idx for s in self.segments]
        if len(set(names)) != len(names) or len(set(values)) != len(values):
            raise ValueError("segment names and values must be unique")
        return self

    @classmethod
    def from_semantic_segmentation(
        cls,
        segmentation: npt.ArrayLike | Any,
        class_map: dict[int, str] | dict[str, int] | str,
        *,
        identifier: str | None = None,
        **fields: Any,
    ) -> VolumeSegmentation:
        """Build from an integer label map (Datamint's signature).

        Args:
            segmentation: ``(D, H, W)`` (or 2-D) integer or boolean label map, or a nibabel
                image (its voxels, as Datamint reads them).
            class_map: Datamint's ``{value: name}`` (0 may be named, e.g. "background"); or one
                class name for a binary map (its single non-zero value). medstore's older
                ``{name: value}`` is still accepted.
            identifier: The annotation name (default: the single class name, else
                "segmentation").
            **fields: Further fields (``created_by``, ...).

        Returns:
            The segmentation, holding the array for saving as a label file.

        Raises:
            AnnotationError: Non-integral or negative values, or values missing from the map.
        """
        if hasattr(segmentation, "get_fdata"):  # a nibabel image
            segmentation = np.asarray(segmentation.get_fdata())
        data = np.asarray(segmentation)
        if data.dtype.kind == "f":
            if not np.isfinite(data).all() or not np.equal(np.mod(data, 1), 0).all():
                raise AnnotationError("a label map must hold whole numbers")
        elif data.dtype.kind not in "biu":
            raise AnnotationError(f"a label map must be integer, got dtype {data.dtype}")
        labels = data.astype(np.int64)
        if labels.size and labels.min() < 0:
            raise AnnotationError("a label map must not hold negative values")
        counts = np.bincount(labels.ravel(), minlength=1) if labels.size else np.zeros(1, int)
        present = {int(v) for v in np.flatnonzero(counts)} - {0}
        mapping = _name_to_value(class_map, present)
        if identifier is None:
            identifier = class_map if isinstance(class_map, str) else "segmentation"
        missing = present - set(mapping.values())
        if missing:
            raise AnnotationError(f"label values {sorted(missing)} have no class name")
        segments = [
            Segment(name=name, idx=idx, voxel_count=int(counts[idx]) if idx < len(counts) else 0)
            for name, idx in sorted(mapping.items(), key=lambda item: item[1])
        ]
        digest = hashlib.sha256(str((labels.shape, "int64")).encode())
        digest.update(np.ascontiguousarray(labels).tobytes())
        seg = cls(
            identifier=identifier,
            segments=segments,
            shape=labels.shape,
            content_sha256=digest.hexdigest(),
            **fields,
        )
        seg._array = labels
        return seg

    def __eq__(self, other: object) -> bool:
        # Fields only: the optional in-memory array is not part of the entity's identity.
        if not isinstance(other, VolumeSegmentation):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    @property
    def class_map(self) -> dict[int, str]:
        """``{value: name}`` for every segment (Datamint's direction)."""
        return {s.idx: s.name for s in self.segments}

    @property
    def class_names(self) -> list[str]:
        """The segments' names, sorted (Datamint's ``class_names``)."""
        return sorted(s.name for s in self.segments)

    @property
    def num_classes(self) -> int:
        """The number of named values (Datamint's ``num_classes``)."""
        return len(self.segments)

    @property
    def array(self) -> npt.NDArray[Any] | None:
        """The label map when this object was built from one (``None`` after loading from JSON)."""
        return self._array

    def attach_array(self, array: npt.NDArray[Any] | None) -> None:
        """Keep ``array`` as the in-memory label map of this (re-validated) copy.

        Args:
            array: The label map it was built from (not part of the entity's identity).
        """
        self._array = array

    def label_info(self) -> list[dict[str, Any]]:
        """MONAI Label's ``label_info`` list (foreground classes, ``{"name", "idx"}``)."""
        return [{"name": s.name, "idx": s.idx} for s in self.segments if s.idx != 0]

    def volume_mm3(self, affine: npt.ArrayLike) -> dict[str, float]:
        """Volume per foreground class in mm³ (voxel count x voxel volume).

        Args:
            affine: The affine of the label map.

        Returns:
            ``{name: mm³}``.

        Raises:
            AnnotationError: Voxel counts unknown.
        """
        voxel = abs(float(np.linalg.det(as_affine(affine)[:3, :3])))
        result = {}
        for seg in self.segments:
            if seg.idx == 0:
                continue
            if seg.voxel_count is None:
                raise AnnotationError(f"voxel count of {seg.name!r} is unknown")
            result[seg.name] = seg.voxel_count * voxel
        return result
