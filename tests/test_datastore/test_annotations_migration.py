"""Annotation side files written by an older medstore (``format_version`` 1) are migrated on open.

Version 1 stored Datamint pixel geometry as given (on the file's voxel grid) and read Datamint's
create form (no coordinate system) as pixels. These files are written here by hand, exactly as
version 1 wrote them, and must read back in version 2's meaning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from medstore.datastore.imaging import read_image
from medstore.datastore.store.local import LocalDatastore
from support.nifti import make_nifti


@pytest.fixture
def store(tmp_path: Path) -> LocalDatastore:
    """A store holding ``case``: a 64 x 64 x 32 RAS+ NIfTI, 0.8 x 0.8 x 2.5 mm."""
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-100, -120, -50)
    src = make_nifti(tmp_path / "case.nii.gz", np.zeros((64, 64, 32), np.int16), affine)
    opened = LocalDatastore(tmp_path / "store", lock_timeout=5.0)
    opened.add_image("case", src)
    return opened


def _write_v1(store: LocalDatastore, records: list[dict[str, Any]]) -> Path:
    path = store.root / ".medstore" / "annotations" / "case.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Records name the image version they were made for, where the store keeps versions.
    version = store.get_image_info("case").get("medstore.image_version")
    if version:
        records = [{**record, "image_version": version} for record in records]
    doc = {"format_version": 1, "image_id": "case", "annotations": records}
    path.write_bytes(orjson.dumps(doc))
    return path


def _mm(store: LocalDatastore, ann: Any) -> list[float]:
    affine = read_image(store.get_image_uri("case")).affine
    return [round(float(v), 6) for v in ann.patient_points(affine)[0]]


def test_version_1_datamint_pixels_move_to_the_canonical_grid(store: LocalDatastore) -> None:
    _write_v1(store, [
        {"id": "box", "identifier": "nodule", "annotation_type": "box", "scope": "frame",
         "frame_index": 3, "coordinate_system": "pixel",
         "points": [[10.0, 20.0, 3.0], [50.0, 20.0, 3.0], [10.0, 60.0, 3.0], [50.0, 60.0, 3.0]],
         "origin": {"format": "datamint", "keys": ["entity"]}},
        {"id": "mine", "identifier": "own", "annotation_type": "point", "scope": "frame",
         "frame_index": 3, "coordinate_system": "pixel", "points": [[10.0, 20.0, 3.0]]},
    ])  # fmt: skip
    box, own = LocalDatastore(store.root).annotations.list("case")
    assert _mm(store, box) == [-92.0, -104.0, -42.5]  # nibabel's answer for voxel (10, 20, 3)
    assert box.frame_index == 3
    assert own.points == [(10.0, 20.0, 3.0)]  # medstore's own pixels were already canonical


def test_version_1_create_form_geometry_becomes_patient(store: LocalDatastore) -> None:
    _write_v1(store, [
        {"id": "box", "identifier": "nodule", "annotation_type": "box", "scope": "image",
         "coordinate_system": "pixel",
         "points": [[92.0, 104.0, -42.5], [60.0, 104.0, -42.5], [92.0, 72.0, -42.5],
                    [60.0, 72.0, -42.5]],
         "origin": {"format": "datamint", "keys": ["create"]}},
    ])  # fmt: skip
    (box,) = LocalDatastore(store.root).annotations.list("case")
    assert box.coordinate_system == "patient"
    assert list(box.points[0]) == [-92.0, -104.0, -42.5]


def test_a_write_stores_the_current_version(store: LocalDatastore) -> None:
    path = _write_v1(store, [
        {"id": "box", "identifier": "nodule", "annotation_type": "point", "scope": "frame",
         "frame_index": 3, "coordinate_system": "pixel", "points": [[10.0, 20.0, 3.0]],
         "origin": {"format": "datamint", "keys": ["entity"]}},
    ])  # fmt: skip
    anns = LocalDatastore(store.root).annotations
    anns.delete("case", "box")
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 2
    assert doc["annotations"][0]["points"] == [[53.0, 43.0, 3.0]]
    (again,) = anns.list("case", include_deleted=True)
    assert again.points == [(53.0, 43.0, 3.0)]  # not migrated twice


def test_version_1_skeleton_records_read_with_typed_fields(store: LocalDatastore) -> None:
    _write_v1(store, [
        {"id": "sk", "identifier": "skeleton", "annotation_type": "skeleton", "scope": "image",
         "experiment": {"name": "ct_1", "organization": "org", "extra": "kept"},
         "meta": [["username", "Jane"], ["annotationId", "a1"], ["writer", "wk"]],
         "parameters": {"time": {"ms": "1700000000000"}, "zoomLevel": {"zoom": "2.5"}},
         "voxel_size": {"x": 1.0, "y": 1.0, "z": 1.0, "unit": "nanometer"},
         "volumes": [{"id": 0, "name": "seg", "segments": [
             {"id": 1, "anchor_position": [1.0, 2.0, 3.0]}]}]},
    ])  # fmt: skip
    (sk,) = LocalDatastore(store.root).annotations.list("case")
    assert (sk.id, sk.dataset_name, sk.organization_id, sk.experiment) == (  # type: ignore[attr-defined]
        "sk", "ct_1", "org", {"extra": "kept"},
    )  # fmt: skip
    assert (sk.owner_name, sk.annotation_id, sk.metadata) == ("Jane", "a1", {"writer": "wk"})  # type: ignore[attr-defined]
    assert (sk.time, sk.zoom_level, sk.parameters) == (1700000000000, 2.5, {})  # type: ignore[attr-defined]
    assert sk.volumes[0].segments[0].anchor_position == (1, 2, 3)  # type: ignore[attr-defined]
