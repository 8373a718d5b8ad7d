"""PyTorch datasets reading a medstore (MONAI Label layout) store: volumes, images, videos, slices.

Installed as ``medstore.datasets``, so it lives beside Hugging Face's ``datasets``.

Example:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
    >>> for n in range(5):
    ...     nib.save(image, root / f"ct_{n}.nii.gz")
    >>> store = LocalDatastore(root)
    >>> from medstore.datasets import VolumeDataset
    >>> parts = VolumeDataset(store).split(train=0.8, val=0.2, seed=0)
    >>> len(parts["train"]), len(parts["val"])
    (4, 1)
"""

from __future__ import annotations

from .base import StoreDataset
from .factory import DatamintBaseDataset, build_dataset, detection_collate_fn
from .image import ImageDataset
from .loading.cache import CachedVolume, VolumeCache
from .loading.collate import collate_items, make_dataloader
from .options import AnnotationFilters, DatasetOptions, SegmentationOptions
from .patches import PatchDataset, PatchOptions
from .sliced import SlicedVideoDataset, SlicedVolumeDataset
from .splits import SplitResult
from .volume import MultiFrameDataset, VideoDataset, VolumeDataset

__all__ = [
    "AnnotationFilters",
    "CachedVolume",
    "DatamintBaseDataset",
    "DatasetOptions",
    "ImageDataset",
    "MultiFrameDataset",
    "PatchDataset",
    "PatchOptions",
    "SegmentationOptions",
    "SlicedVideoDataset",
    "SlicedVolumeDataset",
    "SplitResult",
    "StoreDataset",
    "VideoDataset",
    "VolumeCache",
    "VolumeDataset",
    "build_dataset",
    "collate_items",
    "detection_collate_fn",
    "make_dataloader",
]
