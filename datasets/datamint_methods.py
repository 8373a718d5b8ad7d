"""Datamint's dataset methods around the items: resources, transforms, filter, prefetch.

:class:`DatamintMethods` is mixed into :class:`~medstore.datasets.StoreDataset`; offline, a
*resource* is an :class:`~medstore.datasets.records.ImageRecord` and its annotations are the
store's entity annotations kept by the dataset's filters (label files are in ``record.labels``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Literal, Self, cast

from .alb import apply_alb_transform, compose, is_alb_transform, require_albumentations
from .item.assembly import volume_sources
from .item_index import ItemIndex
from .label_sets import DatasetLabels
from .loading.cache import VolumeCache
from .options import DatasetOptions
from .records import ImageRecord
from .selection import FilterCriteria, record_annotations
from .source import SERVER_ONLY

__all__ = ["DatamintMethods"]


class DatamintMethods:
    """Datamint's resource, transform, filter and prefetch methods (see the module)."""

    options: DatasetOptions
    _index: ItemIndex
    _labels: DatasetLabels
    _cache: VolumeCache

    def _derive(self, index: ItemIndex) -> Self:
        raise NotImplementedError

    @property
    def resources(self) -> list[ImageRecord]:
        """The dataset's images (Datamint's resources), one record per image, in order."""
        return self._index.image_records()

    @property
    def resource_annotations(self) -> list[list[Any]]:
        """The kept entity annotations of each of :attr:`resources`."""
        return [record_annotations(record) for record in self._index.image_records()]

    def get_resource(self, index: int) -> ImageRecord:
        """The image record behind item ``index`` (a slice's item gives its volume's record).

        Args:
            index: Item index.

        Returns:
            The record.
        """
        return self._index.item(index)[0]

    def items(self) -> Iterator[tuple[ImageRecord, list[Any]]]:
        """``(resource, annotations)`` pairs, one per image (Datamint's ``items()``).

        Yields:
            Each record and a copy of its annotation list.
        """
        for record in self._index.image_records():
            yield record, record_annotations(record)

    def group_by_patient(
        self,
        none_patient_id_strategy: Literal["individual", "group", "skip", "error"] = "individual",
    ) -> dict[str | None, Self]:
        """One dataset per patient (``info["patient_id"]``), e.g. for leave-one-patient-out.

        Args:
            none_patient_id_strategy: Images without a patient id: each its own patient
                (``"individual"``, keyed by image id), one ``None`` group, skipped, or an error.

        Returns:
            ``{patient id: dataset of that patient's images}``.

        Raises:
            ValueError: Unknown strategy, or ``"error"`` and an image without a patient id.
        """
        if none_patient_id_strategy not in ("individual", "group", "skip", "error"):
            raise ValueError(f"unknown none_patient_id_strategy {none_patient_id_strategy!r}")
        groups: dict[str | None, list[str]] = {}
        for record in self._index.image_records():
            pid = record.info.get("patient_id")
            key: str | None = None if pid in (None, "") else str(pid)
            if key is None:
                if none_patient_id_strategy == "error":
                    raise ValueError(f"image {record.image_id!r} has no patient_id")
                if none_patient_id_strategy == "skip":
                    continue
                if none_patient_id_strategy == "individual":
                    key = record.image_id
            groups.setdefault(key, []).append(record.image_id)
        return {key: self.keep_images(ids) for key, ids in groups.items()}

    def keep_images(self, image_ids: Collection[str]) -> Self:
        raise NotImplementedError

    def build_mlflow_dataset(self) -> Any:
        """Server-only in Datamint (an MLflow dataset of a server project).

        Raises:
            NotImplementedError: Always; log ``dataset.resources`` ids with MLflow yourself.
        """
        raise NotImplementedError(
            f"build_mlflow_dataset needs a Datamint server; {SERVER_ONLY}, and log the image ids "
            "(dataset.resources) with mlflow.log_param yourself"
        )

    @property
    def box_labels_set(self) -> list[str]:
        """Names of the box annotations of the dataset; ``box_labels`` index this list."""
        return list(self._box_codes())

    @property
    def frame_categories_set(self) -> list[tuple[str, str]]:
        """Frame-level ``(identifier, value)`` category pairs; ``frame_categories`` index them."""
        return list(self._frame_category_pairs())

    def _frame_category_pairs(self) -> tuple[tuple[str, str], ...]:
        cached = self.__dict__.get("_frame_category_cache")
        if cached is not None and cached[0] is self._index.records:
            return cast(tuple[tuple[str, str], ...], cached[1])
        pairs = tuple(
            sorted(
                {
                    (e.name, e.value)
                    for record in self._index.records
                    for e in record.entities
                    if e.kind == "category" and e.frame_index is not None and e.value is not None
                }
            )
        )
        self.__dict__["_frame_category_cache"] = (self._index.records, pairs)
        return pairs

    def _box_codes(self) -> dict[str, int]:
        cached = self.__dict__.get("_box_code_cache")
        if cached is not None and cached[0] is self._index.records:
            return cast(dict[str, int], cached[1])
        names = {
            e.name
            for record in self._index.records
            for e in record.entities
            if getattr(e.annotation, "TYPE", "") == "box"
        }
        codes = {name: i for i, name in enumerate(sorted(names))}
        self.__dict__["_box_code_cache"] = (self._index.records, codes)
        return codes

    @property
    def alb_transform(self) -> Any:
        """The albumentations transform applied to items, or ``None``."""
        return self.options.alb_transform

    def set_transform(self, alb_transform: Any = None) -> None:
        """Replace the albumentations transform (``None`` removes it).

        Args:
            alb_transform: An albumentations transform, or ``None``.

        Raises:
            ImportError: albumentations is missing (one line naming the extra).
        """
        if alb_transform is not None:
            require_albumentations()
        self.options = dataclasses.replace(self.options, alb_transform=alb_transform)

    def add_transform(self, alb_transform: Any) -> None:
        """Compose ``alb_transform`` after the current albumentations transform.

        Args:
            alb_transform: An albumentations transform.

        Raises:
            ImportError: albumentations is missing.
        """
        self.set_transform(compose(self.options.alb_transform, alb_transform))

    def apply_alb_transform(self, img: Any, targets: dict[str, Any]) -> dict[str, Any]:
        """Apply the dataset's albumentations transform to an image and targets, as Datamint.

        Args:
            img: ``(C, H, W)`` or ``(C, D, H, W)`` image.
            targets: ``masks`` (``{annotator: (N, ...)}``), ``boxes``, ``box_labels``.

        Returns:
            ``image`` plus the transformed targets.

        Raises:
            ValueError: No transform set.
        """
        if self.options.alb_transform is None:
            raise ValueError("alb_transform is not set")
        return apply_alb_transform(self.options.alb_transform, img, targets)

    def filter(
        self,
        *,
        tags: Sequence[str] | None = None,
        filename_pattern: str | None = None,
        has_annotations: bool | None = None,
        annotation_names: Sequence[str] | None = None,
        custom_fn: Callable[..., bool] | None = None,
    ) -> Self:
        """Keep the images matching **all** given criteria (chainable).

        Args:
            tags: Keep images whose ``info["tags"]`` hold any of these.
            filename_pattern: ``fnmatch`` glob on the image file name.
            has_annotations: Keep images with (``True``) or without (``False``) annotations.
            annotation_names: Keep images with a segmentation class or entity of these names.
            custom_fn: ``(resource, annotations) -> bool`` as Datamint (a one-argument
                predicate gets the :class:`~medstore.datasets.records.ImageRecord` only).

        Returns:
            The filtered dataset.

        Raises:
            ValueError: No criterion given.
        """
        criteria = FilterCriteria(
            tags, filename_pattern, has_annotations, annotation_names, custom_fn
        )
        records, names = self._index.records, self._labels.names
        keep = {i for i in self._index.record_ids() if criteria.matches(records[i], names)}
        return self._derive(self._index.keep_records(keep))

    def prefetch(self, *, include_annotations: bool = True, progress: bool = True) -> int:
        """Decode every image (and label file) of the dataset into the cache.

        Args:
            include_annotations: Also decode the label files (entity annotations are already
                in memory, read when the dataset was built).
            progress: Show a tqdm progress bar.

        Returns:
            The number of files processed.
        """
        sources = volume_sources(self._index.image_records())
        if not include_annotations:
            sources = [s for s in sources if s[2].startswith("image ")]
        return self._cache.prefetch(sources, progress=progress)


def alb_from_transform(options: DatasetOptions) -> DatasetOptions:
    """Move an albumentations ``transform=`` to ``alb_transform`` (Datamint users pass either).

    Args:
        options: The resolved options.

    Returns:
        The options, with an albumentations ``transform`` composed into ``alb_transform``.
    """
    if options.transform is None or not is_alb_transform(options.transform):
        return options
    alb = compose(options.alb_transform, options.transform)
    return dataclasses.replace(options, alb_transform=alb, transform=None)
