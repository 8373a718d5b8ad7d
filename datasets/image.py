"""2-D image dataset: items ``(C, H, W)``."""

from __future__ import annotations

from medstore.datastore import UnsupportedFormatError

from .base import StoreDataset
from .item.geometry import Plane
from .loading.cache import VolumeArray
from .records import ImageRecord

__all__ = ["ImageDataset"]


class ImageDataset(StoreDataset):
    """2-D images of a store as items: ``image`` float32 ``(C, H, W)``.

    A file holding a single-slice volume (``D == 1``) counts as 2-D. Segmentations are
    ``(N, H, W)`` / ``(L+1, H, W)``; ``frame_labels`` are those of frame 0, ``(L,)``.

    Args:
        store: A :class:`~medstore.datastore.LocalDatastore` or a store folder.
        image_ids: Restrict to these ids.
        cache_dir: Decode-once cache folder.
        **kwargs: Keyword options (:class:`~medstore.datasets.options.DatasetKwargs`).

    Raises:
        UnsupportedFormatError: (on item access) the image is a multi-slice volume.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> image = nib.Nifti1Image(np.zeros((6, 5, 1), np.int16), np.eye(4))
        >>> for n in range(1):
        ...     nib.save(image, root / f"ct_{n}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> ImageDataset(store)[0]["image"].shape
        torch.Size([1, 5, 6])
    """

    def _view(self, array: VolumeArray, frame: int, record: ImageRecord) -> VolumeArray:
        if array.ndim == 3:
            return array
        if array.ndim == 4 and array.shape[1] == 1:
            return array[:, 0]
        raise UnsupportedFormatError(
            f"image {record.image_id!r} has shape {tuple(array.shape)}, not 2-D; use "
            "VolumeDataset(...).slice() or VideoDataset(...).frame_by_frame()"
        )

    def _frame_entry_args(self, array: VolumeArray, frame: int) -> tuple[int | None, int | None]:
        return None, 0

    def _plane(self) -> Plane | None:
        return ("image", -1)
