"""Annotation coordinates at every interop boundary: each format's pixels land on the right voxel.

A marker voxel is written into a non-RAS NIfTI and into a DICOM series stored right-to-left and
superior-to-inferior; each format's own coordinates for that voxel (worked out by hand from the
format's rules) must land on the marker in medstore's canonical array, and export back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore.annotations import BoxAnnotation, PointAnnotation, SkeletonNode, Tree
from medstore.datastore.annotations.grid import ImageGrid
from medstore.datastore.cli.main import main
from medstore.datastore.imaging import read_image
from medstore.datastore.interop.datamint import from_datamint, to_datamint
from medstore.datastore.interop.nucleus import from_nucleus, to_nucleus
from medstore.datastore.interop.wk_coords import (
    node_pixels,
    points_to_tree,
    skeleton_for,
    voxel_size_of,
)
from medstore.datastore.store.local import LocalDatastore
from support.dicom import make_dicom_series
from support.nifti import make_nifti

MARKER = 977


def _box_store(tmp_path: Path) -> tuple[LocalDatastore, Path]:
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-100, -120, -50)
    src = make_nifti(tmp_path / "case.nii.gz", np.zeros((64, 64, 32), np.int16), affine)
    store = LocalDatastore(tmp_path / "store", lock_timeout=5.0)
    store.add_image("case", src)
    return store, src


def _corners(points: list[list[float]]) -> dict[str, Any]:
    return {"coordinate_system": "pixel", "points": points}


def test_datamint_pixel_box_lands_where_nibabel_says(tmp_path: Path) -> None:
    """The issue's box: pixels (10,20)-(50,60), frame 3, on a RAS NIfTI -> (-92, -104, -42.5)."""
    store, src = _box_store(tmp_path)
    payload = {
        "annotation_type": "square", "identifier": "nodule", "scope": "frame", "frame_index": 3,
        "geometry": _corners([[10, 20, 3], [50, 20, 3], [10, 60, 3], [50, 60, 3]]),
        "confiability": 1.0, "deleted": False,
    }  # fmt: skip
    file = tmp_path / "box.json"
    file.write_text(json.dumps([payload]))
    assert (
        main(["--store", str(store.root), "annotate", "import", str(file), "--image", "case"]) == 0
    )
    (box,) = LocalDatastore(store.root).annotations.list("case")
    assert isinstance(box, BoxAnnotation)
    grid = ImageGrid.of_image(store, "case")
    world = box.patient_points(grid.canonical_affine)
    nibabel_says = nib.affines.apply_affine(nib.load(src).affine, [[10, 20, 3], [50, 60, 3]])
    assert world[0].tolist() == pytest.approx([-92.0, -104.0, -42.5])
    assert world.min(axis=0) == pytest.approx(nibabel_says.min(axis=0))
    assert world.max(axis=0) == pytest.approx(nibabel_says.max(axis=0))
    # ...and the same box given in patient coordinates (LPS) is the same box.
    lps = [[-x, -y, z] for x, y, z in world.tolist()]
    patient = from_datamint(
        {**payload, "geometry": {"coordinate_system": "patient", "points": lps}}
    )
    assert patient.patient_points() == pytest.approx(world)
    exported = to_datamint(box, image=grid)
    assert exported.pop("created_at")  # the store stamps the time it was added
    assert exported == payload


def test_datamint_patient_box_in_create_form_stays_patient() -> None:
    """Datamint's create form has no coordinate system: its geometry is patient (LPS) mm."""
    create = {
        "type": "square", "identifier": "nodule", "scope": "frame", "frame_index": 3,
        "geometry": {"points": [[92.0, 104.0, -42.5], [60.0, 104.0, -42.5],
                                [92.0, 72.0, -42.5], [60.0, 72.0, -42.5]]},
    }  # fmt: skip
    box = from_datamint(create)
    assert isinstance(box, BoxAnnotation) and box.coordinate_system == "patient"
    assert box.points[0] == (-92.0, -104.0, -42.5)  # RAS inside medstore
    assert to_datamint(box) == create


# -------------------------------------------------------------------------- marker images


def _nifti_lai(tmp_path: Path) -> tuple[Path, tuple[int, int, int]]:
    """A (6, 7, 8) NIfTI whose voxel axes point Left, Anterior, Inferior; marker at (1, 2, 3)."""
    data = np.zeros((6, 7, 8), np.int16)
    data[1, 2, 3] = MARKER
    affine = np.array([[-0.9, 0, 0, 30.0], [0, 1.1, 0, -40.0], [0, 0, -2.0, 60.0], [0, 0, 0, 1]])
    return make_nifti(tmp_path / "lai.nii.gz", data, affine), (1, 2, 3)


