"""Annotation entities (DESIGN §6), the project schema and the per-image annotation store."""

from __future__ import annotations

from datastore.annotations.base import Annotation, Origin
from datastore.annotations.classification import (
    CategoryAnnotation,
    LabelAnnotation,
    MultiCategoryAnnotation,
    NumericAnnotation,
    TextAnnotation,
)
from datastore.annotations.labels import save_segmentation_label
from datastore.annotations.registry import (
    ANNOTATION_TYPES,
    annotation_class,
    annotation_from_dict,
)
from datastore.annotations.schema import AnnotationSpec, ProjectSchema
from datastore.annotations.segmentation import ImageSegmentation, Segment, VolumeSegmentation
from datastore.annotations.shapes import (
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
from datastore.annotations.skeleton import (
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
from datastore.annotations.storage import AnnotationStore

__all__ = [
    "ANNOTATION_TYPES",
    "Annotation",
    "AnnotationSpec",
    "AnnotationStore",
    "BoundingBox",
    "BoxAnnotation",
    "Branchpoint",
    "CategoryAnnotation",
    "CircleAnnotation",
    "Comment",
    "CuboidAnnotation",
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
