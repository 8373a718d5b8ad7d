"""2-D segmentation entities (``ImageSegmentation``) cut to an item's view, per annotator.

A mask is ``(H, W)`` of the canonical array: the image itself for a 2-D image, or the axial
frame ``frame_index`` of a volume. An item sees it where its view meets that frame: a 2-D image
or the matching axial slice whole, a volume as one filled slice, a coronal or sagittal slice as
the matching row of the mask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from medstore.datastore import LabelGeometryError

from .entities import EntityRecord
from .geometry import Plane

__all__ = ["add_entity_masks", "entity_masks"]

ViewOf = Callable[[np.ndarray], np.ndarray]
"""Cuts the item's view from a channels-first ``(1, ...)`` array."""


def _frame_mask(
    entity: EntityRecord, spatial: tuple[int, ...], plane: Plane, frame: int, view_of: ViewOf
) -> np.ndarray | None:
    mask = np.asarray(entity.annotation.mask, dtype=bool)
    plane_shape = spatial[-2:]
    if mask.shape != plane_shape:
        raise LabelGeometryError(
            f"segmentation {entity.name!r} has shape {mask.shape} but the image's frames are "
            f"{plane_shape}"
        )
    f = entity.frame_index
    if len(spatial) == 2 or plane[0] == "image":
        return mask if f in (None, 0) else None
    if f is None or f >= spatial[0]:
        return None
    if plane == ("slice", 0):
        return mask if f == frame else None
    volume = np.zeros((1, *spatial), dtype=bool)
    volume[0, f] = mask
    return view_of(volume)[0]


def entity_masks(
    entities: Sequence[EntityRecord],
    spatial: tuple[int, ...],
    plane: Plane,
    frame: int,
    view_of: ViewOf,
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{annotator: [(name, boolean mask in the item's view)]}`` of the segmentation entities.

    Args:
        entities: The image's kept entity records.
        spatial: The image's spatial shape (``(H, W)`` or ``(D, H, W)``).
        plane: How the item cuts the image.
        frame: The slice index of a slice item.
        view_of: The dataset's view function for this item.

    Returns:
        The masks that reach the item.

    Raises:
        LabelGeometryError: A mask's shape is not the image's frame shape.

    Example:
        >>> entity_masks((), (4, 5), ("image", -1), -1, lambda a: a)
        {}
    """
    found: dict[str, list[tuple[str, np.ndarray]]] = {}
    for entity in entities:
        if entity.kind != "segmentation" or entity.annotation is None:
            continue
        mask = _frame_mask(entity, spatial, plane, frame, view_of)
        if mask is not None:
            found.setdefault(entity.annotator, []).append((entity.name, mask))
    return found


def add_entity_masks(
    found: Mapping[str, list[tuple[str, np.ndarray]]],
    codes_of: Mapping[str, int],
    *,
    masks: dict[str, torch.Tensor],
    present: dict[str, torch.Tensor],
    codes: dict[str, np.ndarray],
    spatial: tuple[int, ...],
    instances: bool,
) -> None:
    """Merge entity masks into the label files' entries of the same annotator (in place).

    Args:
        found: From :func:`entity_masks`.
        codes_of: ``{class name: code}``; names not in it (filtered out) are skipped.
        masks: Instance masks per annotator (instance mode).
        present: Instance codes per annotator (instance mode).
        codes: Code maps per annotator (semantic mode).
        spatial: The item's spatial shape.
        instances: Instance (``True``) or semantic mode.
    """
    for annotator, pairs in found.items():
        kept = [(codes_of[name], mask) for name, mask in pairs if name in codes_of]
        if not kept:
            continue
        if instances:
            new = torch.from_numpy(np.stack([m for _, m in kept]).astype(np.uint8))
            labels = torch.tensor([c for c, _ in kept], dtype=torch.int64)
            if annotator in masks:
                new = torch.cat([masks[annotator], new])
                labels = torch.cat([present[annotator], labels])
            masks[annotator], present[annotator] = new, labels
        else:
            code_map = codes.get(annotator)
            code_map = np.zeros(spatial, np.int64) if code_map is None else code_map.copy()
            for code, mask in kept:
                code_map[mask] = code
            codes[annotator] = code_map
