"""The registry of annotation classes by type name, and :func:`annotation_from_dict`.

Examples:
    >>> ann = annotation_from_dict({"type": "square", "identifier": "nodule",
    ...                             "points": [[0, 0], [4, 0], [0, 3], [4, 3]]})
    >>> type(ann).__name__, ann.extent()
    ('BoxAnnotation', (4.0, 3.0))
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ..errors import AnnotationError
from .base import TYPE_SYNONYMS, Annotation
from .classification import (
    CategoryAnnotation,
    LabelAnnotation,
    MultiCategoryAnnotation,
    NumericAnnotation,
    TextAnnotation,
)
from .measurements import AngleAnnotation, AreaAnnotation, DistanceAnnotation
from .segmentation import ImageSegmentation, VolumeSegmentation
from .shapes import (
    BoxAnnotation,
    CircleAnnotation,
    CuboidAnnotation,
    KeypointsAnnotation,
    LineAnnotation,
    PointAnnotation,
    PolygonAnnotation,
    PolylineAnnotation,
)
from .skeleton import SkeletonAnnotation

__all__ = ["ANNOTATION_TYPES", "AnnotationType", "annotation_class", "annotation_from_dict"]


class AnnotationType(StrEnum):
    """Datamint's annotation type names (``datamint.entities.annotations.AnnotationType``).

    :func:`annotation_class` maps each one medstore models to its class (``SQUARE`` -> box,
    ``REGION`` -> polyline, ``INTEGER``/``FLOAT`` -> numeric, ``SEGMENTATION`` -> 2-D mask,
    ``DISTANCE``/``ANGLE``/``AREA`` -> the measurements); ``SPLINE`` has no medstore class.
    """

    SEGMENTATION = "segmentation"
    AREA = "area"
    DISTANCE = "distance"
    ANGLE = "angle"
    POINT = "point"
    LINE = "line"
    REGION = "region"
    SQUARE = "square"
    CIRCLE = "circle"
    CATEGORY = "category"
    LABEL = "label"
    INTEGER = "integer"
    FLOAT = "float"
    TEXT = "text"
    SPLINE = "spline"


#: Canonical type name -> class.
ANNOTATION_TYPES: Mapping[str, type[Annotation]] = MappingProxyType(
    {
        cls.TYPE: cls
        for cls in (
            ImageSegmentation,
            VolumeSegmentation,
            BoxAnnotation,
            LineAnnotation,
            PolylineAnnotation,
            PolygonAnnotation,
            PointAnnotation,
            CircleAnnotation,
            DistanceAnnotation,
            AngleAnnotation,
            AreaAnnotation,
            KeypointsAnnotation,
            CuboidAnnotation,
            CategoryAnnotation,
            MultiCategoryAnnotation,
            LabelAnnotation,
            NumericAnnotation,
            TextAnnotation,
            SkeletonAnnotation,
        )
    }
)


def annotation_class(type_name: str) -> type[Annotation]:
    """The class for a type name (canonical or a synonym such as Datamint's ``"square"``).

    Args:
        type_name: The type.

    Returns:
        The annotation class.

    Raises:
        AnnotationError: Unknown type.
    """
    type_name = str(type_name)  # an AnnotationType member is its value
    canonical = TYPE_SYNONYMS.get(type_name, type_name)
    try:
        return ANNOTATION_TYPES[canonical]
    except KeyError:
        known = ", ".join(sorted(ANNOTATION_TYPES))
        raise AnnotationError(f"unknown annotation type {type_name!r} (known: {known})") from None


def annotation_from_dict(data: Mapping[str, Any]) -> Annotation:
    """Build the right annotation class from a dict carrying ``annotation_type`` (or ``type``).

    Args:
        data: The annotation's fields (as written by :meth:`Annotation.to_dict`).

    Returns:
        The annotation.

    Raises:
        AnnotationError: Missing or unknown type, or invalid fields.
    """
    if not isinstance(data, Mapping):
        raise AnnotationError(f"an annotation must be a JSON object, got {type(data).__name__}")
    type_name = data.get("annotation_type", data.get("type"))
    if not isinstance(type_name, str):
        raise AnnotationError("an annotation needs a string 'annotation_type' (or 'type')")
    return annotation_class(type_name).model_validate(dict(data))
