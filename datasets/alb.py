"""albumentations transforms on dataset items, applied jointly to the image, masks and boxes.

albumentations is an optional extra (``pip install 'medstore[albumentations]'``). As in
Datamint, a 2-D item (image, slice or frame) goes through the transform as ``image`` (H, W, C)
with its instance ``masks`` and pascal_voc ``bboxes``/``labels``; a volume or video item goes
through a ``ReplayCompose`` as ``volume`` (D, H, W, C), each instance mask replayed as
``mask3d``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import torch

__all__ = ["apply_alb_transform", "compose", "is_alb_transform", "require_albumentations"]

_WRAPPED = "_medstore_box_wrapper"
EXTRA_HINT = "albumentations is not installed: pip install 'medstore[albumentations]'"


def require_albumentations() -> ModuleType:
    """Import albumentations, or fail with one line naming the extra.

    Returns:
        The module.

    Raises:
        ImportError: albumentations is missing.
    """
    try:
        import albumentations
    except ImportError as err:
        raise ImportError(EXTRA_HINT) from err
    return albumentations


def is_alb_transform(obj: object) -> bool:
    """Whether ``obj`` is an albumentations transform (checked without importing it).

    Example:
        >>> is_alb_transform(len)
        False
    """
    return type(obj).__module__.split(".")[0] == "albumentations"


def compose(first: Any, second: Any) -> Any:
    """``A.Compose([first, second])``, or ``second`` when ``first`` is ``None``."""
    if first is None:
        return second
    return require_albumentations().Compose([first, second])


def _np(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _chw(image: Any) -> torch.Tensor:
    """Back to a float32 channels-first tensor (ToTensorV2 already gives (C, H, W))."""
    if isinstance(image, torch.Tensor):
        return image.float()
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0), np.float32))


def _with_boxes(transform: Any) -> Any:
    """``transform`` able to move pascal_voc boxes labelled ``labels`` (wrapped when it is not).

    The wrapper is made once and kept on the transform: wrapping turns the transform into a
    nested Compose whose own box processor expects its parent's normalised boxes.
    """
    wrapper = getattr(transform, _WRAPPED, None)
    if wrapper is not None:
        return wrapper
    processors = getattr(transform, "processors", None)
    if isinstance(processors, dict) and "bboxes" in processors:
        return transform
    alb = require_albumentations()
    params = alb.BboxParams(format="pascal_voc", label_fields=["labels"])
    wrapper = alb.Compose([transform], bbox_params=params)
    setattr(transform, _WRAPPED, wrapper)
    return wrapper


def _apply_2d(transform: Any, image: np.ndarray, targets: dict[str, Any]) -> dict[str, Any]:
    masks: dict[str, Any] = targets.get("masks") or {}
    order = list(masks)
    flat = [m for a in order for m in _np(masks[a])]
    kwargs: dict[str, Any] = {"image": np.moveaxis(image, 0, -1)}
    if flat:
        kwargs["masks"] = flat
    boxes = targets.get("boxes")
    if boxes is not None:
        transform = _with_boxes(transform)
        kwargs["bboxes"] = np.asarray(_np(boxes), dtype=np.float32).reshape(-1, 4)
        kwargs["labels"] = _np(targets.get("box_labels", np.zeros(len(kwargs["bboxes"])))).tolist()
    out = transform(**kwargs)
    result: dict[str, Any] = {"image": _chw(out["image"])}
    if masks:
        start, done = 0, {}
        for annotator in order:
            n = len(masks[annotator])
            part = [_np(m) for m in out["masks"][start : start + n]] if flat else []
            shape = tuple(result["image"].shape[1:])
            stacked = np.stack(part) if part else np.zeros((0, *shape), np.uint8)
            done[annotator] = torch.from_numpy(np.ascontiguousarray(stacked))
            start += n
        result["masks"] = done
    if boxes is not None:
        moved = np.asarray(out.get("bboxes", np.zeros((0, 4))), dtype=np.float32).reshape(-1, 4)
        result["boxes"] = torch.from_numpy(np.ascontiguousarray(moved))
        result["box_labels"] = torch.tensor(out.get("labels", []), dtype=torch.int64)
    return result


def _apply_3d(transform: Any, image: np.ndarray, targets: dict[str, Any]) -> dict[str, Any]:
    replay = require_albumentations().ReplayCompose([transform])
    out = replay(volume=np.moveaxis(image, 0, -1))
    volume = out["volume"]
    if isinstance(volume, torch.Tensor):
        tensor = volume.float()
        result: dict[str, Any] = {
            "image": tensor if tensor.shape[0] == image.shape[0] else tensor.permute(3, 0, 1, 2)
        }
    else:
        result = {
            "image": torch.from_numpy(np.ascontiguousarray(np.moveaxis(volume, -1, 0), np.float32))
        }
    masks: dict[str, Any] = targets.get("masks") or {}
    if masks:
        done = {}
        for annotator, segs in masks.items():
            moved = [_np(replay.replay(out["replay"], mask3d=_np(s))["mask3d"]) for s in segs]
            shape = tuple(result["image"].shape[1:])
            stacked = np.stack(moved) if moved else np.zeros((0, *shape), np.uint8)
            done[annotator] = torch.from_numpy(np.ascontiguousarray(stacked))
        result["masks"] = done
    return result


def apply_alb_transform(
    transform: Any, image: Any, targets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply ``transform`` to a channels-first image and its targets, as Datamint does.

    Args:
        transform: An albumentations transform.
        image: ``(C, H, W)`` (2-D) or ``(C, D, H, W)`` (volume/video) array or tensor.
        targets: Optional ``masks`` (``{annotator: (N, H, W) or (N, D, H, W)}``), ``boxes``
            ``(N, 4)`` pascal_voc and ``box_labels`` ``(N,)`` (2-D only).

    Returns:
        ``{"image": float32 tensor}`` plus the transformed targets given.

    Raises:
        ValueError: ``image`` is neither 3-D nor 4-D.
        ImportError: albumentations is missing.

    Example:
        >>> import albumentations as A
        >>> out = apply_alb_transform(A.HorizontalFlip(p=1.0), np.arange(6.0).reshape(1, 2, 3))
        >>> out["image"][0, 0].tolist()
        [2.0, 1.0, 0.0]
    """
    array = _np(image)
    targets = targets or {}
    if array.ndim == 3:
        return _apply_2d(transform, array, targets)
    if array.ndim == 4:
        return _apply_3d(transform, array, targets)
    raise ValueError(f"expected a (C, H, W) or (C, D, H, W) image, got shape {array.shape}")
