"""Apply a dataset's albumentations transform to a finished item (image, masks, boxes)."""

from __future__ import annotations

from typing import Any

import torch

from ..alb import apply_alb_transform

__all__ = ["augment_item"]

_MERGED = "\x00merged"


def augment_item(item: dict[str, Any], transform: Any) -> dict[str, Any]:
    """Transform ``item``'s image, ``segmentations`` and ``boxes`` together, in place.

    Args:
        item: An item dict (``image`` ``(C, H, W)`` or ``(C, D, H, W)``).
        transform: An albumentations transform.

    Returns:
        The same dict, transformed.

    Example:
        >>> import albumentations as A
        >>> item = {"image": torch.arange(4.0).reshape(1, 2, 2)}
        >>> augment_item(item, A.VerticalFlip(p=1.0))["image"][0, 0].tolist()
        [2.0, 3.0]
    """
    targets: dict[str, Any] = {}
    segs = item.get("segmentations")
    merged = isinstance(segs, torch.Tensor)
    if merged:
        targets["masks"] = {_MERGED: segs}
    elif segs:
        targets["masks"] = segs
    if "boxes" in item:
        targets["boxes"] = item["boxes"]
        targets["box_labels"] = item.get("box_labels", torch.zeros(len(item["boxes"])))
    out = apply_alb_transform(transform, item["image"], targets)
    item["image"] = out["image"]
    if "masks" in out:
        masks = out["masks"]
        item["segmentations"] = masks[_MERGED] if merged else masks
    if "boxes" in out:
        item["boxes"], item["box_labels"] = out["boxes"], out["box_labels"]
    return item
