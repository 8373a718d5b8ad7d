"""Datamint's annotation API, as medstore offers it offline (names and signatures of 2.45)."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore.annotations import (
    ANNOTATION_TYPES,
    AnnotationType,
    BoxAnnotation,
    CategoryAnnotation,
    LabelAnnotation,
    VolumeSegmentation,
    annotation_class,
)
from medstore.datastore.errors import AnnotationError


def test_accessors_and_scope_checks() -> None:
    ann = CategoryAnnotation(name="finding", value="benign", added_by="dr-a", index=2)
    assert (ann.type, ann.index, ann.name, ann.added_by) == ("category", 2, "finding", "dr-a")
    assert ann.is_frame_scoped() and not ann.is_image_scoped() and ann.is_category()
    assert LabelAnnotation(identifier="x").is_label()
    assert ann.get_created_datetime() is None


def test_box_from_points_with_datamints_signature() -> None:
    box = BoxAnnotation.from_points((10, 20), (50, 60), identifier="nodule", frame_index=3)
    assert box.points == [(10.0, 20.0), (50.0, 20.0), (10.0, 60.0), (50.0, 60.0)]
    assert (box.frame_index, box.scope, box.coordinate_system) == (3, "frame", "pixel")
    mm = BoxAnnotation.from_points((1, 2, 3), (4, 6, 3), identifier="b", coords_system="patient")
    assert mm.coordinate_system == "patient" and mm.extent_mm() == (3.0, 4.0)
    old = BoxAnnotation.from_points([(10, 20), (50, 60)], identifier="nodule")
    assert old.points == box.points


def test_volume_segmentation_class_map_is_datamints_direction() -> None:
    seg = np.zeros((2, 3, 4), np.int32)
    seg[0, 1, 2] = 2
    vol = VolumeSegmentation.from_semantic_segmentation(seg, {2: "tumour", 0: "background"})
    assert vol.class_map == {0: "background", 2: "tumour"}
    assert (vol.class_names, vol.num_classes) == (["background", "tumour"], 2)
    binary = VolumeSegmentation.from_semantic_segmentation(seg, "tumour")
    assert binary.class_map == {2: "tumour"} and binary.identifier == "tumour"
    image = nib.Nifti1Image(seg.astype(np.int16), np.eye(4))
    from_nifti = VolumeSegmentation.from_semantic_segmentation(image, {2: "tumour"})
    assert from_nifti.class_map == {2: "tumour"}
    with pytest.raises(AnnotationError, match="class_map"):
        VolumeSegmentation.from_semantic_segmentation(seg, {2: 5})  # type: ignore[dict-item]


def test_annotation_type_names() -> None:
    assert annotation_class(AnnotationType.SQUARE) is BoxAnnotation
    assert annotation_class(AnnotationType.INTEGER).TYPE == "numeric"
    with pytest.raises(AnnotationError, match="unknown annotation type 'spline'"):
        annotation_class(AnnotationType.SPLINE)


def test_distance_angle_and_area_types_measure_in_millimetres() -> None:
    from medstore.datastore.annotations import AngleAnnotation, AreaAnnotation, DistanceAnnotation

    assert annotation_class(AnnotationType.DISTANCE) is DistanceAnnotation
    assert annotation_class(AnnotationType.ANGLE) is AngleAnnotation
    assert annotation_class(AnnotationType.AREA) is AreaAnnotation
    affine = np.diag([3.0, 2.0, 0.5, 1.0])  # (D, H, W) axes: x 0.5 mm, y 2 mm, z 3 mm
    dist = DistanceAnnotation(identifier="d", points=[(0, 0, 1), (6, 2, 1)])
    assert dist.distance_mm(affine) == pytest.approx(5.0)  # (3 mm, 4 mm)
    # 45 degrees in pixels; in millimetres the arms are (1, 0) and (0.5, 2)
    angle = AngleAnnotation(identifier="a", points=[(2, 0), (0, 0), (1, 1)])
    assert angle.angle_degrees(affine) == pytest.approx(math.degrees(math.atan2(2.0, 0.5)))
    assert AngleAnnotation(
        identifier="a", points=[(1, 0, 0), (0, 0, 0), (-1, 0, 0)], coordinate_system="patient"
    ).angle_degrees() == pytest.approx(180.0)
    tilted = AreaAnnotation(
        identifier="r", coordinate_system="patient",
        points=[(0, 0, 0), (3, 0, 0), (3, 4, 4), (0, 4, 4)],  # a 3 x sqrt(32) rectangle
    )  # fmt: skip
    assert tilted.area_mm2() == pytest.approx(3 * math.sqrt(32))
    with pytest.raises(AnnotationError, match="3 points"):
        AngleAnnotation(identifier="a", points=[(0, 0), (1, 1)])
    with pytest.raises(AnnotationError, match="zero length"):
        AngleAnnotation(identifier="a", points=[(0, 0), (0, 0), (1, 1)]).angle_degrees(affine)
    with pytest.raises(AnnotationError, match="affine"):
        dist.distance_mm()


@pytest.mark.parametrize("kind", ["distance", "angle", "area"])
def test_datamint_measurement_dicts_round_trip(kind: str) -> None:
    from medstore.datastore.interop.datamint import from_datamint, to_datamint

    points = [[0.1, -2.5, 3.0], [1e6 + 0.3, 4.0, 3.0], [7.0, 8.0, 3.0]][
        : 2 if kind == "distance" else 3
    ]
    entity = {
        "annotation_type": kind, "identifier": "m", "scope": "image", "confiability": 1.0,
        "deleted": False, "geometry": {"coordinate_system": "patient", "points": points},
    }  # fmt: skip
    ann = from_datamint(entity)
    assert (type(ann).TYPE, ann.coordinate_system) == (kind, "patient")  # type: ignore[attr-defined]
    assert to_datamint(ann) == entity


def test_geometry_objects_and_from_coordinates() -> None:
    from medstore.datastore.annotations.grid import ImageGrid
    from medstore.datastore.interop.datamint import from_datamint
    from medstore.datastore.interop.datamint_geometry import BoxGeometry, PointGeometry

    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-100, -120, -50)
    grid = ImageGrid(native_affine=affine, native_shape=(64, 64, 32), format="nifti1")
    box = BoxGeometry.from_coordinates((10, 20), (50, 60), frame_index=3, metadata=grid)
    assert (box.coordinate_system, box.point1, box.point2) == (
        "patient", (92.0, 104.0, -42.5), (60.0, 72.0, -42.5),
    )  # fmt: skip
    assert set(box.to_dict()) == {"points", "viewPlaneNormal", "viewUp"}
    ann = from_datamint({"type": "square", "identifier": "n", "scope": "image", "geometry": box})
    assert isinstance(ann, BoxAnnotation) and ann.points[0] == (-92.0, -104.0, -42.5)
    pixel = PointGeometry.from_coordinates((5, 6), frame_index=2)
    assert (pixel.coordinate_system, pixel.point) == ("pixel", (5.0, 6.0, 2.0))
    with pytest.raises(AnnotationError, match="needs 4 points"):
        BoxGeometry(points=[(0, 0, 0)])
    with pytest.raises(AnnotationError, match="slice_plane"):
        PointGeometry.from_coordinates((1, 2), slice_plane="sagittal")


@pytest.mark.parametrize("type_name", sorted(ANNOTATION_TYPES))
def test_every_annotation_has_datamints_value_property(type_name: str) -> None:
    # datamint's Annotation.value is text_value on every annotation type; medstore's classes
    # without a value field answer None (or the text_value kept from a Datamint dict).
    cls = ANNOTATION_TYPES[type_name]
    assert isinstance(getattr(cls, "value", None), property) or "value" in cls.model_fields
    if "value" not in cls.model_fields:
        assert cls.model_construct(origin=None).value is None


def test_geometric_annotations_keep_datamints_text_value_both_forms() -> None:
    from medstore.datastore.interop.datamint import from_datamint, to_datamint

    box = {
        "annotation_type": "square", "identifier": "nodule", "scope": "image",
        "text_value": '{"note": "ü\\n"}', "confiability": 1.0, "deleted": False,
        "geometry": {"points": [[0, 0, 0], [4, 3, 0]], "coordinate_system": "patient"},
    }  # fmt: skip
    ann = from_datamint(box)
    assert ann.value == '{"note": "ü\\n"}'
    assert to_datamint(ann)["text_value"] == box["text_value"]
    create = {key: box[key] for key in ("identifier", "scope", "geometry")}
    create.update(type="square", value="payload")
    made = from_datamint(create)
    assert made.value == "payload"
    out = to_datamint(made)
    assert out["value"] == "payload" and "text_value" not in out
    assert BoxAnnotation.from_points((0, 0), (1, 1), identifier="b").value is None


def test_image_segmentation_with_datamints_constructor() -> None:
    from medstore.datastore.annotations import ImageSegmentation
    from PIL import Image

    mask = np.zeros((6, 5), np.uint8)
    mask[1:3, 2:4] = 7  # any non-zero pixel is inside, as datamint normalises it to 1
    seg = ImageSegmentation(segmentation_data=mask, name="lesion", frame_index=2)
    assert (seg.name, seg.scope, seg.frame_index, seg.mask_shape) == ("lesion", "frame", 2, (6, 5))
    assert seg.get_area() == 4 and seg.pixel_count == 4
    assert seg.segmentation_data.dtype == np.uint8
    assert (seg.segmentation_data == (mask > 0)).all()
    pil = seg.to_pil_image()
    assert isinstance(pil, Image.Image) and (np.asarray(pil) == (mask > 0)).all()
    again = ImageSegmentation(mask=Image.fromarray(mask), name="lesion", frame_index=2)
    assert again == seg and again.id == seg.id
    assert ImageSegmentation(segmentation_data=mask.astype(float), name="lesion", index=2) == seg


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"segmentation_data": np.zeros((2, 2, 2))}, "2-D"),
        ({"segmentation_data": np.full((2, 2), 0.5)}, "non-integer"),
        ({"segmentation_data": -np.ones((2, 2), int)}, "negative"),
        ({"segmentation_data": np.ones((2, 2)), "mask": np.ones((2, 2))}, "both"),
    ],
)
def test_image_segmentation_refuses_what_datamint_refuses(kwargs: dict, reason: str) -> None:
    from medstore.datastore.annotations import ImageSegmentation

    with pytest.raises(AnnotationError, match=reason):
        ImageSegmentation(name="m", **kwargs)


def test_geometric_annotations_have_a_geometry_object() -> None:
    from medstore.datastore.interop.datamint import from_datamint

    box = BoxAnnotation.from_points((10, 20), (50, 60), identifier="nodule", frame_index=3)
    geo = box.geometry
    assert (geo.type, geo.coordinate_system, geo.point1, geo.point2) == (
        "box", "pixel", (10.0, 20.0), (50.0, 20.0),
    )  # fmt: skip
    assert geo.to_dict() == {
        "points": [list(p) for p in box.points], "coordinate_system": "pixel"
    }  # fmt: skip
    assert "geometry" not in box.to_dict()
    given = {"points": [[1.0, 2.0, 3.0]], "viewPlaneNormal": [0, 0, 1], "viewUp": [0, -1, 0]}
    read = from_datamint({"type": "point", "identifier": "p", "geometry": given})
    # medstore's axes: Datamint's LPS patient point and vectors come back RAS
    assert (read.geometry.point, read.geometry.coordinate_system) == ((-1.0, -2.0, 3.0), "patient")
    assert (read.geometry.viewPlaneNormal, read.geometry.viewUp) == (
        (-0.0, -0.0, 1.0),
        (-0.0, 1.0, 0.0),
    )
