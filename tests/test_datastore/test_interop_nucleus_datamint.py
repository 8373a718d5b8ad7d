"""Tests of Scale Nucleus and Datamint interop against payloads written by the real libraries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medstore.datastore.annotations import (
    BoxAnnotation,
    CategoryAnnotation,
    CircleAnnotation,
    KeypointsAnnotation,
    LineAnnotation,
    MultiCategoryAnnotation,
    PolylineAnnotation,
    VolumeSegmentation,
    annotation_from_dict,
)
from medstore.datastore.annotations.grid import ImageGrid
from medstore.datastore.errors import AnnotationError
from medstore.datastore.interop.datamint import from_datamint, to_datamint
from medstore.datastore.interop.nucleus import from_nucleus, to_nucleus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NUCLEUS = json.loads((FIXTURES / "nucleus_payloads.json").read_text())
DATAMINT = json.loads((FIXTURES / "datamint_payloads.json").read_text())


@pytest.mark.parametrize("name", sorted(NUCLEUS))
def test_nucleus_round_trip_is_equal_json(name: str) -> None:
    payload = NUCLEUS[name]
    ann = from_nucleus(payload)
    assert json.dumps(to_nucleus(ann), sort_keys=True) == json.dumps(payload, sort_keys=True)
    # ...also after a trip through our own storage form.
    assert to_nucleus(annotation_from_dict(ann.to_dict())) == payload


def test_nucleus_payloads_map_to_the_right_entities() -> None:
    box = from_nucleus(NUCLEUS["box"])
    assert isinstance(box, BoxAnnotation)
    assert (box.identifier, box.id, box.reference_id, box.metadata) == (
        "nodule", "nodule-10-20-30-40-img_1", "img_1", {"slice": 5},
    )  # fmt: skip
    assert box.bounds() == ((10.0, 20.0), (40.0, 60.0))
    line = from_nucleus(NUCLEUS["line"])
    assert isinstance(line, LineAnnotation) and line.length_mm(np.eye(4)) == pytest.approx(
        np.hypot(29, 38)
    )
    keypoints = from_nucleus(NUCLEUS["keypoints"])
    assert isinstance(keypoints, KeypointsAnnotation)
    assert keypoints.keypoints[2].visible is False and keypoints.keypoints[2].x is None
    category = from_nucleus(NUCLEUS["category"])
    assert isinstance(category, CategoryAnnotation)
    assert (category.identifier, category.value) == ("finding", "normal")
    multi = from_nucleus(NUCLEUS["multicategory"])
    assert isinstance(multi, MultiCategoryAnnotation) and multi.values == ["artifact", "motion"]
    mask = from_nucleus(NUCLEUS["segmentation"])
    assert isinstance(mask, VolumeSegmentation)
    assert mask.class_map == {0: "background", 1: "liver"}
    assert mask.label_info() == [{"name": "liver", "idx": 1}]


def test_nucleus_ids_are_deterministic_when_missing() -> None:
    first, second = from_nucleus(NUCLEUS["line"]), from_nucleus(dict(NUCLEUS["line"]))
    assert first.id == second.id and first.id
    assert to_nucleus(first)["annotation_id"] is None


def test_native_annotations_export_with_library_keys() -> None:
    box = BoxAnnotation.from_points([(1, 2), (4, 6)], identifier="b", reference_id="img")
    payload = to_nucleus(box)
    assert set(payload) == set(NUCLEUS["box"])
    assert payload["geometry"] == {"x": 1, "y": 2, "width": 3, "height": 4}
    assert payload["annotation_id"] == box.id
    assert from_nucleus(payload).bounds() == box.bounds()
    long_line = from_nucleus(
        {"label": "l", "type": "line", "geometry": {"vertices": [{"x": 0, "y": 0}] * 3}}
    )
    assert isinstance(long_line, PolylineAnnotation) and to_nucleus(long_line)["type"] == "line"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"type": "hologram"}, "unknown Nucleus annotation type"),
        ({"type": "box", "label": "x", "geometry": {"x": 1}}, "missing or has a bad 'y'"),
        (
            {
                "type": "box",
                "label": "x",
                "geometry": {"x": 1, "y": float("nan"), "width": 1, "height": 1},
            },
            "finite",
        ),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_nucleus_payloads(payload: Any, reason: str) -> None:
    with pytest.raises(AnnotationError, match=reason):
        from_nucleus(payload)


def test_non_nucleus_types_are_refused() -> None:
    with pytest.raises(AnnotationError, match="no Nucleus equivalent"):
        to_nucleus(CircleAnnotation(identifier="c", points=[(0, 0), (1, 1)]))


#: A RAS+ NIfTI grid of 64 x 64 x 32 voxels for the fixtures' pixel coordinates.
GRID = ImageGrid(native_affine=np.diag([0.8, 0.8, 2.5, 1.0]), native_shape=(64, 64, 32),
                 format="nifti1")  # fmt: skip


@pytest.mark.parametrize("name", sorted(DATAMINT))
@pytest.mark.parametrize(("form", "key"), [("entity", "model_dump_json"), ("create", "create_dto")])
def test_datamint_round_trip(name: str, form: str, key: str) -> None:
    payload = DATAMINT[name][key]
    ann = from_datamint(payload, image=GRID)
    assert type(ann).__name__ == DATAMINT[name]["class"].replace("Region", "Polyline")
    assert to_datamint(ann, form=form, image=GRID) == payload  # type: ignore[arg-type]
    assert to_datamint(ann, image=GRID) == payload  # the imported form is remembered


def test_datamint_entity_and_create_forms_agree() -> None:
    for name, entry in DATAMINT.items():
        entity = from_datamint(entry["model_dump_json"], image=GRID)
        create = from_datamint(entry["create_dto"], image=GRID)
        if getattr(entity, "coordinate_system", "patient") == "patient":
            assert entity.content_hash() == create.content_hash(), name
        else:  # a create form's geometry is patient coordinates, Datamint's default
            assert getattr(create, "coordinate_system", None) == "patient", name


def test_datamint_pixels_need_the_image() -> None:
    with pytest.raises(AnnotationError, match=r"geometry.coordinate_system 'pixel'.*image="):
        from_datamint(DATAMINT["box_pixel"]["model_dump_json"])


def test_datamint_patient_points_become_ras() -> None:
    box = from_datamint(DATAMINT["box_patient_from_dicom"]["model_dump_json"])
    assert isinstance(box, BoxAnnotation) and box.coordinate_system == "patient"
    assert box.points[0] == pytest.approx((151.52112300000002, 165.80643700000002, -75.699997))
    assert box.view_plane_normal == (-0.0, -0.0, 1.0)
    assert box.extent_mm() == pytest.approx((26.45872, 26.45872))


def test_datamint_fields_and_errors() -> None:
    ann = from_datamint({"type": "label", "identifier": "x", "added_by": "dr-a", "id": "srv-1"})
    assert (ann.created_by, ann.id) == ("dr-a", "srv-1")
    assert to_datamint(ann, form="entity")["id"] == "srv-1"
    with pytest.raises(AnnotationError, match="unknown annotation type 'hologram'"):
        from_datamint({"type": "hologram", "identifier": "x"})
    with pytest.raises(AnnotationError, match="no Datamint equivalent"):
        to_datamint(VolumeSegmentation(segments=[{"name": "a", "idx": 1}]))
    with pytest.raises(AnnotationError, match="needs 2 points"):
        from_datamint({"type": "line", "identifier": "d", "geometry": {"points": [[0, 0, 1]]}})
