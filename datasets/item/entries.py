"""Build the annotation entries of an item dict from code maps and entity records."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..loading.cache import CachedVolume
from ..options import SegmentationOptions
from ..records import ImageRecord
from .entities import EntityRecord
from .label_space import (
    LabelSpace,
    instance_masks,
    merge_categories,
    merge_masks,
    merge_vectors,
    semantic_masks,
)

__all__ = [
    "categories_entry",
    "frame_categories_entry",
    "frame_labels_entry",
    "image_labels_entry",
    "metainfo_entry",
    "segmentation_entries",
]


def segmentation_entries(
    codes: Mapping[str, np.ndarray],
    *,
    num_classes: int,
    options: SegmentationOptions,
    spatial_shape: Sequence[int],
) -> dict[str, Any]:
    """``segmentations`` (and ``seg_labels`` in instance mode) from per-annotator code maps.

    Args:
        codes: ``{annotator: global code map}``, already cut to the item's view.
        num_classes: ``L``, the size of the global class list.
        options: Instance/semantic and merge options.
        spatial_shape: The item's spatial shape (for an empty merged result).

    Returns:
        ``{"segmentations": ...}`` plus ``{"seg_labels": ...}`` in instance mode.
    """
    if not options.as_semantic:
        segs: dict[str, torch.Tensor] = {}
        labels: dict[str, torch.Tensor] = {}
        for annotator, code_map in codes.items():
            masks, present = instance_masks(code_map)
            segs[annotator] = torch.from_numpy(masks)
            labels[annotator] = torch.from_numpy(present)
        return {"segmentations": segs, "seg_labels": labels}
    semantic = {a: semantic_masks(c, num_classes) for a, c in codes.items()}
    if options.merge_strategy is None:
        return {"segmentations": {a: torch.from_numpy(m) for a, m in semantic.items()}}
    merged = merge_masks(
        list(semantic.values()), options.merge_strategy, (num_classes + 1, *spatial_shape)
    )
    return {"segmentations": torch.from_numpy(merged)}


def _by_annotator(entities: Iterable[EntityRecord]) -> dict[str, list[EntityRecord]]:
    grouped: dict[str, list[EntityRecord]] = {}
    for e in entities:
        grouped.setdefault(e.annotator, []).append(e)
    return dict(sorted(grouped.items()))


def _merge_or_dict(
    per_annotator: dict[str, np.ndarray], strategy: str | None, shape: tuple[int, ...]
) -> dict[str, torch.Tensor] | torch.Tensor:
    if strategy is None:
        return {a: torch.from_numpy(v) for a, v in per_annotator.items()}
    stack = np.stack(list(per_annotator.values())) if per_annotator else np.zeros((0, *shape))
    return torch.from_numpy(merge_vectors(stack, strategy))


def image_labels_entry(
    entities: Iterable[EntityRecord], space: LabelSpace, strategy: str | None
) -> dict[str, torch.Tensor] | torch.Tensor:
    """``image_labels``: ``{annotator: one-hot uint8 (L,)}`` or the merged ``(L,)`` tensor.

    Args:
        entities: The image's entity records.
        space: The dataset's label space.
        strategy: Merge strategy, or ``None`` for the per-annotator dict.

    Returns:
        The entry.
    """
    index = {name: i for i, name in enumerate(space.image_labels)}
    per: dict[str, np.ndarray] = {}
    for annotator, group in _by_annotator(
        e for e in entities if e.kind == "label" and e.frame_index is None
    ).items():
        vec = np.zeros(len(index), dtype=np.uint8)
        for e in group:
            if e.name in index:
                vec[index[e.name]] = 1
        per[annotator] = vec
    return _merge_or_dict(per, strategy, (len(index),))


def categories_entry(
    entities: Iterable[EntityRecord], space: LabelSpace, strategy: str | None
) -> dict[str, torch.Tensor] | torch.Tensor:
    """``image_categories``: ``{annotator: int64 class index}`` or a merged tensor.

    An annotator with several category annotations gets the lowest index among them.

    Args:
        entities: The image's entity records.
        space: The dataset's label space (``image_categories`` pairs).
        strategy: ``mode`` → index (``-1`` when none); ``union``/``intersection`` → multi-hot.

    Returns:
        The entry.
    """
    index = {pair: i for i, pair in enumerate(space.image_categories)}
    per: dict[str, int] = {}
    for annotator, group in _by_annotator(
        e for e in entities if e.kind == "category" and e.frame_index is None
    ).items():
        found = [index[(e.name, e.value or "")] for e in group if (e.name, e.value) in index]
        if found:
            per[annotator] = min(found)
    if strategy is None:
        return {a: torch.tensor(i, dtype=torch.int64) for a, i in per.items()}
    return torch.from_numpy(merge_categories(list(per.values()), len(index), strategy))


def frame_labels_entry(
    entities: Iterable[EntityRecord],
    space: LabelSpace,
    strategy: str | None,
    *,
    num_frames: int | None,
    frame: int | None = None,
) -> dict[str, torch.Tensor] | torch.Tensor:
    """``frame_labels``: ``{annotator: (D, L)}`` for a volume/video, ``(L,)`` for one frame.

    Args:
        entities: The image's entity records.
        space: The dataset's label space (``frame_labels``).
        strategy: Merge strategy or ``None``.
        num_frames: ``D`` for a whole volume/video; ``None`` for a single frame.
        frame: The frame index of a single-frame item; ``None`` with ``num_frames=None`` means
            the item has no frame axis (e.g. a coronal slice), giving empty labels.

    Returns:
        The entry.
    """
    index = {name: i for i, name in enumerate(space.frame_labels)}
    shape = (len(index),) if num_frames is None else (num_frames, len(index))
    per: dict[str, np.ndarray] = {}
    for annotator, group in _by_annotator(
        e for e in entities if e.kind == "label" and e.frame_index is not None
    ).items():
        arr = np.zeros(shape, dtype=np.uint8)
        for e in group:
            if e.name not in index or e.frame_index is None:
                continue
            if num_frames is None:
                if frame is not None and e.frame_index == frame:
                    arr[index[e.name]] = 1
            elif 0 <= e.frame_index < num_frames:
                arr[e.frame_index, index[e.name]] = 1
        per[annotator] = arr
    return _merge_or_dict(per, strategy, shape)


def metainfo_entry(
    record: ImageRecord, volume: CachedVolume, axis_name: str | None, frame: int
) -> dict[str, Any]:
    """``metainfo``: id, path, affine, spacing, modality, tags, label tags, info (+ slice).

    Args:
        record: The image record.
        volume: Its decoded volume (affine and spacing of the canonical array).
        axis_name: ``"axial"``/``"coronal"``/``"sagittal"``/``"frame"`` for one-slice items.
        frame: The slice index (ignored without ``axis_name``).

    Returns:
        The entry (the info dict is a copy).
    """
    info = copy.deepcopy({**record.info, "path": record.path})  # the record's is shared
    meta: dict[str, Any] = {
        "id": record.image_id,
        "path": record.path,
        "affine": torch.from_numpy(np.array(volume.affine, dtype=np.float64)),
        "spacing": torch.tensor(volume.spacing, dtype=torch.float64),
        "modality": str(info.get("modality") or volume.meta.get("modality") or ""),
        "tags": record.tags,
        "label_tags": [label.tag for label in record.labels],
        "info": info,
    }
    if axis_name is not None:
        meta["slice_index"] = frame
        meta["slice_axis"] = axis_name
    return meta


def frame_categories_entry(
    entities: Iterable[EntityRecord],
    pairs: Sequence[tuple[str, str]],
    *,
    num_frames: int | None,
    frame: int | None = None,
) -> dict[str, torch.Tensor]:
    """``frame_categories``: ``{annotator: int64 (D,)}`` class indices per frame, ``-1`` for none.

    A single-frame item gets a scalar per annotator; an item with no frame axis (coronal or
    sagittal slices) gets ``-1``. An annotator with several categories on one frame gets the
    lowest index.

    Args:
        entities: The image's entity records.
        pairs: The dataset's ``(identifier, value)`` frame category list.
        num_frames: ``D`` for a whole volume/video; ``None`` for a single frame.
        frame: The frame index of a single-frame item.

    Returns:
        The entry.

    Example:
        >>> frame_categories_entry([], [("phase", "art")], num_frames=2)
        {}
    """
    index = {pair: i for i, pair in enumerate(pairs)}
    per: dict[str, torch.Tensor] = {}
    for annotator, group in _by_annotator(
        e for e in entities if e.kind == "category" and e.frame_index is not None
    ).items():
        arr = np.full(num_frames or 1, -1, dtype=np.int64)
        for e in group:
            code = index.get((e.name, e.value or ""))
            at = e.frame_index if num_frames is not None else (0 if e.frame_index == frame else -1)
            if code is None or at is None or not 0 <= at < len(arr):
                continue
            arr[at] = code if arr[at] < 0 else min(int(arr[at]), code)
        per[annotator] = torch.from_numpy(arr) if num_frames is not None else torch.tensor(arr[0])
    return per
