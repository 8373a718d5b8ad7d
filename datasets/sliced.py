"""Slice-per-item views of volume and video datasets, read from the memory-mapped cache."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Collection, Iterable
from typing import Any, Literal, Self, Unpack

from .base import StoreDataset
from .datamint_methods import alb_from_transform
from .item.geometry import Plane
from .item.views import as_volume
from .item_index import ItemIndex, Ref
from .label_sets import DatasetLabels
from .loading.cache import VolumeArray
from .options import DatasetKwargs, DatasetOptions, MergeStrategy
from .records import ImageRecord, build_records, filter_records

__all__ = ["AXES", "AxisName", "SlicedVideoDataset", "SlicedVolumeDataset", "axis_index"]

AxisName = Literal["axial", "coronal", "sagittal"]
AXES: tuple[str, ...] = ("axial", "coronal", "sagittal")


def axis_index(axis: AxisName | int) -> int:
    """Spatial axis index of the canonical ``(D, H, W)`` layout for an axis name or number.

    Args:
        axis: ``"axial"``/0 (D), ``"coronal"``/1 (H) or ``"sagittal"``/2 (W).

    Returns:
        0, 1 or 2.

    Raises:
        ValueError: Anything else.

    Example:
        >>> axis_index("coronal"), axis_index(2)
        (1, 2)
    """
    if isinstance(axis, str) and axis.lower() in AXES:
        return AXES.index(axis.lower())
    if isinstance(axis, int) and not isinstance(axis, bool) and axis in (0, 1, 2):
        return axis
    raise ValueError(f"axis must be one of {AXES} or 0, 1, 2; got {axis!r}")


class SlicedVolumeDataset(StoreDataset):
    """One item per slice of every volume: ``image`` float32 ``(C, H, W)``.

    The slice is ``volume[:, k]`` (axial), ``volume[:, :, k]`` (coronal) or
    ``volume[:, :, :, k]`` (sagittal) of the canonical ``(C, D, H, W)`` array, without flips;
    so a coronal slice's rows run inferior→superior. ``metainfo`` adds ``slice_index`` and
    ``slice_axis`` (the affine and spacing stay those of the volume). Frame labels apply to
    axial slices only (frame = D index); other axes give empty frame labels. Splits and
    ``filter()`` work per image, so slices of one volume never land in two parts.

    Args:
        project: A :class:`~medstore.datastore.LocalDatastore` or a store folder.
        resources: Keep only these images (ids or records).
        slice_axis: Slicing axis (see :func:`axis_index`).
        parent_dataset: Slice this dataset instead (see :meth:`from_dataset`).
        axis: Older name of ``slice_axis``.
        auto_update: ... server_url: As :class:`StoreDataset`.
        image_ids: Restrict to these ids.
        cache_dir: Decode-once cache folder.
        options: Pre-built options (instead of keyword options).
        return_metainfo: ... transform: The keyword options (see :class:`StoreDataset`).

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
        >>> for n in range(1):
        ...     nib.save(image, root / f"ct_{n}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> ds = SlicedVolumeDataset(store, slice_axis="axial")
        >>> len(ds), ds[1]["metainfo"]["slice_index"], ds[1]["image"].shape
        (4, 1, torch.Size([1, 5, 6]))
    """

    def __init__(
        self,
        project: Any = None,
        resources: Iterable[Any] | None = None,
        *,
        slice_axis: AxisName | int = "axial",
        parent_dataset: StoreDataset | None = None,
        axis: AxisName | int | None = None,
        auto_update: bool = True,
        api_key: str | None = None,
        server_url: str | None = None,
        image_ids: Iterable[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        options: DatasetOptions | None = None,
        return_metainfo: bool = True,
        return_segmentations: bool = True,
        return_boxes: bool = False,
        return_as_semantic_segmentation: bool = False,
        semantic_seg_merge_strategy: MergeStrategy | None = None,
        alb_transform: Any = None,
        include_unannotated: bool = True,
        include_annotators: Collection[str] | None = None,
        exclude_annotators: Collection[str] | None = None,
        include_segmentation_names: Collection[str] | None = None,
        exclude_segmentation_names: Collection[str] | None = None,
        include_image_label_names: Collection[str] | None = None,
        exclude_image_label_names: Collection[str] | None = None,
        include_frame_label_names: Collection[str] | None = None,
        exclude_frame_label_names: Collection[str] | None = None,
        allow_external_annotations: bool = False,
        image_labels_merge_strategy: MergeStrategy | None = None,
        image_categories_merge_strategy: MergeStrategy | None = None,
        worklists: Collection[Any] | Literal["all"] | None = "all",
        all_annotations: bool = False,
        return_annotations: bool = True,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        slice_axis = slice_axis if axis is None else axis
        if parent_dataset is not None:
            if project is not None or resources is not None:
                raise ValueError("give parent_dataset= or project=/resources=, not both")
            self.__dict__.update(type(self).from_dataset(parent_dataset, slice_axis).__dict__)
            return
        options = DatasetOptions.resolve(options, locals())
        super().__init__(
            project,
            resources,
            auto_update=auto_update,
            api_key=api_key,
            server_url=server_url,
            image_ids=image_ids,
            cache_dir=cache_dir,
            options=options,
        )
        self._set_axis(slice_axis)
        self._index = self._slice_refs(self._index, range(len(self._index.records)))

    def _set_axis(self, axis: AxisName | int) -> None:
        self._axis = axis_index(axis)
        self._frame_axis_name = AXES[self._axis]

    @property
    def axis(self) -> int:
        """The sliced spatial axis (0 axial, 1 coronal, 2 sagittal)."""
        return self._axis

    def _slice_refs(self, index: ItemIndex, record_ids: Iterable[int]) -> ItemIndex:
        """One item ``(record, k)`` per slice; volume shapes come from the cache (decoded once)."""
        refs: list[Ref] = []
        for i in record_ids:
            shape = as_volume(self._image_volume(index.records[i]).array).shape
            refs.extend((i, k) for k in range(shape[1 + self._axis]))
        return index.with_refs(refs)

    @classmethod
    def from_dataset(
        cls,
        parent_dataset: StoreDataset,
        slice_axis: AxisName | int = "axial",
        *,
        axis: AxisName | int | None = None,
        **kwargs: Unpack[DatasetKwargs],
    ) -> Self:
        """Slice the images of an existing dataset (same store, cache and, by default, options).

        Args:
            parent_dataset: A volume (or video) dataset, possibly filtered or split.
            slice_axis: Slicing axis.
            axis: Older name of ``slice_axis``.
            **kwargs: Options overriding the parent's; changed filters re-read the store.

        Returns:
            The sliced dataset (split attributes carried over).
        """
        parent = parent_dataset
        new = cls.__new__(cls)
        new.__dict__.update(copy.copy(parent.__dict__))
        new._set_axis(slice_axis if axis is None else axis)
        index = parent.index
        record_ids = index.record_ids()
        if kwargs:
            merged = parent.options.to_kwargs()
            merged.update(kwargs)
            new.options = alb_from_transform(DatasetOptions.from_kwargs(**merged))
            if parent.options.needs_refilter(new.options):
                ids = [record.image_id for record in parent.index.image_records()]
                records = build_records(parent.store, ids)
                index = ItemIndex.whole(filter_records(records, new.options, store=parent.store))
                record_ids = list(range(len(index.records)))
                new._labels = DatasetLabels(
                    index.records, new.options.filters, new._cache, values=parent.label_sets.values
                )
            elif new.options.filters != parent.options.filters:
                new._labels = parent.label_sets.with_filters(new.options.filters)
        new._index = new._slice_refs(index, record_ids)
        return new

    def _view(self, array: VolumeArray, frame: int, record: ImageRecord) -> VolumeArray:
        index: tuple[slice | int, ...] = (slice(None),) * (1 + self._axis) + (frame,)
        return as_volume(array)[index]

    def _frame_entry_args(self, array: VolumeArray, frame: int) -> tuple[int | None, int | None]:
        return None, (frame if self._axis == 0 else None)

    def _plane(self) -> Plane | None:
        return ("slice", self._axis)


class SlicedVideoDataset(SlicedVolumeDataset):
    """One item per video frame: ``image`` float32 ``(C, H, W)``, ``frame_labels`` ``(L,)``.

    Built by :meth:`VideoDataset.frame_by_frame` or :meth:`from_dataset`; ``metainfo`` has
    ``slice_index`` (the frame) and ``slice_axis == "frame"``.

    Example:
        >>> import tempfile, pathlib, numpy as np, nibabel as nib
        >>> from medstore.datastore import LocalDatastore
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
        >>> for n in range(1):
        ...     nib.save(image, root / f"ct_{n}.nii.gz")
        >>> store = LocalDatastore(root)
        >>> SlicedVideoDataset(store)[3]["metainfo"]["slice_axis"]
        'frame'
    """

    def __init__(
        self,
        project: Any = None,
        resources: Iterable[Any] | None = None,
        *,
        parent_dataset: StoreDataset | None = None,
        auto_update: bool = True,
        api_key: str | None = None,
        server_url: str | None = None,
        image_ids: Iterable[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        options: DatasetOptions | None = None,
        return_metainfo: bool = True,
        return_segmentations: bool = True,
        return_boxes: bool = False,
        return_as_semantic_segmentation: bool = False,
        semantic_seg_merge_strategy: MergeStrategy | None = None,
        alb_transform: Any = None,
        include_unannotated: bool = True,
        include_annotators: Collection[str] | None = None,
        exclude_annotators: Collection[str] | None = None,
        include_segmentation_names: Collection[str] | None = None,
        exclude_segmentation_names: Collection[str] | None = None,
        include_image_label_names: Collection[str] | None = None,
        exclude_image_label_names: Collection[str] | None = None,
        include_frame_label_names: Collection[str] | None = None,
        exclude_frame_label_names: Collection[str] | None = None,
        allow_external_annotations: bool = False,
        image_labels_merge_strategy: MergeStrategy | None = None,
        image_categories_merge_strategy: MergeStrategy | None = None,
        worklists: Collection[Any] | Literal["all"] | None = "all",
        all_annotations: bool = False,
        return_annotations: bool = True,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        if parent_dataset is not None:
            super().__init__(parent_dataset=parent_dataset)
            return
        options = DatasetOptions.resolve(options, locals())
        super().__init__(
            project,
            resources,
            slice_axis=0,
            auto_update=auto_update,
            api_key=api_key,
            server_url=server_url,
            image_ids=image_ids,
            cache_dir=cache_dir,
            options=options,
        )

    def _set_axis(self, axis: AxisName | int) -> None:
        if axis_index(axis) != 0:
            raise ValueError("videos are sliced frame by frame (axis 0) only")
        self._axis = 0
        self._frame_axis_name = "frame"

    @classmethod
    def from_dataset(
        cls,
        parent_dataset: StoreDataset,
        slice_axis: AxisName | int = 0,
        *,
        axis: AxisName | int | None = None,
        **kwargs: Unpack[DatasetKwargs],
    ) -> Self:
        """One item per frame of the parent's videos (see :meth:`SlicedVolumeDataset.from_dataset`).

        Args:
            parent_dataset: A video dataset.
            slice_axis: Must be 0 (frames).
            axis: Older name of ``slice_axis``.
            **kwargs: Options overriding the parent's.

        Returns:
            The per-frame dataset.
        """
        return super().from_dataset(parent_dataset, slice_axis, axis=axis, **kwargs)
