"""Datamint's dataset factory and detection collate, offline.

:func:`build_dataset` picks :class:`~medstore.datasets.ImageDataset`,
:class:`~medstore.datasets.VolumeDataset` or :class:`~medstore.datasets.VideoDataset` from the
headers of a store's first images (no voxels read), as Datamint's ``build_dataset`` does from a
project's first resources.
"""

from __future__ import annotations

from typing import Any

import torch
from medstore.datastore.imaging.registry import probe_image

from .base import StoreDataset
from .image import ImageDataset
from .records import open_store
from .volume import VideoDataset, VolumeDataset

__all__ = ["DatamintBaseDataset", "build_dataset", "detection_collate_fn"]

DatamintBaseDataset = StoreDataset
"""Datamint's name of the dataset base class."""


def _kind(path: str) -> str:
    header = probe_image(path)
    if header.kind == "video":
        return "video"
    if header.kind == "image" or len(header.shape) == 2 or header.shape[0] == 1:
        return "image"
    return "volume"


def build_dataset(project: Any = None, **kwargs: Any) -> StoreDataset:
    """The dataset class matching the store's first five images, built with ``kwargs``.

    Args:
        project: A store folder or :class:`~medstore.datastore.LocalDatastore`.
        **kwargs: Constructor arguments (filters, transforms...).

    Returns:
        An :class:`ImageDataset`, :class:`VolumeDataset` or :class:`VideoDataset`.

    Raises:
        TypeError: No ``project``.
        ValueError: An empty store, or 2-D images, volumes and videos mixed.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4)), root / "a.nii")
        >>> type(build_dataset(root)).__name__
        'VolumeDataset'
    """
    if project is None:
        raise TypeError("build_dataset() missing required argument: 'project'")
    store = open_store(project)
    ids = sorted(store.list_images())[:5]
    if not ids:
        raise ValueError(f"store {project!s} has no images")
    kinds = {_kind(str(store.get_image_uri(i))) for i in ids}
    if len(kinds) > 1:
        raise ValueError(f"store {project!s} mixes {sorted(kinds)}; build the classes yourself")
    cls = {"image": ImageDataset, "volume": VolumeDataset, "video": VideoDataset}[kinds.pop()]
    return cls(store, **kwargs)


def detection_collate_fn(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images; keep ``boxes`` and ``box_labels`` as lists (their N differ), as Datamint.

    Args:
        batch: Items with ``image``, ``boxes`` and ``box_labels`` (``return_boxes=True``).

    Returns:
        The batch.

    Example:
        >>> item = {"image": torch.zeros(1, 2, 2), "boxes": torch.zeros(0, 4),
        ...         "box_labels": torch.zeros(0, dtype=torch.int64)}
        >>> detection_collate_fn([item, item])["image"].shape
        torch.Size([2, 1, 2, 2])
    """
    return {
        "image": torch.stack([item["image"] for item in batch]),
        "boxes": [item["boxes"] for item in batch],
        "box_labels": [item["box_labels"] for item in batch],
    }
