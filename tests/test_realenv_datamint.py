"""Datamint's own entity classes (datamint 2.45) accept the annotation dicts medstore writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.annotations import AngleAnnotation, AreaAnnotation, DistanceAnnotation
from medstore.datastore.annotations.grid import ImageGrid
from medstore.datastore.interop.datamint import from_datamint, to_datamint
from realenv import marks, realenv
from support.dicom import make_dicom_series
from support.nifti import affine_for_codes, make_nifti

pytestmark = marks("datamint")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "datamint_payloads.json"

DATAMINT_VALIDATES = """
import json, sys
import datamint.entities.annotations as entities
out = {}
for key, case in json.load(open(sys.argv[1])).items():
    annotation = getattr(entities, case["class"]).model_validate(case["entity"])
    out[key] = {"class": type(annotation).__name__,
                "dump": json.loads(annotation.model_dump_json(exclude_none=True))}
print(json.dumps(out))
"""


#: The fixtures' pixel coordinates are placed on a RAS+ NIfTI grid of 64 x 64 x 32 voxels.
GRID = ImageGrid(
    native_affine=np.diag([0.8, 0.8, 2.5, 1.0]), native_shape=(64, 64, 32), format="nifti1"
)


def test_datamint_validates_and_redumps_our_annotations(tmp_path: Path) -> None:
    fixture = json.loads(FIXTURE.read_text())
    ours = {
        key: {
            "class": case["class"],
            "entity": to_datamint(from_datamint(case["model_dump_json"], image=GRID), image=GRID),
        }
        for key, case in fixture.items()
    }
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    # From tmp_path: datamint writes its log folder (.log/) into the working folder.
    out = realenv("datamint").run(["-c", DATAMINT_VALIDATES, "ours.json"], cwd=tmp_path)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {key: value["class"] for key, value in seen.items()} == {
        key: case["class"] for key, case in fixture.items()
    }
    assert len(seen) == 8
    for key, value in seen.items():
        assert value["dump"] == json.loads(json.dumps(ours[key]["entity"])), key
        assert value["dump"] == fixture[key]["model_dump_json"], key


DATAMINT_PLACES = """
import json, sys
import nibabel as nib, pydicom
from datamint.entities.annotations import PointGeometry
out = {}
for key, case in json.load(open(sys.argv[1])).items():
    path = case["path"]
    metadata = pydicom.dcmread(path) if path.endswith(".dcm") else nib.load(path)
    geometry = PointGeometry.from_coordinates(
        tuple(case["pixel"]), coords_system="pixel", frame_index=case["frame"], metadata=metadata)
    out[key] = list(geometry.points[0])
print(json.dumps(out))
"""

#: File orientations (nibabel axis codes) the conversion is compared in.
CODES = [("R", "A", "S"), ("L", "P", "I"), ("A", "I", "R"), ("I", "L", "A"), ("S", "R", "P")]


def test_datamint_pixels_land_where_datamint_puts_them(tmp_path: Path) -> None:
    """Datamint's own pixel->patient conversion (its venv) and medstore's agree, NIfTI and DICOM."""
    cases: dict[str, dict[str, object]] = {}
    grids: dict[str, ImageGrid] = {}
    shape = (9, 10, 11)
    for n, codes in enumerate(CODES):
        affine = affine_for_codes(codes, (0.8, 1.1, 2.5), shape)
        path = make_nifti(tmp_path / f"nifti_{n}.nii", np.zeros(shape, np.int16), affine)
        grid = ImageGrid.of_file(path)
        for m, (x, y, frame) in enumerate([(0, 0, 0), (3, 5, 2), (7.25, 1.5, 4)]):
            cases[f"nifti_{n}_{m}"] = {"path": str(path), "pixel": [x, y], "frame": frame}
            grids[f"nifti_{n}_{m}"] = grid
    volume = np.zeros((4, 6, 5), np.int16)
    for n, iop in enumerate([(1, 0, 0, 0, 1, 0), (-1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1)]):
        folder = make_dicom_series(
            tmp_path / f"series_{n}", volume, iop=iop, names=[f"s{k}.dcm" for k in range(4)]
        )
        grid = ImageGrid.of_file(folder)
        for k in range(4):
            # One slice file: Datamint's frame 0 of that file is the series' slice k.
            cases[f"dicom_{n}_{k}"] = {
                "path": str(folder / f"s{k}.dcm"), "pixel": [2.5, 1], "frame": 0, "slice": k,
            }  # fmt: skip
            grids[f"dicom_{n}_{k}"] = grid
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = realenv("datamint").run(["-c", DATAMINT_PLACES, "cases.json"], cwd=tmp_path)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    for key, case in cases.items():
        grid = grids[key]
        x, y = case["pixel"]  # type: ignore[misc]
        frame = case.get("slice", case["frame"])
        # The frame rides in the point (scope image): a sagittal series' frames are not
        # medstore slices, but its points still convert exactly.
        payload = {
            "annotation_type": "point", "identifier": "p", "scope": "image",
            "geometry": {"coordinate_system": "pixel", "points": [[x, y, frame]]},
        }  # fmt: skip
        ours = from_datamint(payload, image=grid)
        world = ours.patient_points(grid.canonical_affine)[0] * [-1, -1, 1]  # RAS -> LPS
        assert world.tolist() == pytest.approx(theirs[key], abs=1e-4), key


DATAMINT_WRITES = """
import json
from datamint.entities.annotations import (BoxAnnotation, CategoryAnnotation, LabelAnnotation,
    LineAnnotation, NumericAnnotation, PointAnnotation, RegionAnnotation, TextAnnotation)
