"""Whole-volume and whole-video datasets (items ``(C, D, H, W)``) and their slicing entry points."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Unpack

from .base import StoreDataset
from .item.geometry import Plane
from .item.views import as_volume
from .loading.cache import VolumeArray
from .options import DatasetKwargs
from .patches import PatchDataset, PatchOptions, patch_classes
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

    def _view(self, array: VolumeArray, frame: int, record: ImageRecord) -> VolumeArray:
        return as_volume(array)

    def _plane(self) -> Plane | None:
        return ("volume", -1)

    def _frame_entry_args(self, array: VolumeArray, frame: int) -> tuple[int | None, int | None]:
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
        return SlicedVolumeDataset.from_dataset(self, axis, **kwargs)

    def patches(
        self,
        size: Sequence[int],
        *,
        per_volume: int = 1,
        foreground: float = 0.33,
        classes: Collection[str] | str | None = None,
        seed: int = 0,
        pad_value: float = 0.0,
    ) -> PatchDataset:
        """Random ``size`` patches of every volume, ``per_volume`` items per volume and epoch.

        Image and segmentations are cropped identically from the chunked cache (only the
        chunks around each patch are read); see :mod:`medstore.datasets.patches`.

        Args:
            size: Patch size ``(D, H, W)`` in canonical voxels.
            per_volume: Patches per volume and epoch.
            foreground: Fraction of patches centred on a voxel of a requested class.
            classes: Requested segmentation class names (default: every class).
            seed: Seed of the patch positions (with the epoch, image id and slot).
            pad_value: Image value outside the volume (segmentations get background).

        Returns:
            The patch dataset; call its ``set_epoch(n)`` before each epoch.

        Raises:
            ValueError: Bad size/probability, or an unknown class name.
        """
        options = PatchOptions(
            size=tuple(int(s) for s in size),
            per_volume=per_volume,
            foreground=foreground,
            classes=patch_classes(classes),
            seed=seed,
            pad_value=pad_value,
        )
        return PatchDataset.from_dataset(self, options)


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
