"""Datamint annotation dicts (datamint 2.45) to and from entities.

Two forms are read and written: the entity form (``annotation.model_dump()``, with
``annotation_type``, ``geometry.coordinate_system``, ``text_value``/``numeric_value``) and the
create form (the upload DTO, with ``type`` and ``value``, whose geometry carries no coordinate
system: Datamint reads it as patient coordinates, its default).

Coordinates are converted at this boundary. Datamint's patient coordinates are DICOM LPS
millimetres (x and y negated to give medstore's RAS+). Datamint's pixel coordinates
``(x, y, frame)`` index the image *file's* own voxel grid (see
:mod:`~medstore.datastore.interop.datamint_coords`), so reading or writing them needs the
image's :class:`~medstore.datastore.annotations.grid.ImageGrid`; inside medstore they become
pixels of the canonical array. Fields medstore has no place for are kept in the annotation's
``origin.extra`` and written back unchanged.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.annotations.grid import ImageGrid
    >>> affine = np.diag([0.8, 0.8, 2.5, 1.0]); affine[:3, 3] = (-100, -120, -50)
    >>> grid = ImageGrid(native_affine=affine, native_shape=(64, 64, 32), format="nifti1")
    >>> box = from_datamint({"annotation_type": "square", "identifier": "nodule",
    ...     "scope": "frame", "frame_index": 3, "geometry": {"coordinate_system": "pixel",
    ...     "points": [[10, 20, 3], [50, 20, 3], [10, 60, 3], [50, 60, 3]]}}, image=grid)
    >>> box.patient_points(grid.canonical_affine)[0].tolist()     # RAS+ mm, as nibabel says
    [-92.0, -104.0, -42.5]
    >>> to_datamint(box, image=grid)["geometry"]["points"][0]
    [10, 20, 3]
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from ..annotations.base import Annotation, Origin
from ..annotations.classification import (
    CategoryAnnotation,
    LabelAnnotation,
    NumericAnnotation,
    TextAnnotation,
)
from ..annotations.grid import ImageGrid
from ..annotations.measurements import AngleAnnotation, AreaAnnotation, DistanceAnnotation
from ..annotations.registry import annotation_class
from ..annotations.shapes import (
    BoxAnnotation,
    LineAnnotation,
    PointAnnotation,
    PointsAnnotation,
    PolylineAnnotation,
)
from ..errors import AnnotationError
from .datamint_coords import datamint_to_native, native_to_datamint, slice_axis
from .datamint_geometry import Geometry

__all__ = ["from_datamint", "to_datamint"]

_TYPES: Mapping[str, type[Annotation]] = MappingProxyType(
    {"square": BoxAnnotation, "line": LineAnnotation, "point": PointAnnotation,
     "region": PolylineAnnotation, "category": CategoryAnnotation,
     "float": NumericAnnotation, "integer": NumericAnnotation, "label": LabelAnnotation,
     "text": TextAnnotation, "distance": DistanceAnnotation, "angle": AngleAnnotation,
     "area": AreaAnnotation})  # fmt: skip
_NAMES: Mapping[type[Annotation], str] = MappingProxyType(
    {c: n for n, c in _TYPES.items() if n != "integer"}
)
#: Datamint field -> medstore field, for the fields both have under these names.
_PLAIN = MappingProxyType({
    "id": "id", "created_by": "created_by", "status": "status",
    "annotation_worklist_id": "worklist_id", "model_id": "model_id", "is_model": "is_model",
    "set_name": "set_name", "deleted_by": "deleted_by",
})  # fmt: skip
_TIMES = ("created_at", "deleted_at")
#: Keys read into medstore fields (everything else is kept in ``origin.extra``).
_READ = frozenset({
    *_PLAIN, *_TIMES, "identifier", "name", "scope", "frame_index", "index", "annotation_type",
    "type", "confiability", "deleted", "added_by", "geometry", "value", "text_value",
    "numeric_value", "units",
})  # fmt: skip
_FLIP = np.array([-1.0, -1.0, 1.0])  # LPS <-> RAS
_KEPT = "__medstore_geometry"


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


# ---------------------------------------------------------------------------------- frames


def _frame_in(frame: int, grid: ImageGrid | None) -> int:
    """Datamint's frame number -> medstore's (canonical slice) frame number."""
    if grid is None:
        return frame  # NIfTI frames already count slices inferior->superior, as medstore does
    axis, backwards = slice_axis(grid)
    size = grid.native_shape[axis]
    if not 0 <= frame < size:
        raise AnnotationError(f"frame_index {frame} is outside the image ({size} frames)")
    native = size - 1 - frame if backwards else frame
    dst, flip = grid.transform.ornt[axis]
    if dst != 0:
        raise AnnotationError(
            f"frame_index: the image's frames are not axial slices (axis codes "
            f"{grid.axis_codes()}); give the annotation in patient coordinates"
        )
    return native if flip == 1 else size - 1 - native


def _frame_out(frame: int, grid: ImageGrid | None) -> int:
    """medstore's frame number -> Datamint's (inverse of :func:`_frame_in`)."""
    if grid is None:
        return frame
    for candidate in range(grid.native_shape[slice_axis(grid)[0]]):
        if _frame_in(candidate, grid) == frame:
            return candidate
    raise AnnotationError(f"frame_index {frame} is outside the image")


# ---------------------------------------------------------------------------------- reading


def _vector(values: Any, what: str) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    if array.shape != (3,):
        raise AnnotationError(f"geometry.{what} must hold 3 numbers")
    return array


def _geometry_fields(geo: Mapping[str, Any], grid: ImageGrid | None) -> dict[str, Any]:
    system = geo.get("coordinate_system", "patient")
    if system not in ("pixel", "patient"):
        raise AnnotationError(
            f"geometry.coordinate_system must be pixel or patient, not {system!r}"
        )
    raw = geo.get("points")
    if not isinstance(raw, list | tuple) or not raw:
        raise AnnotationError("geometry.points must be a non-empty list of points")
    try:
        points = np.array([[*p, 0] if len(p) == 2 else list(p) for p in raw], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise AnnotationError(f"geometry.points: {err}") from err
    if points.ndim != 2 or points.shape[1] != 3:
        raise AnnotationError("geometry.points: every point needs 2 or 3 coordinates")
    fields: dict[str, Any] = {"coordinate_system": system}
    if system == "patient":
        fields["points"] = [tuple(p) for p in (points * _FLIP).tolist()]
    else:
        if grid is None:
            raise AnnotationError(
                "geometry.coordinate_system 'pixel': Datamint pixels index the image file's own "
                "voxel grid; pass image=ImageGrid.of_image(store, image_id)"
            )
        canonical = grid.native_to_pixel(datamint_to_native(points, grid))
        fields["points"] = [tuple(p) for p in canonical.tolist()]
    for ours, theirs in (("view_plane_normal", "viewPlaneNormal"), ("view_up", "viewUp")):
        if geo.get(theirs) is not None:
            vector = _vector(geo[theirs], theirs)
            fields[ours] = tuple((vector * _FLIP if system == "patient" else vector).tolist())
    if "closed" in geo:
        fields["closed"] = bool(geo["closed"])
    return fields


def _parse_time(raw: Any, key: str) -> datetime:
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError as err:
        raise AnnotationError(f"{key}: not an ISO timestamp: {raw!r}") from err


def from_datamint(d: Mapping[str, Any], *, image: ImageGrid | None = None) -> Annotation:
    """Build an annotation from one Datamint dict (entity form or create form).

    Args:
        d: The dict; a ``{"model_dump_json": {...}}`` wrapper is unwrapped.
        image: The grid of the image the annotation belongs to; needed for pixel coordinates
            (and to renumber frames of DICOM series not stored inferior to superior).

    Returns:
        The annotation: patient points in RAS+, pixel points on the canonical array.

    Raises:
        AnnotationError: Unknown type or invalid fields (the message names the field).
    """
    if not isinstance(d, Mapping):
        raise AnnotationError("a Datamint annotation must be a JSON object")
    if isinstance(d.get("model_dump_json"), Mapping):
        d = d["model_dump_json"]
    if isinstance(d.get("geometry"), Geometry):  # a typed Datamint geometry object
        geometry = d["geometry"]
        d = {
            **d,
            "geometry": {**geometry.to_dict(), "coordinate_system": geometry.coordinate_system},
        }
    kind = d.get("annotation_type", d.get("type"))
    cls = _TYPES.get(str(kind)) or annotation_class(str(kind))
    fields: dict[str, Any] = {
        ours: d[theirs] for theirs, ours in _PLAIN.items() if d.get(theirs) is not None
    }
    for key in ("scope", "confiability", "deleted", "units"):
        if d.get(key) is not None:
            fields[key] = d[key]
    fields["identifier"] = d.get("identifier", d.get("name"))
    if d.get("added_by") is not None:
        fields.setdefault("created_by", d["added_by"])
    for key in _TIMES:
        if d.get(key) is not None:
            fields[key] = _parse_time(d[key], key)
    frame = d.get("frame_index", d.get("index"))
    if frame is not None:
        if not isinstance(frame, int) or isinstance(frame, bool):
            raise AnnotationError(f"frame_index must be an integer, got {frame!r}")
        fields["frame_index"] = _frame_in(frame, image)
    kept_geometry: dict[str, Any] | None = None
    if isinstance(d.get("geometry"), Mapping) and issubclass(cls, PointsAnnotation):
        fields.update(_geometry_fields(d["geometry"], image))
        kept_geometry = {"given": dict(d["geometry"]), "points": fields["points"]}
    value = d.get("value", d.get("text_value", d.get("numeric_value")))
    extra = {key: d[key] for key in d if key not in _READ}
    if cls in (CategoryAnnotation, NumericAnnotation, TextAnnotation):
        fields["value"] = value
    elif isinstance(value, str):  # e.g. a geometry's JSON payload: kept, read as .value
        extra["text_value"] = value
    extra.update({key: d[key] for key in _TIMES if d.get(key) is not None})
    if kind == "integer":
        extra["annotation_type"] = "integer"
    if kept_geometry is not None:  # written back as given while the points are unchanged
        extra[_KEPT] = kept_geometry
    form = "entity" if "annotation_type" in d else "create"
    fields["origin"] = Origin(
        format="datamint", external_id=d.get("id"), keys=[form], extra=extra or None
    )
    return cls(**fields)


# ---------------------------------------------------------------------------------- writing


def _points_out(ann: PointsAnnotation, form: str, grid: ImageGrid | None) -> tuple[str, list]:
    array = ann.points_array()
    if array.shape[1] == 2:
        array = np.column_stack([array, np.full(len(array), float(ann.frame_index or 0))])
    if ann.coordinate_system == "patient":
        return "patient", [[float(v) for v in p] for p in (array * _FLIP).tolist()]
    if grid is None:
        raise AnnotationError(
            f"{ann.identifier!r} is in pixel coordinates; writing Datamint pixels needs the "
            "image: pass image=ImageGrid.of_image(store, image_id)"
        )
    native = grid.pixel_to_native(array)
    if form == "create":  # Datamint uploads patient coordinates (LPS)
        world = grid.native_to_patient(native) * _FLIP
        return "patient", [[float(v) for v in p] for p in world.tolist()]
    pixels = native_to_datamint(native, grid)
    return "pixel", [[_num(v) for v in p] for p in pixels.tolist()]


def _geometry(
    ann: PointsAnnotation, form: str, grid: ImageGrid | None, kept: Mapping[str, Any] | None
) -> dict[str, Any]:
    system, points = _points_out(ann, form, grid)
    if kept is not None and [list(p) for p in kept["points"]] == [list(p) for p in ann.points]:
        given = kept["given"]
        if given.get("coordinate_system", "patient") == system:
            points = [list(p) for p in given["points"]]  # the numbers exactly as given
    geo: dict[str, Any] = {}
    for ours, theirs in (("view_plane_normal", "viewPlaneNormal"), ("view_up", "viewUp")):
        vector = getattr(ann, ours)
        if vector is not None:
            flipped = ann.coordinate_system == "patient"
            geo[theirs] = (np.array(vector) * (_FLIP if flipped else 1.0)).tolist()
    if form == "entity":
        geo["coordinate_system"] = system
    geo["points"] = points
    if isinstance(ann, PolylineAnnotation):
        geo["closed"] = ann.closed
    return geo


def _time(ann: Annotation, key: str, extra: Mapping[str, Any]) -> str | None:
    value = getattr(ann, key)
    if value is None:
        return None
    raw = extra.get(key)
    if raw is not None and _parse_time(raw, key) == value:
        return str(raw)  # the text it was read from ("...Z" stays "...Z")
    return str(value.isoformat())


def _kind(ann: Annotation, extra: Mapping[str, Any]) -> str:
    kind = _NAMES.get(type(ann))
    if kind is None:
        raise AnnotationError(f"{type(ann).__name__} has no Datamint equivalent")
    if isinstance(ann, NumericAnnotation):
        is_int = isinstance(ann.value, int) and not isinstance(ann.value, bool)
        kind = "integer" if is_int or extra.get("annotation_type") == "integer" else "float"
    return kind


def to_datamint(
    ann: Annotation,
    *,
    form: Literal["entity", "create"] | None = None,
    image: ImageGrid | None = None,
) -> dict[str, Any]:
    """The Datamint dict for an annotation.

    Args:
        ann: Box, line, point, polyline (region), category, numeric, label or text annotation.
        form: ``"entity"`` (``model_dump`` of Datamint's entity) or ``"create"`` (upload DTO);
            default: the form it was imported from, else ``"entity"``.
        image: The image's grid; needed for annotations in pixel coordinates.

    Returns:
        The dict; ``None`` fields are left out, as Datamint does. Fields kept from the dict it
        was imported from are written back.

    Raises:
        AnnotationError: No Datamint equivalent, or pixel coordinates without ``image``.
    """
    origin = ann.origin if ann.origin is not None and ann.origin.format == "datamint" else None
    extra = dict(origin.extra or {}) if origin is not None else {}
    kind = _kind(ann, extra)
    if form is None:
        form = "create" if origin is not None and origin.keys == ["create"] else "entity"
    value: Any = getattr(ann, "value", None)
    type_key = "type" if form == "create" else "annotation_type"
    out: dict[str, Any] = {type_key: kind, "identifier": ann.identifier, "scope": ann.scope}
    if ann.frame_index is not None:
        out["frame_index"] = _frame_out(ann.frame_index, image)
    if isinstance(ann, PointsAnnotation):
        out["geometry"] = _geometry(ann, form, image, extra.get(_KEPT))
    if isinstance(ann, NumericAnnotation) and ann.units is not None:
        out["units"] = ann.units
    if form == "create":
        if value is not None:
            out["value"] = value
        if ann.worklist_id is not None:
            out["annotation_worklist_id"] = ann.worklist_id
        for key in ("model_id", "is_model"):
            if getattr(ann, key) is not None:
                out[key] = getattr(ann, key)
    else:
        out["confiability"] = ann.confiability
        if isinstance(ann, CategoryAnnotation | TextAnnotation):
            out["text_value"] = value
        elif isinstance(ann, NumericAnnotation):
            out["numeric_value"] = value
        out["deleted"] = ann.deleted
        for theirs, ours in _PLAIN.items():
            item = getattr(ann, ours)
            if item is not None and not (theirs == "id" and origin and not origin.external_id):
                out[theirs] = item
        for key in _TIMES:
            text = _time(ann, key, extra)
            if text is not None:
                out[key] = text
    for key, item in extra.items():
        if key not in out and key not in _TIMES and key not in ("annotation_type", _KEPT):
            if key == "text_value" and form == "create":
                continue  # written as the create form's "value"
            out[key] = item
    return out
