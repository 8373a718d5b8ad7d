"""Geometric annotations (boxes, lines, points, polygons...) in an item's own coordinates.

Annotation points are medstore pixels of the canonical array (``x`` = column W, ``y`` = row H,
``z`` = slice D; 2-D points take ``z`` from ``frame_index``, else 0) or RAS+ mm (converted with
the canonical affine). An item sees them in its own axes: a whole volume keeps ``(x, y, z)``;
a 2-D image keeps ``(x, y)``; a slice keeps the annotations lying in it, as ``(column, row)`` of
the slice: axial ``(x, y)``, coronal ``(x, z)``, sagittal ``(y, z)``. Boxes become pascal_voc
``(x_min, y_min, x_max, y_max)`` (volumes: ``(x0, y0, z0, x1, y1, z1)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .entities import EntityRecord

__all__ = ["Plane", "RecordGeometry", "item_geometry", "record_geometry"]

Plane = tuple[Literal["volume", "image", "slice"], int]
"""How an item cuts its image: ``("volume", -1)``, ``("image", -1)`` or ``("slice", axis)``."""

# Item (column, row) axes of each slicing axis, as indices into (x, y, z); the fixed axis.
_SLICE_AXES: dict[int, tuple[tuple[int, int], int]] = {
    0: ((0, 1), 2),
    1: ((0, 2), 1),
    2: ((1, 2), 0),
}


@dataclass(frozen=True)
class RecordGeometry:
    """The geometric annotations of one image, as canonical pixel arrays (computed once).

    Attributes:
        entities: The annotations' records.
        points: Each annotation's ``(P, 3)`` pixel points ``(x, y, z)``.
        boxes: ``(B, 6)`` ``(x0, y0, z0, x1, y1, z1)`` of the box annotations.
        box_entities: The records of those boxes, in order.
        extent: ``(N, 6)`` lowest and highest ``(x, y, z)`` of each annotation.
        projected: Each annotation's item dict per set of item axes, built once on demand.
    """

    entities: tuple[EntityRecord, ...]
    points: tuple[np.ndarray, ...]
    boxes: np.ndarray
    box_entities: tuple[EntityRecord, ...]
    extent: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    projected: dict[tuple[int, ...], list[dict[str, Any]]] = field(default_factory=dict)

    def annotations(self, dims: tuple[int, ...], keep: np.ndarray | None = None) -> list[Any]:
        """Item dicts of the annotations (all, or those ``keep`` marks) with points on ``dims``.

        Each call gets new dicts; their ``points`` tensors are shared by the items of one
        dataset (copy one before changing it in place).
        """
        done = self.projected.get(dims)
        if done is None:
            columns = list(dims)
            done = self.projected[dims] = [
                _annotation(e, p[:, columns])
                for e, p in zip(self.entities, self.points, strict=True)
            ]
        if keep is None:
            return [dict(d) for d in done]
        return [dict(done[i]) for i in np.flatnonzero(keep)]


def _pixel_points(ann: Any, affine: np.ndarray | None) -> np.ndarray | None:
    points = getattr(ann, "points", None)
    if points is None:
        return None
    if getattr(ann, "coordinate_system", "pixel") == "patient":
        if affine is None or not hasattr(ann, "to_pixel"):
            return None
        points = ann.to_pixel(affine).points
    array = np.asarray(points, dtype=np.float64)
    if array.shape[1] == 2:
        z = float(getattr(ann, "frame_index", None) or 0)
        array = np.c_[array, np.full(len(array), z)]
    return array


def record_geometry(entities: Sequence[EntityRecord], affine: np.ndarray | None) -> RecordGeometry:
    """Collect the point-based annotations of one image.

    Args:
        entities: The image's kept entity records.
        affine: The canonical array's affine (for patient-coordinate annotations).

    Returns:
        The geometry table.

    Example:
        >>> record_geometry((), None).boxes.shape
        (0, 6)
    """
    kept: list[EntityRecord] = []
    points: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    box_entities: list[EntityRecord] = []
    for entity in entities:
        if entity.kind != "other" or entity.annotation is None:
            continue
        array = _pixel_points(entity.annotation, affine)
        if array is None:
            continue
        kept.append(entity)
        points.append(array)
        if getattr(entity.annotation, "TYPE", "") == "box":
            boxes.append(np.r_[array.min(axis=0), array.max(axis=0)])
            box_entities.append(entity)
    table = np.array(boxes, dtype=np.float64).reshape(-1, 6)
    extent = np.array([np.r_[p.min(axis=0), p.max(axis=0)] for p in points]).reshape(-1, 6)
    return RecordGeometry(tuple(kept), tuple(points), table, tuple(box_entities), extent)


def _annotation(entity: EntityRecord, points: np.ndarray) -> dict[str, Any]:
    ann = entity.annotation
    return {
        "id": getattr(ann, "id", None),
        "identifier": entity.name,
        "type": getattr(ann, "TYPE", ""),
        "annotator": entity.annotator,
        "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
    }


def item_geometry(
    geometry: RecordGeometry,
    plane: Plane,
    frame: int,
    *,
    box_codes: Mapping[str, int],
    annotations: bool,
    boxes: bool,
) -> dict[str, Any]:
    """The ``annotations`` list and ``boxes``/``box_labels`` of one item.

    Args:
        geometry: The image's geometry table.
        plane: How the item cuts the image.
        frame: The slice index for ``("slice", axis)`` items.
        box_codes: ``{box name: class index}`` of the dataset.
        annotations: Return the ``annotations`` list.
        boxes: Return ``boxes`` and ``box_labels``.

    Returns:
        The item entries asked for.
    """
    kind, axis = plane
    out: dict[str, Any] = {}
    if not geometry.entities:  # most items: nothing to project or pick
        if annotations:
            out["annotations"] = []
        if boxes:
            width = 6 if kind == "volume" else 4
            out["boxes"] = torch.zeros((0, width), dtype=torch.float32)
            out["box_labels"] = torch.zeros((0,), dtype=torch.int64)
        return out
    if kind == "slice":
        (col, row), fixed = _SLICE_AXES[axis]
        lo, hi = frame - 0.5, frame + 0.5
        if annotations:
            extent = geometry.extent
            inside = (extent[:, fixed] >= lo) & (extent[:, 3 + fixed] < hi)
            out["annotations"] = geometry.annotations((col, row), inside)
        if boxes:
            table = geometry.boxes
            keep = (table[:, fixed] < hi) & (table[:, 3 + fixed] >= lo)
            picked = table[keep][:, [col, row, 3 + col, 3 + row]]
            names = [e.name for e, k in zip(geometry.box_entities, keep, strict=True) if k]
            out.update(_box_entries(picked, names, box_codes))
        return out
    columns = [0, 1, 3, 4] if kind == "image" else list(range(6))
    if annotations:
        out["annotations"] = geometry.annotations((0, 1) if kind == "image" else (0, 1, 2))
    if boxes:
        names = [e.name for e in geometry.box_entities]
        out.update(_box_entries(geometry.boxes[:, columns], names, box_codes))
    return out


def _box_entries(
    table: np.ndarray, names: Sequence[str], box_codes: Mapping[str, int]
) -> dict[str, torch.Tensor]:
    labels = np.fromiter((box_codes.get(n, -1) for n in names), np.int64, len(names))
    return {
        "boxes": torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32)),
        "box_labels": torch.from_numpy(labels),
    }
