"""Collating item dicts into batches, and DataLoader construction (optionally distributed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .worker_memory import stack_arrays, stack_tensors

__all__ = ["collate_items", "make_dataloader"]


def _collate_values(values: Sequence[Any]) -> Any:
    """Stack equal-shape tensors/arrays, recurse into dicts key by key, else return a list."""
    first = values[0]
    if isinstance(first, torch.Tensor) and all(isinstance(v, torch.Tensor) for v in values):
        if all(v.shape == first.shape and v.dtype == first.dtype for v in values):
            return stack_tensors(values)
        return list(values)
    if isinstance(first, np.ndarray) and all(isinstance(v, np.ndarray) for v in values):
        if all(v.shape == first.shape for v in values):
            return stack_arrays(values)
        return list(values)
    if isinstance(first, Mapping) and all(isinstance(v, Mapping) for v in values):
        keys: dict[Any, None] = {}
        for v in values:
            keys.update(dict.fromkeys(v))
        out: dict[Any, Any] = {}
        for key in keys:
            column = [v.get(key) for v in values]
            out[key] = column if any(c is None for c in column) else _collate_values(column)
        return out
    return list(values)


def collate_items(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate item dicts.

    Equal-shape tensors are stacked; tensors of different shapes (e.g. instance masks with
    different ``N``) are kept as a list; nested dicts (per-annotator entries, ``metainfo``) are
    collated key by key, an annotator missing from some items giving a list with ``None``;
    anything else becomes a list. In a DataLoader worker, stacked tensors are built in shared
    memory (see :mod:`.worker_memory`), so a batch is not copied again on its way to the
    main process.

    Args:
        batch: Items from a dataset.

    Returns:
        The batch dict (empty for an empty batch).

    Example:
        >>> b = collate_items([{"image": torch.zeros(1, 2)}, {"image": torch.ones(1, 2)}])
        >>> tuple(b["image"].shape)
        (2, 1, 2)
    """
    if not batch:
        return {}
    _check_image_shapes(batch)
    result = _collate_values(list(batch))
    assert isinstance(result, dict)
    return result


def _check_image_shapes(batch: Sequence[Mapping[str, Any]]) -> None:
    """Refuse images of different shapes in one batch, naming two of them."""
    shapes: list[tuple[int, ...]] = []
    for item in batch:
        image = item.get("image") if isinstance(item, Mapping) else None
        if isinstance(image, torch.Tensor | np.ndarray):
            shape = tuple(image.shape)
            if shapes and shape != shapes[0]:
                raise ValueError(
                    f"images of different shapes in one batch: {shapes[0]} and {shape}; "
                    "resample or crop them with a transform, or use batch_size=1"
                )
            shapes.append(shape)


def make_dataloader(
    dataset: Dataset[Any], *args: Any, distributed: bool = False, **kwargs: Any
) -> DataLoader[Any]:
    """Build a DataLoader with :func:`collate_items` (unless ``collate_fn`` is given).

    With ``distributed=True`` a :class:`torch.utils.data.DistributedSampler` splits the items
    across ranks: each item is seen exactly once per epoch when ``len(dataset)`` divides by the
    world size. Otherwise the sampler **pads** by repeating the first items so every rank gets
    the same count (a few items are seen twice), or with ``drop_last=True`` drops the tail so
    a few items are not seen in that epoch. Call ``loader.sampler.set_epoch(epoch)`` each
    epoch for a fresh shuffle.

    With worker processes, ``prefetch_factor`` defaults to 1 instead of PyTorch's 2: items here
    are whole volumes, read from the shared decode-once cache in a fraction of a training step,
    so one item in flight per worker keeps the pipeline full and each extra worker costs at most
    one volume of memory. Pass ``prefetch_factor=`` to choose otherwise.

    Args:
        dataset: The dataset.
        *args: Positional DataLoader arguments (``batch_size``...).
        distributed: Use a DistributedSampler.
        **kwargs: DataLoader arguments. With ``distributed``: ``shuffle`` (default ``True``),
            ``drop_last`` (default ``False``), ``seed`` (default 0), ``num_replicas`` and
            ``rank`` (default: from the process group) go to the sampler.

    Returns:
        The DataLoader.

    Raises:
        ValueError: ``distributed=True`` together with an explicit ``sampler``.
    """
    kwargs.setdefault("collate_fn", collate_items)
    if kwargs.get("num_workers", 0) > 0:
        kwargs.setdefault("prefetch_factor", 1)
    if not distributed:
        return DataLoader(dataset, *args, **kwargs)
    if kwargs.pop("sampler", None) is not None:
        raise ValueError("distributed=True builds its own sampler; do not pass sampler=")
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset,
        num_replicas=kwargs.pop("num_replicas", None),
        rank=kwargs.pop("rank", None),
        shuffle=kwargs.pop("shuffle", True),
        seed=kwargs.pop("seed", 0),
        drop_last=kwargs.pop("drop_last", False),
    )
    kwargs["sampler"] = sampler
    return DataLoader(dataset, *args, **kwargs)
