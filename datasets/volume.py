"""Whole-volume and whole-video datasets (items ``(C, D, H, W)``) and their slicing entry points."""

from __future__ import annotations

from typing import Unpack

import numpy as np

from .base import StoreDataset
from .item.views import as_volume
from .options import DatasetKwargs
from .records import ImageRecord
from .sliced import AxisName, SlicedVideoDataset, SlicedVolumeDataset

__all__ = ["MultiFrameDataset", "VideoDataset", "VolumeDataset", "as_volume"]


class MultiFrameDataset(StoreDataset):
    """Items are whole multi-frame images: ``image`` float32 ``(C, D, H, W)``.

    Arrays follow the canonical layout (D inferior→superior, H anterior→posterior,
    W right→left), unlike ``store.datalist()`` + MONAI ``LoadImaged``, which gives MONAI's own
    layout. ``segmentations`` are ``{annotator: uint8 (N, D, H, W)}`` with ``seg_labels``
    ``{annotator: int64 (N,)}`` (codes 1..L into :attr:`segmentation_labels_set`), or semantic
    ``(L+1, D, H, W)`` per annotator or merged; ``frame_labels`` are ``{annotator: (D, L)}``.
    """

    def _view(self, array: np.ndarray, frame: int, record: ImageRecord) -> np.ndarray:
        return as_volume(array)

    def _frame_entry_args(self, array: np.ndarray, frame: int) -> tuple[int | None, int | None]:
        return int(as_volume(array).shape[1]), None


class VolumeDataset(MultiFrameDataset):
    """3-D volumes of a store as items (see :class:`MultiFrameDataset`).

    Arrays are in medstore's canonical layout, whatever the file's orientation;
    ``store.datalist()`` fed to MONAI's ``LoadImaged`` gives MONAI's layout instead.

    Args:
        store: A :class:`~medstore.datastore.LocalDatastore` or a store folder.
        image_ids: Restrict to these ids.
        cache_dir: Decode-once cache folder.
        **kwargs: Keyword options (:class:`~medstore.datasets.options.DatasetKwargs`).

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
        >>> for n in range(2):
        ...     nib.save(image, root / f"ct_{n}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> ds = VolumeDataset(store)
        >>> ds[0]["image"].shape
        torch.Size([1, 4, 5, 6])
        >>> [item["image"].shape for item in ds.__getitems__([0, 1])]  # one DataLoader batch
        [torch.Size([1, 4, 5, 6]), torch.Size([1, 4, 5, 6])]
        >>> len(ds.slice("axial"))
        8
    """

    def slice(
        self, axis: AxisName | int = "axial", **kwargs: Unpack[DatasetKwargs]
    ) -> SlicedVolumeDataset:
        """Slice every volume along ``axis`` into 2-D items ``(C, H, W)``.

        Args:
            axis: ``"axial"`` (0, along D), ``"coronal"`` (1, along H) or ``"sagittal"``
                (2, along W) of the canonical layout.
            **kwargs: Options overriding this dataset's.

        Returns:
            The sliced dataset (reads slices from the memory-mapped cache).

        Raises:
            ValueError: Unknown axis.
        """
        return SlicedVolumeDataset.from_dataset(self, axis=axis, **kwargs)


class VideoDataset(MultiFrameDataset):
    """Videos (or other frame sequences) of a store as items ``(C, T, H, W)``.

    Frames are the D axis of :class:`MultiFrameDataset`; ``frame_labels`` index them.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
        >>> for n in range(1):
        ...     nib.save(image, root / f"ct_{n}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> frames = VideoDataset(store).frame_by_frame()
        >>> len(frames), frames[0]["image"].shape
        (4, torch.Size([1, 5, 6]))
    """

    def frame_by_frame(self, **kwargs: Unpack[DatasetKwargs]) -> SlicedVideoDataset:
        """One item per frame ``(C, H, W)``.

        Args:
            **kwargs: Options overriding this dataset's.

        Returns:
            The per-frame dataset.
        """
        return SlicedVideoDataset.from_dataset(self, **kwargs)