def _dicom_rpi(tmp_path: Path) -> tuple[Path, tuple[int, int, int]]:
    """A 5-slice series, rows running right, slices inferior; marker at column 1, row 3, slice 2."""
    volume = np.zeros((5, 6, 4), np.int16)  # (slice, row, column)
    volume[2, 3, 1] = MARKER
    folder = make_dicom_series(tmp_path / "series", volume, iop=(-1, 0, 0, 0, 1, 0))
    return folder, (1, 3, 2)


@pytest.fixture(params=["nifti", "dicom"])
def marked(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, tuple[int, int, int]]:
    """``(image path, marker voxel in the file's own order)``."""
    make = _nifti_lai if request.param == "nifti" else _dicom_rpi
    return make(tmp_path)


def _value_at(path: Path, pixel: Any) -> int:
    """The canonical array's value at a medstore pixel point ``(x, y, z)``."""
    x, y, z = (round(float(v)) for v in pixel)
    return int(read_image(path).array[0, z, y, x])


def test_grid_finds_the_marker(marked: tuple[Path, tuple[int, int, int]]) -> None:
    path, voxel = marked
    grid = ImageGrid.of_file(path)
    assert grid.axis_codes() != ("S", "P", "L")
    pixel = grid.native_to_pixel([voxel])[0]
    assert _value_at(path, pixel) == MARKER
    assert grid.pixel_to_native([pixel]).tolist() == [list(map(float, voxel))]


def test_datamint_marker(marked: tuple[Path, tuple[int, int, int]]) -> None:
    path, (i, j, k) = marked
    grid = ImageGrid.of_file(path)
    # Datamint's rules, by hand: NIfTI frames count the I/S axis (here axis 2, pointing
    # inferior, so backwards: 8 - 1 - 3 = 4), x and y the other axes in order; DICOM frames
    # are the series' own slices and x, y its columns and rows.
    expected = (i, j, 4) if grid.format.startswith("nifti") else (i, j, k)
    payload = {
        "annotation_type": "point", "identifier": "marker", "scope": "frame",
        "frame_index": expected[2], "geometry": _corners([list(expected)]),
        "confiability": 1.0, "deleted": False,
    }  # fmt: skip
    point = from_datamint(payload, image=grid)
    assert _value_at(path, point.points[0]) == MARKER
    assert point.frame_index == round(point.points[0][2])
    assert to_datamint(point, image=grid) == payload
    # The same point in patient coordinates lands there too (through the file's own affine).
    world = grid.native_to_patient([(i, j, k)])[0]
    patient = from_datamint(
        {**payload, "geometry": {"coordinate_system": "patient", "points": [
            [-world[0], -world[1], world[2]]]}},
    )  # fmt: skip
    back = grid.native_to_pixel(grid.patient_to_native(patient.patient_points()))[0]
    assert _value_at(path, back) == MARKER


def test_nucleus_marker(marked: tuple[Path, tuple[int, int, int]]) -> None:
    """Nucleus pixels are the 2-D pixels of one frame as medstore shows it (canonical slice)."""
    path, _ = marked
    canonical = read_image(path).array[0]
    z, y, x = (int(v) for v in np.argwhere(canonical == MARKER)[0])
    payload = {
        "label": "marker", "type": "box", "reference_id": "img",
        "geometry": {"x": x - 0.5, "y": y - 0.5, "width": 1, "height": 1},
    }  # fmt: skip
    box = from_nucleus(payload, frame_index=z)
    assert isinstance(box, BoxAnnotation) and box.frame_index == z
    centre = np.mean(box.points_array(), axis=0)
    assert _value_at(path, (*centre[:2], box.frame_index)) == MARKER
    assert to_nucleus(box)["geometry"] == payload["geometry"]


def test_webknossos_marker(marked: tuple[Path, tuple[int, int, int]]) -> None:
    """WEBKNOSSOS positions are the file's voxels; the voxel size is the file's spacing."""
    path, voxel = marked
    grid = ImageGrid.of_file(path)
    node = SkeletonNode(id=7, position=tuple(float(v) for v in voxel))
    skeleton = skeleton_for(grid, [Tree(id=1, name="t", nodes=[node])])
    assert skeleton.voxel_size == voxel_size_of(grid)
    assert _value_at(path, node_pixels(skeleton, grid)[7]) == MARKER
    # Export: a medstore point on the marker becomes a node at the marker's dataset voxel.
    pixel = grid.native_to_pixel([voxel])[0]
    tree = points_to_tree(PointAnnotation(identifier="m", points=[tuple(pixel)]), grid, tree_id=2)
    assert tree.nodes[0].position == tuple(float(v) for v in voxel)
