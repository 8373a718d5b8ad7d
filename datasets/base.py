"""The common dataset core: indexing a store, label sets, selection, splits and loading."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from torch.utils.data import DataLoader, Dataset

from .item.assembly import ItemAssembler, image_volume, label_volume, volume_sources
from .item.label_space import LabelSpace, entity_space, nonzero_values, segmentation_classes
from .loading.cache import CachedVolume, VolumeCache, store_cache_folder
from .loading.collate import collate_items, make_dataloader
from .loading.worker_memory import in_worker
from .options import DatasetOptions, MergeStrategy
from .records import ImageRecord, LabelRecord, build_records, filter_records, open_store
from .selection import FilterCriteria, frame_label_counts, normalized, segmentation_counts

if TYPE_CHECKING:
    from .splits import SplitResult

__all__ = ["DatasetContents", "Ref", "StoreDataset"]

Ref = tuple[int, int]
"""``(record index, frame)``; frame ``-1`` means the whole image."""


@dataclass(frozen=True)
class DatasetContents:
    """What a dataset is made of, as :meth:`StoreDataset.contents` hands it to ``+``.

    Attributes:
        records: Every image record (item references index into it).
        refs: One ``(record index, frame)`` per item.
        frame_axis_name: The slicing axis of a sliced dataset, else ``None``.
        label_values: ``{label path: nonzero values}`` already read from labels without classes.
    """

    records: tuple[ImageRecord, ...]
    refs: tuple[Ref, ...]
    frame_axis_name: str | None
    label_values: Mapping[str, tuple[int, ...]]


class StoreDataset(Dataset[dict[str, Any]]):
    """Base of the dataset classes: a list of images of a store and how to turn one into an item.

    Subclasses decide the view (whole volume, 2-D image, one slice) through :meth:`_view`.
    Datasets only read the store; decoded arrays come from the decode-once
    :class:`~medstore.datasets.VolumeCache`.

    Args:
        store: A :class:`~medstore.datastore.LocalDatastore` or a store folder.
        image_ids: Restrict to these ids (in this order); default all, sorted.
        cache_dir: Cache folder (default ``.medstore/cache`` or the user cache when read-only).
        options: Pre-built options (instead of keyword options).
        return_metainfo: ... transform: The keyword options, one per row of
            :data:`~medstore.datasets.options.OPTION_TABLE` (same names and defaults; see
            :class:`~medstore.datasets.DatasetOptions` for their meaning).

    Raises:
        ValueError: Conflicting options.
        ImageNotFoundError: An id in ``image_ids`` is not in the store.
    """

    _frame_axis_name: str | None = None

    def __init__(
        self,
        store: Any,
        *,
        image_ids: Iterable[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        options: DatasetOptions | None = None,
        return_metainfo: bool = True,
        return_segmentations: bool = True,
        return_as_semantic_segmentation: bool = False,
        semantic_seg_merge_strategy: MergeStrategy | None = None,
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
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.options = DatasetOptions.resolve(options, locals())
        self._store = open_store(store)
        self._root = Path(getattr(self._store, "root", "."))
        folder = (
            Path(cache_dir)
            if cache_dir is not None
            else store_cache_folder(self._store, self._root)
        )
        self._cache = VolumeCache(folder)
        self._records = filter_records(
            build_records(self._store, image_ids), self.options, store=self._store
        )
        self._refs: list[Ref] = [(i, -1) for i in range(len(self._records))]
        labels, categories, frames = entity_space(self._records)
        self._space = LabelSpace((), labels, categories, frames)
        self._seg_ready = False
        self._present: dict[str, tuple[int, ...]] = {}
        self._luts: dict[tuple[str, str, tuple[str, ...]], np.ndarray] = {}
        self.split_name: str | None = None
        self.split_source: str | None = None
        self.split_as_of_timestamp: str | None = None

    # ----------------------------------------------------------------- pickling / store access
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

    # ----------------------------------------------------------------- label sets
    def label_space(self) -> LabelSpace:
        """The dataset's class lists, computed once and shared by its subsets and split parts.

        The first call reads labels that have no ``label_info`` to find their classes.

        Returns:
            Segmentation classes, image labels, image categories and frame labels.
        """
        if not self._seg_ready:
            classes = segmentation_classes(
                self._records, self.options.filters, self._present_values
            )
            self._space = LabelSpace(classes, *self._space_entities())
            self._seg_ready = True
        return self._space

    def _space_entities(self) -> tuple[Any, Any, Any]:
        s = self._space
        return s.image_labels, s.image_categories, s.frame_labels

    def _present_values(self, record: ImageRecord, label: LabelRecord) -> tuple[int, ...]:
        """Nonzero values of a label without ``label_info`` (read through the cache once)."""
        if label.path not in self._present:
            array = label_volume(self._cache, record, label, keep_open=False).array
            self._present[label.path] = nonzero_values(array)
        return self._present[label.path]

    @property
    def segmentation_labels_set(self) -> list[str]:
        """Global segmentation class names; name ``i`` has code ``i + 1``."""
        return list(self.label_space().segmentation)

    @property
    def image_labels_set(self) -> list[str]:
        """Image-level label names (one-hot positions)."""
        return list(self._space.image_labels)

    @property
    def image_categories_set(self) -> list[tuple[str, str]]:
        """Image-level ``(identifier, value)`` category pairs (class indices)."""
        return list(self._space.image_categories)

    @property
    def frame_labels_set(self) -> list[str]:
        """Frame-level label names (one-hot positions)."""
        return list(self._space.frame_labels)

    def _record_ids(self) -> list[int]:
        seen: dict[int, None] = {}
        for rec, _ in self._refs:
            seen.setdefault(rec, None)
        return list(seen)

    def image_records(self) -> list[ImageRecord]:
        """The records of the images behind the items, each once, in item order.

        Returns:
            The records (a new list).
        """
        return [self._records[i] for i in self._record_ids()]

    def contents(self) -> DatasetContents:
        """The parts another dataset of the same class needs to be concatenated with this one.

        Returns:
            Records, item references, slicing axis and label values already read.
        """
        return DatasetContents(
            tuple(self._records), tuple(self._refs), self._frame_axis_name, dict(self._present)
        )

    def _class_names(self, record: ImageRecord) -> set[str]:
        names: set[str] = set()
        for label in record.labels:
            if label.classes is not None:
                names.update(label.classes.values())
            else:
                names.update(str(v) for v in self._present_values(record, label))
        return names

    def _names(self, record: ImageRecord) -> set[str]:
        return {e.name for e in record.entities} | self._class_names(record)

    def get_segmentationlabel_distribution(self, normalize: bool = False) -> dict[str, float]:
        """How many images have a label naming each segmentation class.

        Args:
            normalize: Divide by the number of images.

        Returns:
            ``{class name: count or fraction}`` over :attr:`segmentation_labels_set`.
        """
        records = (self._records[i] for i in self._record_ids())
        counts, total = segmentation_counts(
            records, self.segmentation_labels_set, self._class_names
        )
        return normalized(counts, total, normalize)

    def get_framelabel_distribution(self, normalize: bool = False) -> dict[str, float]:
        """How many distinct (image, frame) pairs carry each frame label.

        Args:
            normalize: Divide by the total number of labelled (image, frame, name) triples.

        Returns:
            ``{frame label: count or fraction}``.
        """
        records = (self._records[i] for i in self._record_ids())
        counts, total = frame_label_counts(records, self._space.frame_labels)
        return normalized(counts, total, normalize)

    # ----------------------------------------------------------------- items
    def __len__(self) -> int:
        return len(self._refs)

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
        return self._records[self._refs[index][0]].image_id

    def _image_volume(self, record: ImageRecord) -> CachedVolume:
        return image_volume(self._cache, record)

    def _view(self, array: np.ndarray, frame: int, record: ImageRecord) -> np.ndarray:
        """Cut the item's view from a channels-first canonical array (subclasses override)."""
        raise NotImplementedError

    def _frame_entry_args(self, array: np.ndarray, frame: int) -> tuple[int | None, int | None]:
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
            >>> import tempfile, pathlib, numpy as np, nibabel as nib
            >>> from medstore.datastore import LocalDatastore
            >>> root = pathlib.Path(tempfile.mkdtemp())
            >>> image = nib.Nifti1Image(np.zeros((6, 5, 4), np.int16), np.eye(4))
            >>> for n in range(2):
            ...     nib.save(image, root / f"ct_{n}.nii.gz")
            >>> store = LocalDatastore(root)
            >>> from medstore.datasets import VolumeDataset
            >>> ds = VolumeDataset(store)
            >>> [item["image"].shape for item in ds.__getitems__([0, 1])]
            [torch.Size([1, 4, 5, 6]), torch.Size([1, 4, 5, 6])]
        """
        shared = len(indices) == 1 and self.options.transform is None and in_worker()
        return [self._item(index, shared=shared) for index in indices]

    def _item(self, index: int, *, shared: bool) -> dict[str, Any]:
        rec_index, frame = self._refs[index]
        assembler = ItemAssembler(
            options=self.options,
            cache=self._cache,
            view=self._view,
            frame_entry_args=self._frame_entry_args,
            label_space=self.label_space,
            space=self._space,
            luts=self._luts,
            frame_axis_name=self._frame_axis_name,
        )
        return assembler.item(self._records[rec_index], frame, shared_image=shared)

    # ----------------------------------------------------------------- selection
    def _derive(self, records: list[ImageRecord], refs: list[Ref]) -> Self:
        new = copy.copy(self)
        new._records, new._refs = records, refs
        new._present = self._present
        new.split_name = new.split_source = new.split_as_of_timestamp = None
        return new

    def _keep_records(self, keep: set[int]) -> Self:
        return self._derive(self._records, [r for r in self._refs if r[0] in keep])

    def keep_images(self, image_ids: Collection[str]) -> Self:
        """The items of the images in ``image_ids`` (same class, options and class lists).

        Args:
            image_ids: Image ids to keep; ids not in the dataset are ignored.

        Returns:
            The narrowed dataset (split attributes cleared).
        """
        wanted = set(image_ids)
        return self._keep_records(
            {i for i in self._record_ids() if self._records[i].image_id in wanted}
        )

    def subset(self, indices: Iterable[int]) -> Self:
        """A dataset of the items at ``indices`` (same class, options and class lists).

        Args:
            indices: Item indices.

        Returns:
            The subset.

        Raises:
            IndexError: An index is out of range.
        """
        try:
            refs = [self._refs[i] for i in indices]
        except IndexError as err:
            raise IndexError(f"subset index out of range for a dataset of {len(self)}") from err
        return self._derive(self._records, refs)

    def filter(
        self,
        *,
        tags: Sequence[str] | None = None,
        filename_pattern: str | None = None,
        has_annotations: bool | None = None,
        annotation_names: Sequence[str] | None = None,
        custom_fn: Callable[[ImageRecord], bool] | None = None,
    ) -> Self:
        """Keep the images matching **all** given criteria (chainable).

        Args:
            tags: Keep images whose ``info["tags"]`` hold any of these.
            filename_pattern: ``fnmatch`` glob on the image file name.
            has_annotations: Keep images with (``True``) or without (``False``) annotations.
            annotation_names: Keep images with a segmentation class or entity of these names.
            custom_fn: Predicate on the :class:`~medstore.datasets.records.ImageRecord`.

        Returns:
            The filtered dataset.

        Raises:
            ValueError: No criterion given.
        """
        criteria = FilterCriteria(
            tags, filename_pattern, has_annotations, annotation_names, custom_fn
        )
        keep = {i for i in self._record_ids() if criteria.matches(self._records[i], self._names)}
        return self._keep_records(keep)

    def __add__(self, other: Self) -> Self:  # type: ignore[override]
        if type(other) is not type(self):
            return NotImplemented
        theirs = other.contents()
        if self._frame_axis_name != theirs.frame_axis_name:
            raise ValueError("cannot add datasets sliced along different axes")
        offset = len(self._records)
        refs = self._refs + [(r + offset, f) for r, f in theirs.refs]
        new = self._derive(self._records + list(theirs.records), refs)
        new._space = self.label_space().union(other.label_space())
        new._present = {**self._present, **theirs.label_values}
        return new

    # ----------------------------------------------------------------- splits and loading
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
        from .splits import split_dataset

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

    def prefetch(self, *, progress: bool = True) -> int:
        """Decode every image (and label) of the dataset into the cache, with a progress bar.

        Args:
            progress: Show a tqdm progress bar.

        Returns:
            The number of files processed.
        """
        sources = volume_sources(self._records[i] for i in self._record_ids())
        return self._cache.prefetch(sources, progress=progress)

    def __repr__(self) -> str:
        parts = [f"{type(self).__name__}({len(self)} items from {self._root}"]
        if self.split_name is not None:
            parts.append(f", split={self.split_name!r} ({self.split_source})")
        return "".join(parts) + ")"
