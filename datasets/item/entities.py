"""Adapter from the store's entity annotations to the small records the datasets use."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EntityRecord", "entity_records", "schema_names"]

_LOG = logging.getLogger(__name__)

EntityKind = Literal["label", "category", "segmentation", "other"]


@dataclass(frozen=True)
class EntityRecord:
    """One entity annotation as the datasets see it.

    Attributes:
        kind: ``"label"`` (present/absent), ``"category"`` (one value of a named category) or
            ``"other"`` (geometry etc.; counts as an annotation, yields no tensor).
        name: The annotation's identifier.
        annotator: Who made it (``created_by``; ``"unknown"`` when missing).
        frame_index: The frame (canonical D index) for frame-scoped annotations, else ``None``.
        value: The category value for ``kind == "category"``.
        status: The annotation's ``status`` (``None`` when not set).
        worklist_id: The annotation's ``worklist_id``.
        annotation: The annotation entity itself (``resource_annotations``, masks, geometry).
    """

    kind: EntityKind
    name: str
    annotator: str
    frame_index: int | None = None
    value: str | None = None
    status: str | None = None
    worklist_id: str | None = None
    annotation: Any = field(default=None, compare=False, repr=False)


def _kind(ann: Any) -> EntityKind:
    """Classify an annotation by class name or ``annotation_type``."""
    cls = type(ann).__name__.lower()
    atype = str(getattr(ann, "annotation_type", "") or "").lower()
    if cls in ("labelannotation",) or atype == "label":
        return "label"
    if cls == "imagesegmentation":
        return "segmentation"
    if cls in ("categoryannotation", "multicategoryannotation") or atype in (
        "category",
        "multicategory",
        "multi_category",
    ):
        return "category"
    return "other"


def _values(ann: Any) -> list[str]:
    value = getattr(ann, "value", None)
    if value is None:
        value = getattr(ann, "values", None)
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(str(v) for v in value)
    return [] if value is None else [str(value)]


def _convert(ann: Any) -> list[EntityRecord]:
    if getattr(ann, "deleted", False):
        return []
    name = str(getattr(ann, "identifier", None) or getattr(ann, "name", None) or "")
    annotator = str(getattr(ann, "created_by", None) or "unknown")
    scope = str(getattr(ann, "scope", "image") or "image")
    frame = getattr(ann, "frame_index", None)
    frame_index = int(frame) if scope == "frame" and frame is not None else None
    kind = _kind(ann)
    status = getattr(ann, "status", None)
    worklist = getattr(ann, "worklist_id", None)
    common = {
        "status": None if status is None else str(status).lower(),
        "worklist_id": None if worklist is None else str(worklist),
        "annotation": ann,
    }
    if kind == "category":
        return [
            EntityRecord("category", name, annotator, frame_index, value, **common)
            for value in _values(ann)
        ]
    return [EntityRecord(kind, name, annotator, frame_index, **common)]


def _annotation_api(store: Any) -> Any:
    """The store's own annotation API (``store.annotations``), or ``None`` if it has none."""
    api = getattr(store, "annotations", None)
    return api if api is not None and hasattr(api, "list") else None


def entity_records(store: Any, image_id: str) -> tuple[EntityRecord, ...]:
    """The live (not soft-deleted) entity annotations of one image, as records.

    Args:
        store: A store with an ``annotations`` attribute offering ``list(image_id)``; a store
            without one yields no records.
        image_id: The image.

    Returns:
        The records, in the store's order.

    Example:
        >>> entity_records(object(), "case_1")
        ()
    """
    api = _annotation_api(store)
    if api is None:
        return ()
    try:
        annotations = api.list(image_id)
    except (LookupError, FileNotFoundError):
        return ()
    records: list[EntityRecord] = []
    for ann in annotations:
        records.extend(_convert(ann))
    return tuple(records)


def schema_names(store: Any) -> frozenset[str] | None:
    """Identifiers allowed by the store's annotation schema, or ``None`` without a schema.

    Args:
        store: The store; its annotation schema (``.medstore/schema.json``) is consulted.

    Returns:
        The allowed identifiers, or ``None`` when the store has no (or an empty) schema.

    Example:
        >>> schema_names(object()) is None
        True
    """
    api = _annotation_api(store)
    schema = getattr(api, "schema", None) if api is not None else None
    if callable(schema):
        try:
            schema = schema()
        except (LookupError, OSError, ValueError) as err:
            _LOG.debug("no annotation schema: %s", err)
            return None
    if schema is None:
        return None
    specs = getattr(schema, "annotations", None)
    if specs is None:
        specs = getattr(schema, "specs", None)
    if not specs:
        return None  # an empty schema allows everything
    return frozenset(str(getattr(s, "identifier", s)) for s in specs)
