"""Index a store once into picklable per-image records (images, labels, entity annotations)."""

from __future__ import annotations

import os
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from medstore.datastore import (
    EntryBuilders,
    ImageNotFoundError,
    LocalDatastore,
    parse_label_info,
)
from medstore.datastore.store.manifest import gc_paused

from .item.entities import EntityRecord, entity_records, schema_names
from .options import DatasetOptions

__all__ = [
    "IN_WORK",
    "ImageRecord",
    "LabelRecord",
    "StoreLike",
    "build_records",
    "filter_records",
    "label_classes",
    "open_store",
    "restrict_classes",
]


@runtime_checkable
class StoreLike(Protocol):
    """The read side of :class:`~medstore.datastore.LocalDatastore` the datasets rely on."""

    def list_images(self) -> list[str]: ...
    def get_image_uri(self, image_id: str) -> str: ...
    def get_image_info(self, image_id: str) -> dict[str, Any]: ...
    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]: ...
    def get_label_uri(self, label_id: str, label_tag: str) -> str: ...
    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]: ...


@dataclass(frozen=True, eq=False, slots=True)
class LabelRecord:
    """One label file of an image.

    Attributes:
        tag: The label tag, i.e. the annotator (``final`` = approved reference).
        path: Absolute path of the label file.
        info: Its manifest info (read only: it may be the store's own dict).
        classes: ``{voxel value: class name}`` from ``label_info``, or ``None`` without one.
    """

    tag: str
    path: str
    info: Mapping[str, Any]
    classes: Mapping[int, str] | None


@dataclass(frozen=True, eq=False, slots=True)
class ImageRecord:
    """Everything a dataset needs about one image, resolved once at construction.

    Attributes:
        image_id: The store id.
        path: Absolute image path (file or DICOM series folder).
        info: The image's manifest info (read only: it may be the store's own dict).
            Its ``path`` key, where present, is :attr:`path`.
        labels: Label files kept after the annotator filter.
        entities: Entity annotations kept after the filters.
    """

    image_id: str
    path: str
    info: Mapping[str, Any]
    labels: tuple[LabelRecord, ...] = ()
    entities: tuple[EntityRecord, ...] = field(default=())

    @property
    def tags(self) -> list[str]:
        """The image's own tags (``info["tags"]``), e.g. ``["split:train"]``."""
        tags = self.info.get("tags") or []
        return [str(t) for t in tags] if isinstance(tags, (list, tuple)) else [str(tags)]

    @property
    def has_annotations(self) -> bool:
        """Whether any label file or entity annotation is left."""
        return bool(self.labels or self.entities)

    @property
    def checksum(self) -> str | None:
        """The manifest checksum, if recorded."""
        value = self.info.get("checksum")
        return str(value) if value else None


def open_store(store: Any) -> Any:
    """Return ``store`` itself, or open a :class:`LocalDatastore` at a path.

    Args:
        store: A store object or a folder path.

    Returns:
        A store offering the :class:`StoreLike` methods.

    Raises:
        TypeError: ``store`` is neither.
    """
    if isinstance(store, (str, os.PathLike)):
        # Index without writing: workers and ranks must not race to refresh the manifest.
        return LocalDatastore(str(Path(store)), refresh=False)
    if isinstance(store, StoreLike):
        return store
    raise TypeError(f"expected a LocalDatastore or a store path, got {type(store).__name__}")


def label_classes(info: Mapping[str, Any]) -> dict[int, str] | None:
    """Read MONAI Label's ``label_info`` (list of ``{"name", "idx"}``, or ``{name: idx}``).

    Parsed by the datastore's one parser (:func:`medstore.datastore.parse_label_info`, which
    documents which entries are usable); background (index 0) is skipped.

    Args:
        info: A label's info dict.

    Returns:
        ``{value: name}``, or ``None`` when the label has no usable ``label_info``.

    Example:
        >>> label_classes({"label_info": [{"name": "liver", "idx": 1}]})
        {1: 'liver'}
    """
    if info.get("label_info") is None:  # most labels: nothing to parse
        return None
    return parse_label_info(info).classes() or None


def _label_record(tag: str, path: str, info: dict[str, Any]) -> LabelRecord:
    return LabelRecord(tag, path, info, label_classes(info))


def _image_record(store: Any, image_id: str) -> ImageRecord:
    try:
        info = dict(store.get_image_info(image_id) or {})
        path = str(store.get_image_uri(image_id))
    except (KeyError, LookupError) as err:
        raise ImageNotFoundError(f"image {image_id!r} is not in the store") from err
    if not path:
        raise ImageNotFoundError(f"image {image_id!r} is not in the store")
    labels = []
    for tag in sorted(store.get_labels_by_image_id(image_id) or {}):
        label_info = dict(store.get_label_info(image_id, tag) or {})
        labels.append(_label_record(tag, str(store.get_label_uri(image_id, tag)), label_info))
    return ImageRecord(image_id, path, info, tuple(labels), entity_records(store, image_id))


