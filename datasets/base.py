"""The dataset core: a store's images as items (ItemIndex), class lists, selection, loading."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from medstore.datastore.store.manifest import freeze_if_large, gc_paused
from torch.utils.data import DataLoader, Dataset

from .alb import require_albumentations
from .datamint_methods import DatamintMethods, alb_from_transform
from .item.assembly import ItemAssembler, LutKey, image_volume
from .item.geometry import Plane, RecordGeometry
from .item.label_space import LabelSpace
from .item_index import ItemIndex, Ref
from .label_sets import DatasetLabels
from .loading.cache import (
    CachedVolume,
    VolumeArray,
    VolumeCache,
    store_cache_folder,
    user_cache_folder,
)
from .loading.collate import collate_items, make_dataloader
from .loading.worker_memory import in_worker
from .options import DatasetOptions, MergeStrategy
from .records import ImageRecord, build_records, filter_records, open_store, restrict_classes
from .selection import frame_label_counts, normalized, segmentation_counts
from .source import dataset_source
from .splits import SplitResult, split_dataset

__all__ = ["Ref", "StoreDataset"]


class StoreDataset(DatamintMethods, Dataset[dict[str, Any]]):
    """Base of the dataset classes: a list of images of a store and how to turn one into an item.

    Subclasses decide the view (whole volume, 2-D image, one slice) through :meth:`_view`.
    Datasets only read the store; decoded arrays come from the decode-once
    :class:`~medstore.datasets.VolumeCache`.

    Args:
        project: The store: a :class:`~medstore.datastore.LocalDatastore` or a store folder
            (Datamint's project, offline).
        resources: Keep only these images (ids or records) of ``project``.
        auto_update: For a folder, also index files dropped into it since its manifest was
            written (in memory; nothing is written).
        api_key: Server-only: raises :class:`NotImplementedError`.
        server_url: Server-only: raises :class:`NotImplementedError`.
        image_ids: Restrict to these ids (in this order); default all, sorted.
        cache_dir: Cache folder (default ``.medstore/cache`` or the user cache when read-only).
        options: Pre-built options (instead of keyword options).
        return_metainfo: ... transform: The keyword options, one per row of
            :data:`~medstore.datasets.options.OPTION_TABLE` (same names and defaults; see
            :class:`~medstore.datasets.DatasetOptions` for their meaning).

    Raises:
        NotImplementedError: ``api_key`` or ``server_url`` given (offline only).
        ValueError: Conflicting options, or no ``project``.
        ImageNotFoundError: An id in ``image_ids`` is not in the store.
    """

    _frame_axis_name: str | None = None

    def __init__(
        self,
        project: Any = None,
        resources: Iterable[Any] | None = None,
        *,
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
        self.options = alb_from_transform(DatasetOptions.resolve(options, locals()))
        if self.options.alb_transform is not None:
            require_albumentations()
        self._store, image_ids = dataset_source(
            project,
            resources,
            image_ids=image_ids,
            auto_update=auto_update,
            api_key=api_key,
            server_url=server_url,
        )
        self._root = Path(getattr(self._store, "root", "."))
        folder = store_cache_folder(self._store, self._root) if cache_dir is None else cache_dir
        self._cache = VolumeCache(folder, fallback=user_cache_folder(self._root))
        with gc_paused():  # 10^5-10^6 small acyclic records: no full collection half-way
            records = filter_records(
                build_records(self._store, image_ids), self.options, store=self._store
            )
            self._index = ItemIndex.whole(records)
            # never walked by the collector either (as a large store's state): they live as
            # long as the dataset and are freed by reference counting. The freeze is the
            # process's (everything alive now); a large store's close() gives it all back.
            freeze_if_large(len(records))
        self._labels = DatasetLabels(self._index.records, self.options.filters, self._cache)
        self._luts: dict[LutKey, np.ndarray] = {}
        self._geometry: dict[int, tuple[ImageRecord, RecordGeometry]] = {}
        self.split_name: str | None = None
        self.split_source: str | None = None
        self.split_as_of_timestamp: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        self.label_space()  # compute once in the parent, never in each worker
        state = self.__dict__.copy()
        state["_store"] = None
        return state

    @property
    def store(self) -> Any:
        """The store (reopened from its folder after unpickling)."""
        if self._store is None:
            self._store = open_store(self._root)
        return self._store

    @property
    def cache(self) -> VolumeCache:
        """The decode-once cache used by this dataset."""
        return self._cache

    def label_space(self) -> LabelSpace:
        """The dataset's class lists, computed once and shared by its subsets and split parts.

        The first call reads labels that have no ``label_info`` to find their classes.

        Returns:
            Segmentation classes, image labels, image categories and frame labels.
        """
        return self._labels.space()

    @property
    def segmentation_labels_set(self) -> list[str]:
        """Global segmentation class names; name ``i`` has code ``i + 1``."""
        return list(self.label_space().segmentation)

    @property
    def image_labels_set(self) -> list[str]:
        """Image-level label names (one-hot positions)."""
        return list(self._labels.entities.image_labels)

    @property
    def image_categories_set(self) -> list[tuple[str, str]]:
        """Image-level ``(identifier, value)`` category pairs (class indices)."""
        return list(self._labels.entities.image_categories)

    @property
    def frame_labels_set(self) -> list[str]:
        """Frame-level label names (one-hot positions)."""
        return list(self._labels.entities.frame_labels)

    @property
    def index(self) -> ItemIndex:
        """Which item is which: the image records and one ``(record, frame)`` per item."""
        return self._index

    @property
    def frame_axis_name(self) -> str | None:
        """The slicing axis of a sliced dataset (``"axial"``, ``"frame"``...), else ``None``."""
        return self._frame_axis_name

    @property
    def label_sets(self) -> DatasetLabels:
        """The class lists and the label values read so far (shared with subsets and parts)."""
        return self._labels

    def get_segmentationlabel_distribution(self, normalize: bool = False) -> dict[str, float]:
        """How many images have a label naming each segmentation class.

        Args:
            normalize: Divide by the number of images.

        Returns:
            ``{class name: count or fraction}`` over :attr:`segmentation_labels_set`.
        """
        counts = segmentation_counts(
            self._index.image_records(), self.segmentation_labels_set, self._labels.class_names
        )
        return normalized(*counts, normalize)

    def get_framelabel_distribution(self, normalize: bool = False) -> dict[str, float]:
        """How many distinct (image, frame) pairs carry each frame label.

        Args:
            normalize: Divide by the total number of labelled (image, frame, name) triples.

        Returns:
            ``{frame label: count or fraction}``.
        """
        frames = self._labels.entities.frame_labels
        return normalized(*frame_label_counts(self._index.image_records(), frames), normalize)

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self[index]

    def get_image_id(self, index: int) -> str:
        """The store id of the image behind item ``index``.

        Args:
            index: Item index (negative counts from the end).

        Returns:
            The image id.
        """
        return self._index.image_id(index)

    def _image_volume(self, record: ImageRecord) -> CachedVolume:
        return image_volume(self._cache, record)

    def _view(self, array: VolumeArray, frame: int, record: ImageRecord) -> VolumeArray:
        """Cut the item's view from a channels-first canonical array (subclasses override)."""
        raise NotImplementedError

    def _frame_entry_args(self, array: VolumeArray, frame: int) -> tuple[int | None, int | None]:
        """``(num_frames, frame)`` for :func:`frame_labels_entry` (subclasses override)."""
        return None, None

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._item(index, shared=False)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The items of one batch (PyTorch's DataLoader fetches batches through this).

        In a DataLoader worker, a batch of one item without a transform builds its image
        directly in shared memory, handed to the main process without another copy
        (:mod:`.worker_memory`).

        Args:
            indices: Item indices.

        Returns:
            The items, in order.

        Example:
            See :class:`~medstore.datasets.VolumeDataset`.
        """
        shared = len(indices) == 1 and self.options.transform is None and in_worker()
        return [self._item(index, shared=shared) for index in indices]

    def _item(self, index: int, *, shared: bool) -> dict[str, Any]:
        record, frame = self._index.item(index)
        assembler = ItemAssembler(
            options=self.options,
            cache=self._cache,
            view=self._view,
            frame_entry_args=self._frame_entry_args,
            label_space=self.label_space,
            space=self._labels.entities,
            luts=self._luts,
            frame_axis_name=self._frame_axis_name,
            plane=self._plane(),
            geometry=self._geometry,
            box_codes=self._box_codes(),
            frame_categories=self._frame_category_pairs(),
        )
        return assembler.item(record, frame, shared_image=shared)

    def _plane(self) -> Plane | None:
        """How items cut their image (subclasses override; ``None``: no entity geometry)."""
        return None

    def _derive(self, index: ItemIndex) -> Self:
        new = copy.copy(self)
        new._index = index
        new.split_name = new.split_source = new.split_as_of_timestamp = None
        return new

    def keep_images(self, image_ids: Collection[str]) -> Self:
        """The items of the images in ``image_ids`` (same class, options and class lists).

        Args:
            image_ids: Image ids to keep; ids not in the dataset are ignored.

        Returns:
            The narrowed dataset (split attributes cleared).
        """
        return self._derive(self._index.keep_images(image_ids))

    def subset(self, indices: Iterable[int]) -> Self:
        """A dataset of the items at ``indices`` (same class, options and class lists).

        Args:
            indices: Item indices.

        Returns:
            The subset.

        Raises:
            IndexError: An index is out of range.
        """
        return self._derive(self._index.take(indices))

    def __add__(self, other: Self) -> Self:  # type: ignore[override]
        if type(other) is not type(self):
            return NotImplemented
        if self.frame_axis_name != other.frame_axis_name:
            raise ValueError("cannot add datasets sliced along different axes")
        # each side keeps its own segmentation filters (Datamint's + concatenates datasets)
        left = dataclasses.replace(
            self._index, records=tuple(restrict_classes(self._index.records, self.options))
        )
        right = dataclasses.replace(
            other.index, records=tuple(restrict_classes(other.index.records, other.options))
        )
        new = self._derive(left.concat(right))
        new._labels = self._labels.merged(other.label_sets, new.index.records)
        return new

    def split(
        self,
        *,
        seed: int | None = None,
        use_project_splits: bool | None = None,
        use_server_splits: bool | None = None,
        as_of_timestamp: str | None = None,
        by_patient: bool = False,
        **ratios: float,
    ) -> SplitResult[Self]:
        """Split into named parts; see :func:`medstore.datasets.splits.split_dataset` for the modes.

        Args:
            seed: Seed of a local split (reproducible across processes and machines).
            use_project_splits: Use assignments persisted in the store's split log.
            use_server_splits: Deprecated: use legacy ``split:<name>`` image tags.
            as_of_timestamp: ISO-8601 UTC time at which to replay persisted assignments.
            by_patient: Keep each ``info["patient_id"]`` in one part (local splits).
            **ratios: Part name → fraction; must sum to 1 ± 0.01.

        Returns:
            A :class:`~medstore.datasets.splits.SplitResult` mapping names to datasets.

        Raises:
            ValueError: Invalid ratios or conflicting modes.
        """
        return split_dataset(
            self,
            seed=seed,
            use_project_splits=use_project_splits,
            use_server_splits=use_server_splits,
            as_of_timestamp=as_of_timestamp,
            by_patient=by_patient,
            ratios=ratios,
        )

    def get_collate_fn(self) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        """Collate function: equal-shape tensors stacked, others listed, dicts key by key.

        Returns:
            The function.
        """
        return collate_items

    def get_dataloader(
        self, *args: Any, distributed: bool = False, **kwargs: Any
    ) -> DataLoader[dict[str, Any]]:
        """A DataLoader with :meth:`get_collate_fn`; see :func:`~medstore.datasets.make_dataloader`.

        Args:
            *args: Positional DataLoader arguments (e.g. ``batch_size``).
            distributed: Use ``torch.utils.data.DistributedSampler`` (needs an initialised
                process group, or ``num_replicas``/``rank`` keyword arguments).
            **kwargs: DataLoader arguments; ``shuffle``, ``drop_last`` and ``seed`` go to the
                sampler when ``distributed``.

        Returns:
            The loader.
        """
        self.label_space()
        return make_dataloader(self, *args, distributed=distributed, **kwargs)

    def __repr__(self) -> str:
        parts = [f"{type(self).__name__}({len(self)} items from {self._root}"]
        if self.split_name is not None:
            parts.append(f", split={self.split_name!r} ({self.split_source})")
        return "".join(parts) + ")"
