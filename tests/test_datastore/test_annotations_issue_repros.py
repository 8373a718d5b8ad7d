"""The reproductions of the annotation issue (Nucleus and Datamint), one test each.

Each was seen failing before its fix; the real-library checks of the same payloads live in
tests/test_realenv_{nucleus,datamint}.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from medstore.datastore.annotations import (
    BoxAnnotation,
    CategoryAnnotation,
    CuboidAnnotation,
    KeypointsAnnotation,
    NumericAnnotation,
    Segment,
    VolumeSegmentation,
)
from medstore.datastore.errors import AnnotationError
from medstore.datastore.interop.datamint import from_datamint, to_datamint
from medstore.datastore.interop.nucleus import from_nucleus, to_nucleus

# ------------------------------------------------------------------------------------ Nucleus


def test_nucleus_box_geometry_is_kept_as_given() -> None:
    payload = {
        "label": "b", "type": "box", "reference_id": "img", "annotation_id": "a1",
        "metadata": {}, "embedding_vector": None, "track_reference_id": None, "task_id": None,
        "geometry": {"x": 0.1, "y": 1e6 + 0.3, "width": 0.2, "height": 0.7},
    }  # fmt: skip
    assert to_nucleus(from_nucleus(payload)) == payload  # width was 0.20000000000000004


def test_nucleus_keypoints_without_skeleton() -> None:
    payload = {
        "label": "k", "type": "keypoints", "reference_id": "img", "annotation_id": "k1",
        "metadata": {}, "track_reference_id": None, "task_id": None,
        "geometry": {"keypoints": [{"x": 1, "y": 2, "visible": True}], "names": ["tip"],
                     "skeleton": None},
    }  # fmt: skip
    ann = from_nucleus(payload)
    assert isinstance(ann, KeypointsAnnotation)
    assert to_nucleus(ann) == payload
    assert KeypointsAnnotation(
        identifier="k", keypoints=[{"x": 1, "y": 2}], names=["tip"], skeleton=None
    ).skeleton == []  # fmt: skip


def test_segment_without_index_is_an_annotation_error() -> None:
    with pytest.raises(AnnotationError, match="idx"):
        Segment(name="a")


def test_native_category_exports_its_identifier_as_taxonomy() -> None:
    payload = to_nucleus(CategoryAnnotation(identifier="finding", value="benign"))
    assert payload["taxonomy_name"] == "finding" and payload["label"] == "benign"
    back = from_nucleus(payload)
    assert (back.identifier, back.value) == ("finding", "benign")  # type: ignore[attr-defined]


def test_native_cuboid_keeps_its_fields() -> None:
    cuboid = CuboidAnnotation(
        identifier="car", position=(1, 2, 3), dimensions=(4, 5, 6), yaw=0.5,
        reference_id="scene", metadata={"k": "v"}, track_reference_id="t1", task_id="task",
    )  # fmt: skip
    payload = to_nucleus(cuboid)
    assert payload["annotation_id"] == cuboid.id
    assert (payload["metadata"], payload["track_reference_id"], payload["task_id"]) == (
        {"k": "v"}, "t1", "task",
    )  # fmt: skip


def test_segmentation_without_mask_url_is_refused_on_export() -> None:
    seg = VolumeSegmentation(segments=[Segment(name="liver", idx=1)])
    with pytest.raises(AnnotationError, match="mask_url"):
        to_nucleus(seg)


def test_segmentation_with_no_segments_is_accepted() -> None:
    payload = {
        "type": "mask", "mask_url": "s3://bucket/m.png", "annotations": [],
        "annotation_id": "m1", "reference_id": "img",
    }  # fmt: skip
    assert to_nucleus(from_nucleus(payload)) == payload


# ------------------------------------------------------------------------------------ Datamint


def test_datamint_integer_numeric() -> None:
    ann = NumericAnnotation(identifier="count", value=3)
    out = to_datamint(ann)
    assert out["annotation_type"] == "integer" and out["numeric_value"] == 3
    back = from_datamint(out)
    assert isinstance(back, NumericAnnotation) and back.value == 3
    assert isinstance(back.value, int)
    big = from_datamint({**out, "numeric_value": 2**53 + 1})
    assert to_datamint(big)["numeric_value"] == 2**53 + 1


def test_datamint_timestamps_keep_their_text() -> None:
    payload = {
        "annotation_type": "label", "identifier": "x", "scope": "image", "confiability": 1.0,
        "deleted": False, "created_at": "2024-05-01T10:00:00.123Z",
    }  # fmt: skip
    assert to_datamint(from_datamint(payload)) == payload


API_DICT: dict[str, Any] = {
    "id": "a-1", "identifier": "finding", "scope": "image", "frame_index": None,
    "annotation_type": "category", "text_value": "benign", "numeric_value": None,
    "units": None, "geometry": None, "created_at": "2024-05-01T10:00:00Z",
    "created_by": "dr@x.org", "annotation_worklist_id": "wl-1", "status": "published",
    "approved_at": "2024-05-02T10:00:00Z", "approved_by": "chief@x.org",
    "resource_id": "res-9", "associated_file": None, "deleted": False, "deleted_at": None,
    "deleted_by": None, "created_by_model": None, "is_model": False, "model_id": None,
    "set_name": None, "resource_filename": "ct.nii.gz", "resource_modality": "CT",
    "annotation_worklist_name": "Lungs", "user_info": {"firstname": "A", "lastname": "B"},
    "confiability": 1.0, "imported_from": None, "import_author": None, "source": None,
}  # fmt: skip


def test_datamint_api_dict_is_read_and_written_back_whole() -> None:
    ann = from_datamint(API_DICT)
    assert isinstance(ann, CategoryAnnotation)
    assert (ann.worklist_id, ann.value) == ("wl-1", "benign")
    out = to_datamint(ann)
    for key in ("approved_by", "annotation_worklist_id", "resource_id", "user_info"):
        assert out[key] == API_DICT[key], key
    assert {k: v for k, v in API_DICT.items() if v is not None} == {
        k: v for k, v in out.items() if v is not None
    }


@pytest.mark.parametrize(
    "points",
    [
        [(0, 0), (4, 0), (0, 3)],  # three points
        [(0, 0), (4, 1), (0, 3), (4, 3)],  # not a rectangle
    ],
)
def test_box_needs_two_points_or_a_rectangle(points: list[tuple[float, float]]) -> None:
    with pytest.raises(AnnotationError, match="points"):
        BoxAnnotation(identifier="b", points=points)
