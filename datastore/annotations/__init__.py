"""Annotation entities, the project schema and the per-image annotation store."""

from __future__ import annotations

from .base import Annotation, Origin
from .classification import (
    CategoryAnnotation,
    LabelAnnotation,
    MultiCategoryAnnotation,
    NumericAnnotation,
    TextAnnotation,
)
from .labels import save_segmentation_label
from .measurements import AngleAnnotation, AreaAnnotation, DistanceAnnotation
from .registry import (
    ANNOTATION_TYPES,
    AnnotationType,
    annotation_class,
    annotation_from_dict,
)
from .schema import AnnotationSpec, ProjectSchema
from .segmentation import ImageSegmentation, Segment, VolumeSegmentation
from .shapes import (
    BoxAnnotation,
    CircleAnnotation,
    CuboidAnnotation,
    Keypoint,
    KeypointsAnnotation,
    LineAnnotation,
    PointAnnotation,
    PointsAnnotation,
    PolygonAnnotation,
    PolylineAnnotation,
)
from .skeleton import (
    BoundingBox,
    Branchpoint,
    Comment,
    MetadataEntry,
    SegmentInfo,
    SkeletonAnnotation,
    SkeletonEdge,
    SkeletonNode,
    Tree,
    TreeGroup,
    VolumeLayer,
    VoxelSize,
)
from .storage import AnnotationStore

__all__ = [
    "ANNOTATION_TYPES",
    "AngleAnnotation",
    "Annotation",
    "AnnotationSpec",
    "AnnotationStore",
    "AnnotationType",
    "AreaAnnotation",
    "BoundingBox",
    "BoxAnnotation",
    "Branchpoint",
    "CategoryAnnotation",
    "CircleAnnotation",
    "Comment",
    "CuboidAnnotation",
    "DistanceAnnotation",
    "ImageSegmentation",
    "Keypoint",
    "KeypointsAnnotation",
    "LabelAnnotation",
    "LineAnnotation",
    "MetadataEntry",
    "MultiCategoryAnnotation",
    "NumericAnnotation",
    "Origin",
    "PointAnnotation",
    "PointsAnnotation",
    "PolygonAnnotation",
    "PolylineAnnotation",
    "ProjectSchema",
    "Segment",
    "SegmentInfo",
    "SkeletonAnnotation",
    "SkeletonEdge",
    "SkeletonNode",
    "TextAnnotation",
    "Tree",
    "TreeGroup",
    "VolumeLayer",
    "VolumeSegmentation",
    "VoxelSize",
    "annotation_class",
    "annotation_from_dict",
    "save_segmentation_label",
]