from datamint.entities.annotations.geometry import LineGeometry, PointGeometry, RegionGeometry
text = "n\\u00f6dule \\u2603\\nline two"
made = {
    "box_patient": BoxAnnotation.from_points((0.1, 1e6 + 0.3, -2.5), (7.25, 1e6 + 9.3, -2.5),
                                             identifier=text, coords_system="patient"),
    "line": LineAnnotation(identifier="d", frame_index=2, scope="frame",
                           geometry=LineGeometry.from_coordinates((0.1, 2), (3, 4), frame_index=2)),
    "point": PointAnnotation(identifier="p", frame_index=1, scope="frame",
                             geometry=PointGeometry.from_coordinates((5, 6), frame_index=1)),
    "region": RegionAnnotation(identifier="r", frame_index=4, scope="frame",
                               geometry=RegionGeometry.from_coordinates(
                                   [(0, 0), (10, 0.5), (10, 10)], closed=True, frame_index=4)),
    "category": CategoryAnnotation(name="finding", value=text),
    "integer": NumericAnnotation(name="count", value=2**53 + 1, units="ml"),
    "float": NumericAnnotation(name="vol", value=1e6 + 0.3),
    "label": LabelAnnotation(name="flag"),
    "text": TextAnnotation(name="note", value=""),
}
out = {}
for key, ann in made.items():
    out[key] = {"entity": json.loads(ann.model_dump_json(exclude_none=True)),
                "create": ann._to_create_dto().to_dict()}
print(json.dumps(out))
"""

DATAMINT_READS = """
import json, sys
from datamint.entities.annotations import annotation_from_dict
out = {}
for key, entity in json.load(open(sys.argv[1])).items():
    ann = annotation_from_dict(entity)
    out[key] = {"class": type(ann).__name__,
                "dump": json.loads(ann.model_dump_json(exclude_none=True))}
print(json.dumps(out))
"""


def test_datamint_entities_with_hostile_values_round_trip_both_ways(tmp_path: Path) -> None:
    """datamint writes, medstore reads and writes back equal dicts, datamint reads them equal."""
    env = realenv("datamint")
    written = json.loads(env.run(["-c", DATAMINT_WRITES], cwd=tmp_path).stdout.splitlines()[-1])
    ours = {}
    for key, forms in written.items():
        for form in ("entity", "create"):
            ann = from_datamint(forms[form], image=GRID)
            again = to_datamint(ann, image=GRID)
            assert again == forms[form], (key, form)
        ours[key] = to_datamint(from_datamint(forms["entity"], image=GRID), image=GRID)
    assert isinstance(ours["integer"]["numeric_value"], int)
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    reread = json.loads(
        env.run(["-c", DATAMINT_READS, "ours.json"], cwd=tmp_path).stdout.splitlines()[-1]
    )
    for key, seen in reread.items():
        assert seen["dump"] == written[key]["entity"], key


DATAMINT_GEOMETRIES = """
import json, sys
import nibabel as nib
from datamint.entities.annotations import BoxGeometry, LineGeometry, PointGeometry, RegionGeometry
out = {}
for path in sys.argv[1:]:
    img = nib.load(path)
    out[path] = {
        "box": BoxGeometry.from_coordinates((1, 2), (5, 7), frame_index=3, metadata=img).to_dict(),
        "line": LineGeometry.from_coordinates((1, 2), (5, 7.5), frame_index=2,
                                              metadata=img).to_dict(),
        "point": PointGeometry.from_coordinates((4, 1), frame_index=0, metadata=img).to_dict(),
        "region": RegionGeometry.from_coordinates([(0, 0), (3, 0), (3, 3)], closed=True,
                                                  frame_index=1, metadata=img).to_dict(),
        "pixel_box": BoxGeometry.from_coordinates((1, 2), (5, 7), frame_index=3).to_dict(),
    }
