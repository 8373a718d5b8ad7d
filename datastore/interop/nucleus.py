"""Scale Nucleus annotation payloads (as scale-nucleus 0.22 writes them) to and from entities.

Supported payload types: box, line, polygon, keypoints, cuboid, category (image and scene),
multicategory and segmentation mask. ``to_nucleus(from_nucleus(p)) == p`` for payloads the
library writes: the keys a payload carried are remembered in the annotation's ``origin``.

Examples:
    >>> ann = from_nucleus({"label": "nodule", "type": "box", "reference_id": "img_1",
    ...     "geometry": {"x": 10, "y": 20, "width": 30, "height": 40}})
    >>> type(ann).__name__, ann.extent()
    ('BoxAnnotation', (30.0, 40.0))
    >>> to_nucleus(ann)["geometry"]
    {'x': 10, 'y': 20, 'width': 30, 'height': 40}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..annotations.base import Annotation, Origin
from ..annotations.classification import CategoryAnnotation, MultiCategoryAnnotation
from ..annotations.segmentation import Segment, VolumeSegmentation
from ..annotations.shapes import (
    BoxAnnotation,
    CuboidAnnotation,
    Keypoint,
    KeypointsAnnotation,
    LineAnnotation,
    PolygonAnnotation,
    PolylineAnnotation,
)
from ..errors import AnnotationError

__all__ = ["NUCLEUS_KEYS", "from_nucleus", "to_nucleus"]

_COMMON = ("reference_id", "annotation_id", "metadata")
_CUBOID_OPTIONAL = ("annotation_id", "metadata", "track_reference_id", "task_id")
_TRACKED = ("track_reference_id", "task_id")
#: The keys scale-nucleus writes for each payload type (used when exporting native annotations).
NUCLEUS_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "box": ("label", "type", "geometry", *_COMMON, "embedding_vector", *_TRACKED),
    "line": ("label", "type", "geometry", *_COMMON, *_TRACKED),
    "polygon": ("label", "type", "geometry", *_COMMON, "embedding_vector", *_TRACKED),
    "keypoints": ("label", "type", "geometry", *_COMMON, *_TRACKED),
    "cuboid": ("label", "type", "geometry", "reference_id"),
    "category": ("label", "type", "geometry", "reference_id", "metadata", *_TRACKED,
                 "taxonomy_name"),
    "multicategory": ("labels", "type", "geometry", "reference_id", "metadata", *_TRACKED,
                      "taxonomy_name"),
    "mask": ("type", "mask_url", "annotations", "annotation_id", "reference_id"),
})  # fmt: skip


def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _xy(vertices: Any) -> list[tuple[float, ...]]:
    if not isinstance(vertices, list):
        raise AnnotationError("Nucleus 'vertices' must be a list")
    return [(v["x"], v["y"]) for v in vertices]


def _common(payload: Mapping[str, Any]) -> dict[str, Any]:
    extra = {"geometry": payload["geometry"]} if isinstance(payload.get("geometry"), dict) else None
    return {
        "id": payload.get("annotation_id"),
        "reference_id": payload.get("reference_id"),
        "metadata": payload.get("metadata") or {},
        "embedding_vector": payload.get("embedding_vector"),
        "track_reference_id": payload.get("track_reference_id"),
        "task_id": payload.get("task_id"),
        "origin": Origin(
            format="nucleus",
            external_id=payload.get("annotation_id"),
            keys=list(payload),
            extra=extra,
        ),
    }


def _build(payload: Mapping[str, Any], kind: str) -> Annotation:
    geo = payload.get("geometry") or {}
    fields = _common(payload)
    label: Any = payload.get("label")
    if kind == "box":
        x, y, w, h = geo["x"], geo["y"], geo["width"], geo["height"]
        return BoxAnnotation.from_points([(x, y), (x + w, y + h)], identifier=label, **fields)
    if kind == "line":
        points = _xy(geo["vertices"])
        if len(points) == 2:
            return LineAnnotation(identifier=label, points=points, **fields)
        return PolylineAnnotation(identifier=label, points=points, closed=False, **fields)
    if kind == "polygon":
        return PolygonAnnotation(identifier=label, points=_xy(geo["vertices"]), **fields)
    if kind == "keypoints":
        return KeypointsAnnotation(
            identifier=label,
            keypoints=[Keypoint(**k) for k in geo["keypoints"]],
            names=geo["names"],
            skeleton=geo.get("skeleton", []),
            **fields,
        )
    if kind == "cuboid":
        pos, dims = geo["position"], geo["dimensions"]
        return CuboidAnnotation(
            identifier=label,
            position=(pos["x"], pos["y"], pos["z"]),
            dimensions=(dims["x"], dims["y"], dims["z"]),
            yaw=geo.get("yaw", 0.0),
            **fields,
        )
    taxonomy = payload.get("taxonomy_name")
    if kind == "category":
        return CategoryAnnotation(
            identifier=taxonomy or label, value=label, taxonomy_name=taxonomy, **fields
        )
    if kind == "multicategory":
        return MultiCategoryAnnotation(
            identifier=taxonomy or "multicategory",
            values=payload["labels"],
            taxonomy_name=taxonomy,
            **fields,
        )
    segments = [
        Segment(name=s["label"], idx=s["index"], metadata=s.get("metadata"))
        for s in payload["annotations"]
    ]
    return VolumeSegmentation(segments=segments, mask_url=payload.get("mask_url"), **fields)


def from_nucleus(payload: Mapping[str, Any], *, frame_index: int | None = None) -> Annotation:
    """Build an annotation from one Nucleus payload dict.

    Nucleus pixels are 2-D image pixels: ``x`` the column, ``y`` the row of the picture. On a
    volume they are the pixels of one frame as medstore shows it (an axial slice of the
    canonical array), named by ``frame_index``.

    Args:
        payload: A dict as ``Annotation.to_payload()`` of scale-nucleus writes it.
        frame_index: The frame of a volume the payload annotates (``None``: a 2-D image).

    Returns:
        The annotation (``id`` = ``annotation_id``, else a content hash).

    Raises:
        AnnotationError: Unknown type, missing or invalid fields.
    """
    if not isinstance(payload, Mapping):
        raise AnnotationError("a Nucleus payload must be a JSON object")
    kind = payload.get("type")
    if kind not in NUCLEUS_KEYS:
        raise AnnotationError(f"unknown Nucleus annotation type {kind!r}")
    try:
        ann = _build(payload, str(kind))
    except (KeyError, TypeError) as err:
        raise AnnotationError(f"Nucleus {kind} payload is missing or has a bad {err}") from err
    if ann.origin is not None and ann.origin.extra:
        # Remember the geometry as given *and* as medstore would write it: while the
        # annotation's geometry is unchanged, the given one is written back (exact numbers).
        extra = {**ann.origin.extra, "derived": _geometry(ann)[1]}
        ann.origin = ann.origin.model_copy(update={"extra": extra})
    if frame_index is None:
        return ann
    if not isinstance(frame_index, int) or frame_index < 0:
        raise AnnotationError(f"frame_index must be a non-negative integer, got {frame_index!r}")
    return type(ann).model_validate(
        {**ann.model_dump(), "scope": "frame", "frame_index": frame_index}
    )


def _geometry(ann: Annotation) -> tuple[str, dict[str, Any]]:
    if isinstance(ann, BoxAnnotation):
        (x0, y0, *_), (x1, y1, *_) = ann.bounds()
        geometry = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
        return "box", {k: _num(v) for k, v in geometry.items()}
    if isinstance(ann, LineAnnotation | PolylineAnnotation | PolygonAnnotation):
        if isinstance(ann, PolylineAnnotation) and ann.closed:
            raise AnnotationError("a closed polyline has no Nucleus equivalent; use a polygon")
        kind = "polygon" if isinstance(ann, PolygonAnnotation) else "line"
        return kind, {"vertices": [{"x": _num(p[0]), "y": _num(p[1])} for p in ann.points]}
    if isinstance(ann, KeypointsAnnotation):
        points = [{"x": _num(k.x), "y": _num(k.y), "visible": k.visible} for k in ann.keypoints]
        skeleton = [list(edge) for edge in ann.skeleton]
        return "keypoints", {"keypoints": points, "names": ann.names, "skeleton": skeleton}
    if isinstance(ann, CuboidAnnotation):
        pos = dict(zip("xyz", (_num(v) for v in ann.position), strict=True))
        dims = dict(zip("xyz", (_num(v) for v in ann.dimensions), strict=True))
        return "cuboid", {"position": pos, "dimensions": dims, "yaw": _num(ann.yaw)}
    if isinstance(ann, CategoryAnnotation):
        return "category", {}
    if isinstance(ann, MultiCategoryAnnotation):
        return "multicategory", {}
    if isinstance(ann, VolumeSegmentation):
        return "mask", {}
    raise AnnotationError(f"{type(ann).__name__} has no Nucleus equivalent")


def to_nucleus(ann: Annotation) -> dict[str, Any]:
    """The Nucleus payload dict for an annotation.

    Args:
        ann: Box, line, polyline (open), polygon, keypoints, cuboid, category, multicategory or
            volume segmentation.

    Returns:
        The payload, with the keys scale-nucleus writes for that type (or the keys the payload
        it was imported from had).

    Raises:
        AnnotationError: The annotation has no Nucleus equivalent.
    """
    kind, geometry = _geometry(ann)
    from_nucleus_payload = ann.origin is not None and ann.origin.format == "nucleus"
    kept = (ann.origin.extra or {}) if ann.origin is not None and from_nucleus_payload else {}
    if "geometry" in kept and kept.get("derived") == geometry:
        geometry = kept["geometry"]
    external_id = ann.origin.external_id if ann.origin and from_nucleus_payload else ann.id
    full: dict[str, Any] = {
        "label": ann.identifier,
        "type": kind,
        "geometry": geometry,
        "reference_id": ann.reference_id,
        "annotation_id": external_id,
        "metadata": ann.metadata,
        "embedding_vector": ann.embedding_vector,
        "track_reference_id": ann.track_reference_id,
        "task_id": ann.task_id,
    }
    if isinstance(ann, CategoryAnnotation):
        full.update(label=ann.value, taxonomy_name=ann.taxonomy_name or ann.identifier)
    elif isinstance(ann, MultiCategoryAnnotation):
        named = ann.identifier if ann.identifier != "multicategory" else None
        full.update(labels=list(ann.values), taxonomy_name=ann.taxonomy_name or named)
    elif isinstance(ann, VolumeSegmentation):
        if not ann.mask_url:
            raise AnnotationError(
                "mask_url: a Nucleus segmentation needs the URL of its mask image "
                "(scale-nucleus refuses one without)"
            )
        full["mask_url"] = ann.mask_url
        full["annotations"] = [
            {"label": s.name, "index": s.idx, **({"metadata": s.metadata} if s.metadata else {})}
            for s in ann.segments
        ]
    keys: Sequence[str] = NUCLEUS_KEYS[kind]
    if from_nucleus_payload and ann.origin and ann.origin.keys is not None:
        keys = ann.origin.keys
    elif kind == "cuboid":  # scale-nucleus writes these only when set
        keys = [*keys, *(k for k in _CUBOID_OPTIONAL if full.get(k))]
    out = {key: full.get(key) for key in keys}
    if "taxonomy_name" in out and out["taxonomy_name"] is None and not from_nucleus_payload:
        del out["taxonomy_name"]  # scale-nucleus writes it only when set
    return out
