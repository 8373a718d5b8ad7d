"""Per-image annotation storage: ``<root>/.medstore/annotations/<image_id>.json``.

Each file is ``{"format_version": 1, "image_id": ..., "annotations": [ {...}, ... ]}``, replaced
durably under the store lock, re-read on every call (no in-memory copy is trusted
across processes). Work on one image costs O(that image's annotations), whatever the store's size.

Examples:
    >>> import tempfile, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> from medstore.datastore.annotations import LabelAnnotation
    >>> folder = tempfile.mkdtemp()
    >>> nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)), f"{folder}/case_1.nii")
    >>> anns = LocalDatastore(folder).annotations
    >>> ann_id = anns.add("case_1", LabelAnnotation(identifier="artifact"))
    >>> [a.identifier for a in anns.list("case_1")]
    ['artifact']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import orjson

from .. import nofollow
from ..durable import atomic_write_bytes
from ..errors import AnnotationError, ImageNotFoundError
from ..ids import validate_id
from ..timestamps import utc_now
from .base import Annotation
from .geometry import frame_count
from .grid import ImageGrid, probed_frame_count
from .labels import save_segmentation_label
from .migrate import migrate_records
from .registry import annotation_class, annotation_from_dict
from .schema import AnnotationSpec, ProjectSchema, load_schema, save_schema
from .segmentation import VolumeSegmentation
from .versioned import VersionedRecords, select_version

__all__ = ["ANNOTATIONS_FORMAT_VERSION", "AnnotationStore"]

#: 2: Datamint pixel geometry stored on the canonical array (1: as Datamint gave it; migrated).
ANNOTATIONS_FORMAT_VERSION = 2
_Records = dict[str, dict[str, Any]]


class _Store(Protocol):
    @property
    def root(self) -> Path: ...

    @property
    def read_only(self) -> bool: ...

    def side_path(self, *parts: str) -> Path: ...

    def locked(self) -> AbstractContextManager[Any]: ...

    def check_writable(self) -> None: ...

    def has_image(self, image_id: str) -> bool: ...

    def get_image_info(self, image_id: str) -> dict[str, Any]: ...

    def get_image_uri(self, image_id: str) -> str: ...

    def save_label(
        self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]
    ) -> Any: ...


class AnnotationStore:
    """Entity annotations of one store (reached as ``store.annotations``).

    Args:
        store: The datastore (``LocalDatastore`` or anything with the same small interface).
    """

    def __init__(self, store: _Store) -> None:
        self._store = store

    # -- files ----------------------------------------------------------------------------------

    def _path(self, image_id: str) -> Path:
        validate_id(image_id)
        return self._store.side_path("annotations", f"{image_id}.json")

    def _read(self, image_id: str, image_version: str | None = None) -> VersionedRecords:
        path = self._path(image_id)
        info = self._store.get_image_info(image_id) if self._store.has_image(image_id) else None
        try:
            raw = nofollow.read_bytes(path)  # a planted link is refused, never read
        except (FileNotFoundError, NotADirectoryError):
            return select_version([], image_id, info, image_version)
        try:
            doc = orjson.loads(raw)
            version = doc["format_version"]
            items = doc["annotations"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            raise AnnotationError(f"annotation file {path} is corrupt: {err}") from err
        if not isinstance(version, int) or version > ANNOTATIONS_FORMAT_VERSION:
            raise AnnotationError(f"annotation file {path} has unsupported version {version!r}")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise AnnotationError(f"annotation file {path} is corrupt: bad 'annotations' list")
        items = migrate_records(items, version, lambda: ImageGrid.of_image(self._store, image_id))
        return select_version(items, image_id, info, image_version)  # only the image's own

    def _write(self, image_id: str, records: VersionedRecords) -> None:
        path = self._path(image_id)
        doc = {
            "format_version": ANNOTATIONS_FORMAT_VERSION,
            "image_id": image_id,
            "annotations": records.to_write(),
        }
        nofollow.makedirs(path.parent)
        atomic_write_bytes(path, orjson.dumps(doc), point="annotations")

    def stored_ids(self) -> frozenset[str]:
        """Ids of the images that have an annotation file, from one listing of the folder.

        An image missing here has no annotations (:meth:`list` answers ``[]``); one listed may
        still have none of its current version. Indexing many images asks only these.

        Returns:
            The ids (empty when the folder does not exist).

        Raises:
            UnsafePathError: The annotations folder (or one above it) is a symbolic link.

        Example:
            >>> import tempfile
            >>> from medstore.datastore import LocalDatastore
            >>> LocalDatastore(tempfile.mkdtemp()).annotations.stored_ids()
            frozenset()
        """
        try:
            names = nofollow.listdir(self._store.side_path("annotations"))
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()
        return frozenset(name[: -len(".json")] for name in names if name.endswith(".json"))

    # -- schema ---------------------------------------------------------------------------------

    @property
    def schema(self) -> ProjectSchema | None:
        """The project schema (``.medstore/schema.json``), or ``None``."""
        return load_schema(self._store)

    def set_schema(self, specs: Iterable[AnnotationSpec]) -> ProjectSchema:
        """Replace the project schema.

        Args:
            specs: The allowed annotations.

        Returns:
            The schema written.
        """
        return save_schema(self._store, specs)

    def missing_required(self, image_id: str) -> list[str]:
        """Required identifiers of the schema that the image has no (live) annotation for."""
        schema = self.schema
        return schema.missing_required(self.list(image_id)) if schema else []

    # -- checks ---------------------------------------------------------------------------------

    def _prepare(
        self, image_id: str, anns: Sequence[Annotation], *, allow_external: bool
    ) -> list[Annotation]:
        self._store.check_writable()
        validate_id(image_id)
        if not self._store.has_image(image_id):
            raise ImageNotFoundError(f"image {image_id!r} is not in the store")
        frames = frame_count(self._store.get_image_info(image_id))
        if frames is None and any(ann.frame_index is not None for ann in anns):
            frames = probed_frame_count(self._store, image_id)  # header only
        schema = None if allow_external else self.schema
        ready = []
        for ann in anns:
            if not isinstance(ann, Annotation):
                raise AnnotationError(f"expected an Annotation, got {type(ann).__name__}")
            fresh = type(ann).model_validate(ann.model_dump())
            if isinstance(ann, VolumeSegmentation) and isinstance(fresh, VolumeSegmentation):
                fresh.attach_array(ann.array)
            if fresh.frame_index is not None and frames is not None and fresh.frame_index >= frames:
                raise AnnotationError(
                    f"frame_index {fresh.frame_index} is outside image {image_id!r} "
                    f"({frames} frames)"
                )
            if schema is not None:
                schema.check(fresh)
            ready.append(fresh)
        return ready

    # -- public API -----------------------------------------------------------------------------

    def add(self, image_id: str, ann: Annotation, *, allow_external: bool = False) -> str:
        """Store one annotation (see :meth:`add_many`).

        Args:
            image_id: The image.
            ann: The annotation.
            allow_external: Accept it even if it breaks the project schema.

        Returns:
            Its id.
        """
        return self.add_many(image_id, [ann], allow_external=allow_external)[0]

    def add_many(
        self, image_id: str, anns: Iterable[Annotation], *, allow_external: bool = False
    ) -> list[str]:
        """Store several annotations of one image with a single file write.

        Adding an annotation whose id is already stored with the same content changes nothing
        (re-importing is idempotent). A :class:`VolumeSegmentation` that holds an array is also
        written as a label file (tag ``created_by`` or ``"final"``) with its ``label_info``.

        Args:
            image_id: The image.
            anns: The annotations.
            allow_external: Accept annotations that break the project schema.

        Returns:
            Their ids, in order.

        Raises:
            ImageNotFoundError: No such image.
            AnnotationError: Invalid, breaks the schema, frame outside the image, or an id
                already used by a different annotation; nothing is written then.
            ReadOnlyError: The store is read-only.
            StoreLockedError: The lock could not be taken.
        """
        ready = self._prepare(image_id, list(anns), allow_external=allow_external)
        stored = self._read(image_id)  # label files are written before the lock is taken
        for ann in ready:
            if (
                isinstance(ann, VolumeSegmentation)
                and ann.array is not None
                and ann.id not in stored
            ):
                ann.label_tag = save_segmentation_label(self._store, image_id, ann)
        with self._store.locked():
            records = self._read(image_id)
            if self._merge(image_id, records, ready):
                self._write(image_id, records)
        return [str(ann.id) for ann in ready]

    def add_bulk(
        self,
        items: Mapping[str, Iterable[Annotation]],
        *,
        allow_external: bool = False,
        workers: int = 8,
    ) -> dict[str, list[str]]:
        """Store annotations of many images under one lock, flushing files in parallel.

        Everything is validated before anything is written. Each image's file is replaced
        atomically; the call returns only when every file is durable. Per image it behaves
        like :meth:`add_many` (idempotent re-import, same errors).

        Args:
            items: ``{image_id: annotations}``.
            allow_external: Accept annotations that break the project schema.
            workers: Threads used to write and fsync the files.

        Returns:
            ``{image_id: ids}``.

        Example:
            >>> import tempfile, numpy as np, nibabel as nib
            >>> from medstore.datastore import LocalDatastore
            >>> from medstore.datastore.annotations import LabelAnnotation as Label
            >>> folder = tempfile.mkdtemp()
            >>> for name in ("case_1", "case_2"):
            ...     nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)),
            ...              f"{folder}/{name}.nii")
            >>> ids = LocalDatastore(folder).annotations.add_bulk(
            ...     {"case_1": [Label(identifier="motion")], "case_2": [Label(identifier="x")]})
            >>> sorted(ids), len(ids["case_1"])
            (['case_1', 'case_2'], 1)
        """
        prepared = {
            image_id: self._prepare(image_id, list(anns), allow_external=allow_external)
            for image_id, anns in items.items()
        }
        for ready in prepared.values():
            if any(isinstance(a, VolumeSegmentation) and a.array is not None for a in ready):
                raise AnnotationError("add_bulk does not save label maps; use add_many")
        with self._store.locked():
            writes = []
            for image_id, ready in prepared.items():
                records = self._read(image_id)
                if self._merge(image_id, records, ready):
                    writes.append((image_id, records))
            if writes:
                nofollow.makedirs(self._path(writes[0][0]).parent)
                with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                    list(pool.map(lambda item: self._write(*item), writes))
        return {image_id: [str(a.id) for a in ready] for image_id, ready in prepared.items()}

    def _merge(self, image_id: str, records: _Records, ready: list[Annotation]) -> bool:
        """Add ``ready`` to ``records``; True when something changed."""
        changed = False
        for ann in ready:
            assert ann.id is not None
            old = records.get(ann.id)
            if old is not None:
                if annotation_from_dict(old).content_hash() != ann.content_hash():
                    raise AnnotationError(
                        f"annotation id {ann.id!r} already exists on {image_id!r} with other "
                        "content; use update()"
                    )
                continue
            if ann.created_at is None:
                ann.created_at = utc_now()
            records[ann.id] = ann.to_dict()
            changed = True
        return changed

    def get(self, image_id: str, ann_id: str) -> Annotation:
        """One annotation by id (soft-deleted ones included).

        Raises:
            AnnotationError: No such annotation on that image.
        """
        record = self._read(image_id).get(ann_id)
        if record is None:
            raise AnnotationError(f"no annotation {ann_id!r} on image {image_id!r}")
        return annotation_from_dict(record)

    def list(
        self,
        image_id: str,
        *,
        type: str | None = None,
        scope: str | None = None,
        identifier: str | None = None,
        created_by: str | None = None,
        status: str | None = None,
        frame: int | None = None,
        include_deleted: bool = False,
        image_version: str | None = None,
    ) -> list[Annotation]:
        """The image's annotations matching every given filter, in insertion order.

        Only those made for the current image of the id (an earlier image with the same id,
        removed, keeps its own; ``image_version`` lists those of that version instead).

        Args:
            image_id: The image.
            type: Annotation type (canonical or synonym, e.g. ``"square"``).
            scope: ``"image"`` or ``"frame"``.
            identifier: Annotation name.
            created_by: Annotator or model.
            status: Workflow status.
            frame: Frame index.
            include_deleted: Include soft-deleted annotations.
            image_version: An image version (``medstore.image_version`` of an earlier image).

        Returns:
            The annotations (empty when the image has none).
        """
        wanted = {
            "annotation_type": annotation_class(type).TYPE if type is not None else None,
            "scope": scope,
            "identifier": identifier,
            "created_by": created_by,
            "status": status,
            "frame_index": frame,
        }
        filters = {key: value for key, value in wanted.items() if value is not None}
        result = []
        for record in self._read(image_id, image_version).values():
            if not include_deleted and record.get("deleted"):
                continue
            if any(record.get(key) != value for key, value in filters.items()):
                continue
            result.append(annotation_from_dict(record))
        return result

    def update(self, image_id: str, ann: Annotation, *, allow_external: bool = False) -> str:
        """Replace a stored annotation (same id) with ``ann``.

        Raises:
            AnnotationError: No annotation with that id, or ``ann`` is invalid.
        """
        (fresh,) = self._prepare(image_id, [ann], allow_external=allow_external)
        assert fresh.id is not None
        with self._store.locked():
            records = self._read(image_id)
            if fresh.id not in records:
                raise AnnotationError(f"no annotation {fresh.id!r} on image {image_id!r}")
            fresh.updated_at = utc_now()
            records[fresh.id] = fresh.to_dict()
            self._write(image_id, records)
        return fresh.id

    def delete(
        self, image_id: str, ann_id: str, *, hard: bool = False, deleted_by: str | None = None
    ) -> None:
        """Soft-delete (mark ``deleted``, ``deleted_at``, ``deleted_by``) or remove an annotation.

        Raises:
            AnnotationError: No such annotation.
            ReadOnlyError: The store is read-only.
        """
        self._store.check_writable()
        with self._store.locked():
            records = self._read(image_id)
            record = records.get(ann_id)
            if record is None:
                raise AnnotationError(f"no annotation {ann_id!r} on image {image_id!r}")
            if hard:
                del records[ann_id]
            elif record.get("deleted"):
                return
            else:
                ann = annotation_from_dict(record)
                ann.deleted, ann.deleted_at, ann.deleted_by = True, utc_now(), deleted_by
                records[ann_id] = ann.to_dict()
            self._write(image_id, records)