print(json.dumps(out))
"""


def test_datamint_geometry_constructors_match_datamints(tmp_path: Path) -> None:
    from medstore.datastore.interop.datamint_geometry import (
        BoxGeometry,
        LineGeometry,
        PointGeometry,
        RegionGeometry,
    )

    paths = []
    for n, codes in enumerate(CODES[:3]):
        affine = affine_for_codes(codes, (0.8, 1.1, 2.5), (9, 10, 11))
        paths.append(make_nifti(tmp_path / f"g{n}.nii", np.zeros((9, 10, 11), np.int16), affine))
    out = realenv("datamint").run(["-c", DATAMINT_GEOMETRIES, *map(str, paths)], cwd=tmp_path)
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    for path in paths:
        grid = ImageGrid.of_file(path)
        ours = {
            "box": BoxGeometry.from_coordinates((1, 2), (5, 7), frame_index=3, metadata=grid),
            "line": LineGeometry.from_coordinates((1, 2), (5, 7.5), frame_index=2, metadata=grid),
            "point": PointGeometry.from_coordinates((4, 1), frame_index=0, metadata=grid),
            "region": RegionGeometry.from_coordinates(
                [(0, 0), (3, 0), (3, 3)], closed=True, frame_index=1, metadata=grid
            ),
            "pixel_box": BoxGeometry.from_coordinates((1, 2), (5, 7), frame_index=3),
        }
        for key, geometry in ours.items():
            mine, seen = geometry.to_dict(), theirs[str(path)][key]
            assert set(mine) == set(seen), (path, key)
            for field, value in seen.items():
                if isinstance(value, list):
                    assert np.allclose(np.array(mine[field], float), np.array(value, float),
                                       atol=1e-4), (path, key, field)  # fmt: skip
                else:
                    assert mine[field] == value, (path, key, field)


DATAMINT_READS_MEASUREMENTS = """
import json, sys
from datamint.entities.annotations import Annotation
out = [json.loads(Annotation.from_dict(d).model_dump_json(exclude_none=True))
       for d in json.load(open(sys.argv[1]))]
print(json.dumps(out))
"""


def test_datamint_reads_our_measurements_and_payloads(tmp_path: Path) -> None:
    boxed = {
        "type": "square", "identifier": "b", "value": '{"note": "x\\ny"}',
        "geometry": {"points": [[0, 0, 0], [4, 3, 0]]},
    }  # fmt: skip
    far = (1e6 + 0.3, 5.0, 6.0)
    ours = [
        DistanceAnnotation(
            identifier="d", points=[(0.1, -2.0, 3.0), far], coordinate_system="patient"
        ),
        AngleAnnotation(
            identifier="ä", points=[(1, 0, 0), (0, 0, 0), (0, 1, 0)], coordinate_system="patient"
        ),
        AreaAnnotation(
            identifier="a", points=[(0, 0, 1), (2, 0, 1), (2, 2, 1)], coordinate_system="patient"
        ),
        from_datamint(boxed),
    ]
    dicts = [to_datamint(ann, form="entity") for ann in ours]
    (tmp_path / "ours.json").write_text(json.dumps(dicts))
    out = realenv("datamint").run(["-c", DATAMINT_READS_MEASUREMENTS, "ours.json"], cwd=tmp_path)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert [d["annotation_type"] for d in seen] == ["distance", "angle", "area", "square"]
    assert seen[3]["text_value"] == '{"note": "x\\ny"}'
    for ann, dumped in zip(ours, seen, strict=True):
        back = from_datamint(dumped)
        assert type(back) is type(ann) and back.points == ann.points  # type: ignore[attr-defined]
        assert back.value == ann.value