def _annotated_ids(store: Any) -> Container[str] | None:
    """Ids that may have entity annotations (one folder listing), or ``None``: ask each."""
    api = getattr(store, "annotations", None)
    stored_ids = getattr(api, "stored_ids", None)
    return stored_ids() if callable(stored_ids) else None


RECORDS: EntryBuilders[ImageRecord] = EntryBuilders(ImageRecord, _label_record)
"""Records built straight from the store's bulk read (entities added after, where there are)."""


def _with_entities(
    store: Any, records: list[ImageRecord], annotated: Container[str] | None
) -> list[ImageRecord]:
    """The records, each given its entity annotations (only ``annotated`` ids are asked)."""
    if annotated is not None and not annotated:
        return records
    out = []
    for record in records:
        if annotated is None or record.image_id in annotated:
            entities = entity_records(store, record.image_id)
            if entities:
                record = replace(record, entities=entities)
        out.append(record)
    return out


def build_records(store: Any, image_ids: Iterable[str] | None = None) -> list[ImageRecord]:
    """Resolve every image (sorted by id, or in the given order) into a record.

    A :class:`~medstore.datastore.LocalDatastore` is read in one go (``image_entries``: one look
    at the manifest, one listing per folder, the annotation files listed once and only those
    read); any other store image by image through its getters.

    Args:
        store: The store (only read).
        image_ids: A subset of ids, or ``None`` for all.

    Returns:
        Unfiltered records.

    Raises:
        ImageNotFoundError: An id in ``image_ids`` is not in the store.
        UnsafePathError: A copied image or a label is a link out of the store.
    """
    bulk = getattr(store, "image_entries", None)
    if not callable(bulk):
        ids = sorted(store.list_images()) if image_ids is None else list(image_ids)
        return [_image_record(store, image_id) for image_id in ids]
    with gc_paused():  # 10^5-10^6 small acyclic objects: no full collection half-way
        records = bulk(None if image_ids is None else list(image_ids), builders=RECORDS)
        return _with_entities(store, records, _annotated_ids(store))


IN_WORK: frozenset[str] = frozenset(
    {"new", "opened", "open", "in_progress", "revision_request", "rejected", "draft"}
)
"""Entity annotation statuses left out of training unless ``all_annotations=True``."""


def _keep_entity(
    entity: EntityRecord, options: DatasetOptions, allowed: frozenset[str] | None
) -> bool:
    filters = options.filters
    if not filters.keeps_annotator(entity.annotator):
        return False
    if not options.all_annotations and entity.status in IN_WORK:
        return False
    if options.worklists not in (None, "all") and entity.worklist_id not in options.worklists:
        return False
    if (
        allowed is not None
        and not options.allow_external_annotations
        and entity.name not in allowed
    ):
        return False
    if entity.kind == "label":
        if entity.frame_index is None:
            return filters.keeps_image_label(entity.name)
        return filters.keeps_frame_label(entity.name)
    if entity.kind == "segmentation":
        return filters.keeps_segmentation(entity.name)
    return True


def restrict_classes(records: Iterable[ImageRecord], options: DatasetOptions) -> list[ImageRecord]:
    """Records whose label files name only the classes ``options`` keep (for ``a + b``).

    Args:
        records: Filtered records.
        options: Their dataset's options.

    Returns:
        The records, label ``classes`` narrowed by the segmentation name filter (labels without
        ``label_info`` are left as they are).

    Example:
        >>> restrict_classes([], DatasetOptions())
        []
    """
    filters = options.filters
    if filters.include_segmentation_names is None and filters.exclude_segmentation_names is None:
        return list(records)
    out = []
    for record in records:
        labels = tuple(
            label
            if label.classes is None
            else replace(
                label,
                classes={v: n for v, n in label.classes.items() if filters.keeps_segmentation(n)},
            )
            for label in record.labels
        )
        out.append(replace(record, labels=labels))
    return out


def filter_records(
    records: Iterable[ImageRecord], options: DatasetOptions, *, store: Any = None
) -> list[ImageRecord]:
    """Apply annotator/name filters and ``include_unannotated`` to records.

    Args:
        records: Unfiltered records.
        options: The dataset options.
        store: The store, consulted for an annotation schema.

    Returns:
        The filtered records.
    """
    allowed = schema_names(store) if store is not None else None
    filters = options.filters
    every_tag = filters.include_annotators is None and filters.exclude_annotators is None
    # an annotator filter drops images that annotator never annotated (Datamint keeps them only
    # to fail at batch time)
    keep_bare = options.include_unannotated and filters.include_annotators is None
    kept = []
    for record in records:
        if every_tag and not record.entities:  # nothing to filter out: the record as it is
            new = record
        else:
            labels = tuple(lb for lb in record.labels if filters.keeps_annotator(lb.tag))
            entities = tuple(e for e in record.entities if _keep_entity(e, options, allowed))
            same = len(labels) == len(record.labels) and len(entities) == len(record.entities)
            new = record if same else replace(record, labels=labels, entities=entities)
        if keep_bare or new.has_annotations:
            kept.append(new)
    return kept
