"""Tests of the annotation entity models: aliases, ids, validation, geometry and measurements."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datastore.annotations import (
    ANNOTATION_TYPES,
    AngleAnnotation,
    AreaAnnotation,
    BoxAnnotation,
    CategoryAnnotation,
    CircleAnnotation,
    CuboidAnnotation,
    DistanceAnnotation,
    ImageSegmentation,
    KeypointsAnnotation,
    LabelAnnotation,
    LineAnnotation,
    MultiCategoryAnnotation,
    NumericAnnotation,
    PointAnnotation,
    PolygonAnnotation,
    PolylineAnnotation,
    SkeletonAnnotation,
    TextAnnotation,
    VolumeSegmentation,
    annotation_from_dict,
)
from medstore.datastore.annotations.geometry import patient_to_pixel, pixel_to_patient
from medstore.datastore.errors import AnnotationError


@pytest.fixture
def oblique_affine() -> np.ndarray:
    """A rotated, anisotropic, translated affine (D, H, W index -> RAS mm)."""
    angle = 0.3
    rot = np.array(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([2.5, 0.7, 0.6])
    affine[:3, 3] = [-120.25, 33.5, -80.0]
    return affine


def test_datamint_aliases_map_to_fields() -> None:
    ann = annotation_from_dict(
        {
            "type": "square",
            "name": "nodule",
            "added_by": "dr-a",
            "index": 3,
            "points": [[10, 20], [50, 60]],
        }
    )
    assert isinstance(ann, BoxAnnotation)
    assert (ann.identifier, ann.created_by, ann.frame_index, ann.scope) == (
        "nodule",
        "dr-a",
        3,
        "frame",
    )
    assert ann.annotation_type == "box"


def test_nucleus_aliases_map_to_fields() -> None:
    ann = PointAnnotation(label="tip", annotation_id="a-1", reference_id="img", points=[(1, 2)])
    assert (ann.identifier, ann.id, ann.reference_id) == ("tip", "a-1", "img")


def test_value_aliases() -> None:
    assert CategoryAnnotation(identifier="q", text_value="x").value == "x"
    assert NumericAnnotation(identifier="q", numeric_value=2.5).value == 2.5
    assert MultiCategoryAnnotation(identifier="q", labels=["a", "b"]).values == ["a", "b"]
    assert TextAnnotation(identifier="note", value="hello").value == "hello"


def test_id_is_deterministic_and_content_based() -> None:
    first = LineAnnotation.from_points((0, 0), (3, 4), identifier="d", created_by="a")
    again = LineAnnotation.from_points((0, 0), (3, 4), identifier="d", created_by="a")
    other = LineAnnotation.from_points((0, 0), (3, 5), identifier="d", created_by="a")
    assert first.id == again.id
    assert first.id != other.id
    assert LineAnnotation.from_points((0, 0), (3, 4), identifier="d", id="mine").id == "mine"


def test_lifecycle_fields_do_not_change_the_id() -> None:
    base = LabelAnnotation(identifier="artifact")
    deleted = LabelAnnotation(identifier="artifact", deleted=True, deleted_by="x", status="done")
    assert base.id == deleted.id


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"type": "line", "identifier": "d", "points": [[0, 0], [float("nan"), 1]]}, "finite"),
        ({"type": "line", "identifier": "d", "points": [[0, 0], [1, float("inf")]]}, "finite"),
        ({"type": "line", "identifier": "d", "points": [[0, 0], [1, 1], [2, 2]]}, "needs 2 points"),
        ({"type": "point", "identifier": "p", "points": [[0, 0, 0, 0]]}, "2 or 3 coordinates"),
        ({"type": "polygon", "identifier": "p", "points": [[0, 0], [1, 1, 1], [2, 2]]}, "2 or 3"),
        ({"type": "polygon", "identifier": "p", "points": [[0, 0], [1, 1]]}, "3..n points"),
        (
            {
                "type": "point",
                "identifier": "p",
                "coordinate_system": "patient",
                "points": [[1, 2]],
            },
            "patient points need 3",
        ),
        ({"type": "hologram", "identifier": "p"}, "unknown annotation type 'hologram'"),
        ({"identifier": "p"}, "needs a string 'annotation_type'"),
        ({"type": "label", "identifier": ""}, "identifier"),
        ({"type": "label", "identifier": "x", "scope": "frame"}, "needs a frame_index"),
        ({"type": "label", "identifier": "x", "frame_index": -1}, "frame_index"),
        ({"type": "label", "identifier": "x", "confiability": 2.0}, "confiability"),
        ({"type": "label", "identifier": "x", "colour": "red"}, "colour"),
        (
            {"type": "keypoints", "identifier": "k", "keypoints": [{"x": 1, "y": 2}], "names": []},
            "0 names for 1 keypoints",
        ),
        (
            {
                "type": "keypoints",
                "identifier": "k",
                "keypoints": [{"x": 1, "y": 2}],
                "names": ["a"],
                "skeleton": [[0, 3]],
            },
            "missing keypoint",
        ),
    ],
)
def test_bad_input_raises_annotation_error(data: dict, reason: str) -> None:
    with pytest.raises(AnnotationError, match=reason):
        annotation_from_dict(data)


def test_direct_construction_wraps_validation_errors() -> None:
    with pytest.raises(AnnotationError, match="invalid line annotation: points"):
        LineAnnotation(identifier="d", points=[(0.0, 0.0)])


def test_class_type_mismatch_is_refused() -> None:
    with pytest.raises(AnnotationError, match="does not match BoxAnnotation"):
        BoxAnnotation.model_validate(
            {"type": "line", "identifier": "x", "points": [[0, 0], [1, 1]]}
        )


def test_every_registered_class_round_trips_through_dict() -> None:
    samples = [
        BoxAnnotation.from_points([(1, 2, 3), (4, 6, 3)], identifier="b", frame_index=3),
        LineAnnotation.from_points((0, 0), (1, 1), identifier="l"),
        PolylineAnnotation(identifier="r", points=[(0, 0), (1, 0), (1, 1)], closed=True),
        PolygonAnnotation(identifier="p", points=[(0, 0), (1, 0), (1, 1)]),
        PointAnnotation(identifier="pt", points=[(1, 2, 3)], coordinate_system="patient"),
        CircleAnnotation(identifier="c", points=[(0, 0), (0, 2)]),
        DistanceAnnotation(identifier="d", points=[(0, 0), (3, 4)]),
        AngleAnnotation(identifier="a", points=[(1, 0), (0, 0), (0, 1)], frame_index=2),
        AreaAnnotation(identifier="ar", points=[(0, 0, 1), (2, 0, 1), (2, 2, 1)]),
        KeypointsAnnotation(
            identifier="k",
            keypoints=[{"x": 1, "y": 2}, {"visible": False}],
            names=["a", "b"],
            skeleton=[(0, 1)],
        ),
        CuboidAnnotation(identifier="cu", position=(1, 2, 3), dimensions=(4, 5, 6), yaw=0.5),
        CategoryAnnotation(identifier="q", value="v", taxonomy_name="t"),
        MultiCategoryAnnotation(identifier="q", values=["a"]),
        LabelAnnotation(identifier="lab"),
        NumericAnnotation(identifier="n", value=1.5, units="ml"),
        TextAnnotation(identifier="t", value="x"),
        ImageSegmentation.from_mask(np.eye(3), identifier="s", frame_index=0),
        VolumeSegmentation.from_semantic_segmentation(np.eye(3, dtype=int)[None], "liver"),
        SkeletonAnnotation(trees=[]),
    ]
    assert {type(s).TYPE for s in samples} == set(ANNOTATION_TYPES)
    for sample in samples:
        back = annotation_from_dict(sample.to_dict())
        assert back == sample
        assert type(back) is type(sample)


def test_box_from_points_and_extent(oblique_affine: np.ndarray) -> None:
    box = BoxAnnotation.from_points([(50, 60, 3), (10, 20, 3)], identifier="nodule", frame_index=3)
    assert box.points == [(10, 20, 3), (50, 20, 3), (10, 60, 3), (50, 60, 3)]
    assert box.extent() == (40.0, 40.0, 0.0)
    sx, sy = np.linalg.norm(oblique_affine[:3, :3], axis=0)[[2, 1]]
    assert box.extent_mm(oblique_affine) == pytest.approx((40 * sx, 40 * sy))
    with pytest.raises(AnnotationError, match="need the image affine"):
        box.extent_mm()
    with pytest.raises(AnnotationError, match="at least 2 points"):
        BoxAnnotation.from_points([(1, 2)], identifier="x")


def test_line_length_in_mm() -> None:
    affine = np.diag([3.0, 0.5, 2.0, 1.0])  # d, h, w spacings
    line = LineAnnotation.from_points((0, 0, 1), (3, 4, 1), identifier="d")
    # x (w) steps 2 mm, y (h) steps 0.5 mm
    assert line.length_mm(affine) == pytest.approx(math.hypot(6, 2))
    patient = line.to_patient(affine)
    assert patient.coordinate_system == "patient"
    assert patient.length_mm() == pytest.approx(math.hypot(6, 2))


def test_polygon_polyline_circle_measurements() -> None:
    square = PolygonAnnotation(identifier="p", points=[(0, 0), (2, 0), (2, 2), (0, 2)])
    assert square.area() == 4.0
    open_path = PolylineAnnotation(identifier="r", points=[(0, 0, 0), (3, 4, 0)])
    closed = PolylineAnnotation(
        identifier="r", points=[(0, 0, 0), (3, 0, 0), (3, 4, 0)], closed=True
    )
    assert open_path.length_mm(np.eye(4)) == 5.0
    assert closed.length_mm(np.eye(4)) == 12.0
    circle = CircleAnnotation(identifier="c", points=[(0, 0, 0), (0, 2, 0)])
    assert circle.area_mm2(np.eye(4)) == pytest.approx(4 * math.pi)


def test_mask_area_and_volume(oblique_affine: np.ndarray) -> None:
    mask = np.zeros((6, 7), dtype=np.uint8)
    mask[1:4, 2:6] = 1
    seg = ImageSegmentation.from_mask(mask, identifier="lesion", frame_index=2)
    assert np.array_equal(seg.mask, mask.astype(bool))
    sx, sy = 0.6, 0.7  # w and h spacings of the fixture affine
    assert seg.area_mm2(oblique_affine) == pytest.approx(12 * sx * sy)
    labels = np.zeros((3, 4, 5), dtype=np.int16)
    labels[0, :2, :2] = 1
    labels[2] = 2
    vol = VolumeSegmentation.from_semantic_segmentation(
        labels, {"background": 0, "liver": 1, "tumor": 2}
    )
    assert vol.label_info() == [{"name": "liver", "idx": 1}, {"name": "tumor", "idx": 2}]
    voxel = 2.5 * 0.7 * 0.6
    assert vol.volume_mm3(oblique_affine) == pytest.approx(
        {"liver": 4 * voxel, "tumor": 20 * voxel}
    )


def test_semantic_segmentation_rejects_unmapped_and_bad_values() -> None:
    with pytest.raises(AnnotationError, match=r"label values \[2\] have no class name"):
        VolumeSegmentation.from_semantic_segmentation(np.array([[0, 1, 2]]), {"liver": 1})
    with pytest.raises(AnnotationError, match="whole numbers"):
        VolumeSegmentation.from_semantic_segmentation(np.array([[0.0, np.nan]]), "x")
    with pytest.raises(AnnotationError, match="negative"):
        VolumeSegmentation.from_semantic_segmentation(np.array([[0, -1]]), {"x": 1})
    with pytest.raises(AnnotationError, match="must be 2-D"):
        ImageSegmentation.from_mask(np.zeros((2, 2, 2)), identifier="x")
    one = VolumeSegmentation.from_semantic_segmentation(np.array([[0, 1]], dtype=bool), "liver")
    assert one.class_map == {1: "liver"}


def test_datamint_dicom_box_matches_pixel_box() -> None:
    """The Datamint fixture's patient box was made from pixel (10,20)-(50,60) of CT_small.dcm."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    row_dir = np.array(ds.ImageOrientationPatient[:3], dtype=float)
    col_dir = np.array(ds.ImageOrientationPatient[3:], dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = np.cross(row_dir, col_dir)  # d (unused: one slice)
    lps[:3, 1] = col_dir * dr  # h: along a column, one row spacing
    lps[:3, 2] = row_dir * dc  # w
    lps[:3, 3] = ipp
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    pixel = np.array([[10, 20, 0], [50, 20, 0], [10, 60, 0], [50, 60, 0]], dtype=float)
    world_lps = pixel_to_patient(pixel, ras) * [-1, -1, 1]
    expected = [
        [-151.52112300000002, -165.80643700000002, -75.699997],
        [-125.06240300000002, -165.80643700000002, -75.699997],
        [-151.52112300000002, -139.347717, -75.699997],
        [-125.06240300000002, -139.347717, -75.699997],
    ]
    np.testing.assert_allclose(world_lps, expected, atol=1e-4)


finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=6),
    spacing=st.tuples(*[st.floats(min_value=0.05, max_value=10) for _ in range(3)]),
    angle=st.floats(min_value=-math.pi, max_value=math.pi),
    shift=st.tuples(finite, finite, finite),
)
def test_pixel_patient_round_trip_is_exact(points, spacing, angle, shift) -> None:
    rot = np.array(
        [[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = shift
    pixel = np.array(points)
    np.testing.assert_allclose(
        patient_to_pixel(pixel_to_patient(pixel, affine), affine), pixel, atol=1e-6
    )
    world = np.array(points)
    np.testing.assert_allclose(
        pixel_to_patient(patient_to_pixel(world, affine), affine), world, atol=1e-6
    )


def test_annotation_round_trip_through_patient(oblique_affine: np.ndarray) -> None:
    ann = PolygonAnnotation(identifier="p", points=[(1.5, 2.25, 4), (10, 2, 4), (7, 9.75, 4)])
    back = ann.to_patient(oblique_affine).to_pixel(oblique_affine)
    np.testing.assert_allclose(back.points_array(), ann.points_array(), atol=1e-6)
    flat = PointAnnotation(identifier="p", points=[(3, 4)], frame_index=5)
    world = flat.to_patient(oblique_affine)
    expected = oblique_affine @ np.array([5, 4, 3, 1.0])
    np.testing.assert_allclose(world.points_array()[0], expected[:3], atol=1e-9)
    with pytest.raises(AnnotationError, match="singular"):
        flat.to_patient(np.zeros((4, 4)))
