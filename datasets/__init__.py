"""PyTorch datasets reading a medstore (MONAI Label layout) store: volumes, images, videos, slices.

Note: this import name is also Hugging Face's ``datasets``; do not install medstore into an
environment that has it.

Example:
    >>> from medstore.datasets import VolumeDataset                              # doctest: +SKIP
    >>> parts = VolumeDataset("sample_store").split(train=0.8, val=0.2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from .base import StoreDataset
from .image import ImageDataset
from .loading.cache import CachedVolume, VolumeCache
from .loading.collate import collate_items, make_dataloader
from .options import AnnotationFilters, DatasetOptions, SegmentationOptions
from .sliced import SlicedVideoDataset, SlicedVolumeDataset
from .splits import SplitResult
from .volume import MultiFrameDataset, VideoDataset, VolumeDataset

__all__ = [
    "AnnotationFilters",
    "CachedVolume",
    "DatasetOptions",
    "ImageDataset",
    "MultiFrameDataset",
    "SegmentationOptions",
    "SlicedVideoDataset",
    "SlicedVolumeDataset",
    "SplitResult",
    "StoreDataset",
    "VideoDataset",
    "VolumeCache",
    "VolumeDataset",
    "collate_items",
    "make_dataloader",
]
