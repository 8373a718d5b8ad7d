"""Datamint annotation dicts (datamint 2.45) to and from entities.

Two forms are read and written: the entity form (``annotation.model_dump()``, with
``annotation_type``, ``coordinate_system``, ``text_value``/``numeric_value``) and the create
form (the upload DTO, with ``type`` and ``value``). Datamint's patient coordinates are DICOM
LPS millimetres; inside medstore they are RAS+ (x and y negated at this boundary).

Examples:
    >>> ann = from_datamint({"type": "line", "identifier": "diameter", "scope": "frame",
    ...     "frame_index": 2, "geometry": {"points": [[0, 0, 2], [10, 30, 2]]}})
    >>> type(ann).__name__, ann.frame_index
    ('LineAnnotation', 2)
    >>> to_datamint(ann, form="create")["geometry"]
    {'points': [[0, 0, 2], [10, 30, 2]]}
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from ..annotations.base import Annotation, Origin
from ..annotations.classification import (
    CategoryAnnotation,
    LabelAnnotation,
    NumericAnnotation,
    TextAnnotation,
)
from ..annotations.registry import annotation_class
from ..annotations.shapes import (
    BoxAnnotation,
    LineAnnotation,
    PointAnnotation,
    PointsAnnotation,
    PolylineAnnotation,
)
from ..errors import AnnotationError

__all__ = ["from_datamint", "to_datamint"]

_TYPES: Mapping[str, type[Annotation]] = MappingProxyType(
    {"square": BoxAnnotation, "line": LineAnnotation, "point": PointAnnotation,
     "region": PolylineAnnotation, "category": CategoryAnnotation,
     "float": NumericAnnotation, "label": LabelAnnotation, "text": TextAnnotation})  # fmt: skip
_NAMES: Mapping[type[Annotation], str] = MappingProxyType({c: n for n, c in _TYPES.items()})
_LIFECYCLE = ("id", "created_by", "created_at", "status", "worklist_id", "model_id", "is_model",
              "set_name", "deleted_at", "deleted_by")  # fmt: skip
_FLIP = (-1.0, -1.0, 1.0)  # LPS <-> RAS


def _flip(vector: Any) -> tuple[float, ...]:
    return tuple(float(v) * s for v, s in zip(vector, _FLIP, strict=True))


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _geometry_fields(geo: Mapping[str, Any]) -> dict[str, Any]:
    patient_hint = "viewPlaneNormal" in geo or "viewUp" in geo
    system = geo.get("coordinate_system", "patient" if patient_hint else "pixel")
    points = [tuple(p) for p in geo.get("points", [])]
    fields: dict[str, Any] = {"coordinate_system": system, "points": points}
    if system == "patient":
        fields["points"] = [_flip(p) for p in points]
    for ours, theirs in (("view_plane_normal", "viewPlaneNormal"), ("view_up", "viewUp")):
        if geo.get(theirs) is not None:
            fields[ours] = _flip(geo[theirs]) if system == "patient" else tuple(geo[theirs])
    if "closed" in geo:
        fields["closed"] = bool(geo["closed"])
    return fields


def from_datamint(d: Mapping[str, Any]) -> Annotation:
    """Build an annotation from one Datamint dict (entity form or create form).

    Args:
        d: The dict; a ``{"model_dump_json": {...}}`` wrapper is unwrapped.

    Returns:
        The annotation, patient points converted to RAS+.

    Raises:
        AnnotationError: Unknown type or invalid fields.
    """
    if not isinstance(d, Mapping):
        raise AnnotationError("a Datamint annotation must be a JSON object")
    if isinstance(d.get("model_dump_json"), Mapping):
        d = d["model_dump_json"]
    kind = d.get("annotation_type", d.get("type"))
    cls = _TYPES.get(str(kind))
    if cls is None:
        cls = annotation_class(str(kind))  # raises AnnotationError for unknown types
    fields: dict[str, Any] = {
        key: d[key]
        for key in ("identifier", "scope", "frame_index", "confiability", "deleted", *_LIFECYCLE)
        if d.get(key) is not None
    }
    if d.get("added_by") is not None:
        fields.setdefault("created_by", d["added_by"])
    if isinstance(d.get("geometry"), Mapping) and issubclass(cls, PointsAnnotation):
        fields.update(_geometry_fields(d["geometry"]))
    value = d.get("value", d.get("text_value", d.get("numeric_value")))
    if cls in (CategoryAnnotation, NumericAnnotation, TextAnnotation):
        fields["value"] = value
    if d.get("units") is not None:
        fields["units"] = d["units"]
    form = "entity" if "annotation_type" in d else "create"
    fields["origin"] = Origin(format="datamint", external_id=d.get("id"), keys=[form])
    return cls(**fields)


def _points(ann: PointsAnnotation) -> list[list[float | int]]:
    if ann.coordinate_system == "patient":
        return [list(_flip(p)) for p in ann.points]
    return [[_num(v) for v in p] for p in ann.points]


def _geometry(ann: PointsAnnotation, form: str) -> dict[str, Any]:
    patient = ann.coordinate_system == "patient"
    geo: dict[str, Any] = {}
    for ours, theirs in (("view_plane_normal", "viewPlaneNormal"), ("view_up", "viewUp")):
        vector = getattr(ann, ours)
        if vector is not None:
            geo[theirs] = list(_flip(vector)) if patient else list(vector)
    if form == "entity":
        geo["coordinate_system"] = ann.coordinate_system
    geo["points"] = _points(ann)
    if isinstance(ann, PolylineAnnotation):
        geo["closed"] = ann.closed
    return geo


def to_datamint(
    ann: Annotation, *, form: Literal["entity", "create"] | None = None
) -> dict[str, Any]:
    """The Datamint dict for an annotation.

    Args:
        ann: Box, line, point, polyline (region), category, numeric, label or text annotation.
        form: ``"entity"`` (``model_dump`` of Datamint's entity) or ``"create"`` (upload DTO);
            default: the form it was imported from, else ``"entity"``.

    Returns:
        The dict; ``None`` fields are left out, as Datamint does.

    Raises:
        AnnotationError: The annotation has no Datamint equivalent.
    """
    kind = _NAMES.get(type(ann))
    if kind is None:
        raise AnnotationError(f"{type(ann).__name__} has no Datamint equivalent")
    if form is None:
        origin = ann.origin
        imported = origin is not None and origin.format == "datamint" and origin.keys
        form = "create" if imported and origin and origin.keys == ["create"] else "entity"
    value: Any = getattr(ann, "value", None)
    if form == "create":
        out: dict[str, Any] = {"type": kind, "identifier": ann.identifier, "scope": ann.scope}
        if ann.frame_index is not None:
            out["frame_index"] = ann.frame_index
        if isinstance(ann, PointsAnnotation):
            out["geometry"] = _geometry(ann, form)
        if value is not None:
            out["value"] = value
    else:
        out = {"identifier": ann.identifier, "scope": ann.scope, "annotation_type": kind,
               "confiability": ann.confiability}  # fmt: skip
        if ann.frame_index is not None:
            out["frame_index"] = ann.frame_index
        if isinstance(ann, PointsAnnotation):
            out["geometry"] = _geometry(ann, form)
        if isinstance(ann, CategoryAnnotation | TextAnnotation):
            out["text_value"] = value
        elif isinstance(ann, NumericAnnotation):
            out["numeric_value"] = value
        out["deleted"] = ann.deleted
        imported_without_id = (
            ann.origin is not None
            and ann.origin.format == "datamint"
            and not ann.origin.external_id
        )
        for key in _LIFECYCLE:
            if key == "id" and imported_without_id:
                continue
            item = getattr(ann, key)
            if item is not None:
                out[key] = item.isoformat() if hasattr(item, "isoformat") else item
    if isinstance(ann, NumericAnnotation) and ann.units is not None:
        out["units"] = ann.units
    return out
